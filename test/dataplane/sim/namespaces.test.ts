/**
 * Cache namespaces in the emulator, with vLLM's `cache_salt` semantics: a namespace seeds the hash
 * chain of a request's blocks, so requests of different namespaces never share a cached block (no
 * hit, no shorter TTFT), requests of one namespace share as before (the `m:<model>` case), and
 * requests without a namespace behave as they always did. Checked on the core (virtual time), the
 * agent-facing SimEngine, the standalone server (HTTP `cache_salt`, KV events over ZMQ) and the DES.
 */
import { decode } from "@msgpack/msgpack";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSimEngine, type SimEngine } from "../../../dataplane/engines/sim/adapter";
import { VirtualClock } from "../../../dataplane/engines/sim/clock";
import { EngineCore } from "../../../dataplane/engines/sim/engine-core";
import { runClusterStudy, syntheticRequests, type StudyRecord, type StudyRequest } from "../../../dataplane/engines/sim/des";
import { blockHashes, namespaceSeed, ROOT_HASH, type KvEvent } from "../../../dataplane/engines/sim/kv-cache";
import { startSimServer, type RunningSimServer } from "../../../dataplane/engines/sim/server";
import type { EngineRequest } from "../../../dataplane/engines/engine";
import { OpenAIEngine } from "../../../dataplane/engines/openai/adapter";
import { openAIEngineConfigSchema } from "../../../dataplane/engines/openai/config";
import { createLogger } from "../../../dataplane/lib/log";
import { ZmtpSubscriber } from "../../../dataplane/lib/zmtp";
import { validateGenerationRequest } from "../../../protocol/openai-request";

/** A ~2.6k-token system prompt: one prefill step cold, a much shorter one when cached. */
const LONG = Array.from({ length: 400 }, (_, i) => `Clause ${i} of the shared agreement applies.`).join(" ");
const messages = [
  { role: "system", content: LONG },
  { role: "user", content: "Summarise the agreement." },
];

function tokens(n: number, offset = 0): Int32Array {
  return Int32Array.from({ length: n }, (_, i) => ((i + offset) * 7919) % 128000);
}

describe("namespaceSeed / blockHashes", () => {
  it("no namespace keeps the old chain; a namespace changes every block of it", () => {
    const t = tokens(16 * 8);
    expect(namespaceSeed()).toBe(ROOT_HASH);
    expect(namespaceSeed("")).toBe(ROOT_HASH);
    expect(Array.from(blockHashes(t, 16, undefined, 0, namespaceSeed()))).toEqual(Array.from(blockHashes(t, 16)));
    const a = blockHashes(t, 16, undefined, 0, namespaceSeed("t:acme:llama"));
    const b = blockHashes(t, 16, undefined, 0, namespaceSeed("t:globex:llama"));
    const plain = new Set(blockHashes(t, 16));
    expect(Array.from(blockHashes(t, 16, undefined, 0, namespaceSeed("t:acme:llama")))).toEqual(Array.from(a)); // deterministic
    for (let i = 0; i < a.length; i++) {
      expect(a[i]).not.toBe(b[i]);
      expect(plain.has(a[i]!)).toBe(false);
      expect(Number.isSafeInteger(a[i]!) && a[i]! >= 0).toBe(true);
    }
  });

  it("seeds are distinct across many namespaces", () => {
    const seen = new Set<number>();
    for (let i = 0; i < 20_000; i++) seen.add(namespaceSeed(`t:tenant-${i}:llama-3-8b`));
    seen.add(namespaceSeed("m:llama-3-8b"));
    expect(seen.size).toBe(20_001);
    expect(seen.has(ROOT_HASH)).toBe(false);
  });
});

describe("EngineCore (virtual time)", () => {
  const bs = 16;
  const prompt = tokens(2048 + 100);

  function run(core: EngineCore, clock: VirtualClock, cacheNamespace?: string, hashes?: Float64Array) {
    let ttft = -1;
    const req = core.submit({
      promptTokens: prompt,
      ...(cacheNamespace !== undefined ? { cacheNamespace } : {}),
      ...(hashes ? { blockHashes: hashes } : {}),
      maxTokens: 2,
      ignoreEos: true,
      observer: { onFirstToken: (r, at) => (ttft = at - r.arrivalMs) },
    });
    clock.run();
    return { cached: req.cachedTokens, ttft, req };
  }

  it("a tenant never hits another tenant's blocks; it hits its own; one namespace shares", () => {
    const clock = new VirtualClock();
    const core = new EngineCore({ clock, kvCapacityTokens: 100_000 });
    const full = Math.floor((prompt.length - 1) / bs) * bs;

    const acme = run(core, clock, "t:acme:llama");
    expect(acme.cached).toBe(0);
    const globex = run(core, clock, "t:globex:llama");
    expect(globex.cached).toBe(0);
    expect(globex.ttft).toBeCloseTo(acme.ttft, 9); // a cold prefill, to the microsecond
    const plain = run(core, clock); // no namespace: not the tenants' blocks either
    expect(plain.cached).toBe(0);
    expect(plain.ttft).toBeCloseTo(acme.ttft, 9);

    const acmeAgain = run(core, clock, "t:acme:llama");
    expect(acmeAgain.cached).toBe(full);
    expect(acmeAgain.ttft).toBeLessThan(acme.ttft * 0.6);
    const plainAgain = run(core, clock); // the default namespace still shares with itself, as before
    expect(plainAgain.cached).toBe(full);

    // A model with prefix sharing: every tenant's requests carry the same m:<model> namespace.
    const shared1 = run(core, clock, "m:llama");
    const shared2 = run(core, clock, "m:llama");
    expect(shared1.cached).toBe(0);
    expect(shared2.cached).toBe(full);
    expect(shared2.ttft).toBeCloseTo(acmeAgain.ttft, 9);

    // Hit counters: only the three repeats hit.
    expect(core.metrics.prefixCacheHits).toBe(3 * full);
    expect(core.metrics.prefixCacheQueries).toBe(7 * prompt.length);
    // A router's view agrees.
    expect(core.cachedPrefixTokens(prompt, undefined, "t:acme:llama")).toBe(full);
    expect(core.cachedPrefixTokens(prompt, undefined, "t:initech:llama")).toBe(0);
  });

  it("KV events carry the salted hashes (first parent null, as vLLM)", () => {
    const clock = new VirtualClock();
    const core = new EngineCore({ clock, kvCapacityTokens: 100_000 });
    const events: KvEvent[] = [];
    core.onKvEvents((b) => events.push(...b.events));
    run(core, clock, "t:acme:llama");
    const stored = events.filter((e) => e.type === "BlockStored");
    const salted = Array.from(blockHashes(prompt, bs, undefined, 0, namespaceSeed("t:acme:llama")));
    expect(stored[0]!.parent_block_hash).toBeNull();
    expect(stored.flatMap((e) => e.block_hashes).slice(0, salted.length)).toEqual(salted);
    const unsalted = new Set(blockHashes(prompt, bs));
    expect(stored.flatMap((e) => e.block_hashes).some((h) => unsalted.has(h))).toBe(false);
  });

  it("blocks filled by generated tokens are salted too (a prompt shorter than a block)", () => {
    const clock = new VirtualClock();
    const core = new EngineCore({ clock, kvCapacityTokens: 100_000 });
    const short = tokens(10);
    const req = core.submit({ promptTokens: short, cacheNamespace: "t:acme:llama", maxTokens: 40, ignoreEos: true });
    clock.run();
    const first = blockHashes(req.tokens.subarray(0, 32), 16, undefined, 0, namespaceSeed("t:acme:llama"));
    expect(req.numHashes).toBeGreaterThanOrEqual(2);
    expect(Array.from(req.hashes.subarray(0, 2))).toEqual(Array.from(first));
    // The next turn (prompt = this conversation) hits in its namespace only.
    const turn = Array.from(req.tokens.subarray(0, req.numTokens));
    expect(core.cachedPrefixTokens(turn, undefined, "t:acme:llama")).toBeGreaterThanOrEqual(32);
    expect(core.cachedPrefixTokens(turn, undefined, "t:globex:llama")).toBe(0);
    expect(core.cachedPrefixTokens(turn)).toBe(0);
  });

  it("precomputed hashes of another namespace are not trusted", () => {
    const clock = new VirtualClock();
    const core = new EngineCore({ clock, kvCapacityTokens: 100_000 });
    run(core, clock); // caches the unsalted chain
    // A workload bug: the tenant's request comes with unsalted hashes. It must still miss.
    const stale = run(core, clock, "t:acme:llama", blockHashes(prompt, bs));
    expect(stale.cached).toBe(0);
    expect(Array.from(stale.req.hashes.subarray(0, 4))).toEqual(Array.from(blockHashes(prompt, bs, undefined, 0, namespaceSeed("t:acme:llama")).subarray(0, 4)));
    // Correct precomputed hashes are used as given.
    const given = blockHashes(prompt, bs, undefined, 0, namespaceSeed("t:acme:llama"));
    expect(run(core, clock, "t:acme:llama", given).cached).toBe(Math.floor((prompt.length - 1) / bs) * bs);
  });
});

interface Usage {
  prompt_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
}

describe("SimEngine (the agent's in-process engine)", () => {
  let engine: SimEngine;
  beforeAll(async () => {
    engine = createSimEngine({ kind: "sim", model: "sim-8b", timeScale: 100, kvCapacityTokens: 65_536 });
    await engine.start();
  });
  afterAll(() => engine.stop());

  function request(cacheNamespace: string | undefined): EngineRequest {
    const body = { model: "sim-8b", messages, max_tokens: 2, ignore_eos: true };
    return {
      requestId: randomUUID(),
      endpoint: "chat",
      body: validateGenerationRequest("chat", body),
      rawBody: new TextEncoder().encode(JSON.stringify(body)),
      ...(cacheNamespace ? { tenantId: cacheNamespace.split(":")[1], cacheNamespace } : {}),
      signal: new AbortController().signal,
    };
  }

  /** Cached tokens and TTFT (model seconds, from the engine's own histogram) of one request. */
  async function send(cacheNamespace: string | undefined) {
    const ttft = engine.core.metrics.timeToFirstToken;
    const before = ttft.sum;
    const res = await engine.handle(request(cacheNamespace));
    expect(res.status).toBe(200);
    const body = (await res.json()) as { usage: Usage };
    return { cached: body.usage.prompt_tokens_details.cached_tokens, promptTokens: body.usage.prompt_tokens, ttft: ttft.sum - before };
  }

  it("two tenants, one long prompt: the second tenant gets a cold prefill, the first a hit", async () => {
    const acme = await send("t:acme:sim-8b");
    expect(acme.promptTokens).toBeGreaterThan(2000);
    expect(acme.cached).toBe(0);
    const globex = await send("t:globex:sim-8b");
    expect(globex.cached).toBe(0);
    expect(globex.ttft).toBeCloseTo(acme.ttft, 6);
    const acmeAgain = await send("t:acme:sim-8b");
    expect(acmeAgain.cached).toBe(Math.floor((acme.promptTokens - 1) / 16) * 16);
    expect(acmeAgain.ttft).toBeLessThan(acme.ttft * 0.6);
    const globexAgain = await send("t:globex:sim-8b");
    expect(globexAgain.cached).toBe(acmeAgain.cached);
  });

  it("one shared namespace (m:<model>) shares across tenants; direct calls keep the default namespace", async () => {
    const first = await send("m:sim-8b");
    expect(first.cached).toBe(0); // the tenants' blocks above are not the model's
    const second = await send("m:sim-8b");
    expect(second.cached).toBe(Math.floor((first.promptTokens - 1) / 16) * 16);
    expect(second.ttft).toBeLessThan(first.ttft * 0.6);
    const direct = await send(undefined);
    expect(direct.cached).toBe(0);
    expect((await send(undefined)).cached).toBe(second.cached);
  });
});

describe("sim server: vLLM's cache_salt over HTTP, salted hashes over ZMQ", () => {
  let server: RunningSimServer;
  let sub: ZmtpSubscriber;
  const stored: number[] = [];
  beforeAll(async () => {
    server = await startSimServer({ port: 0, config: { kind: "sim", model: "llama-3-8b", timeScale: 100, kvCapacityTokens: 65_536 }, kvEvents: { port: 0 } });
    sub = new ZmtpSubscriber({ endpoint: server.kvEventsEndpoint!, minBackoffMs: 20 });
    sub.on("message", (parts: Buffer[]) => {
      const [, events] = decode(parts[2]!) as [number, unknown[][], null];
      for (const e of events) if (e[0] === "BlockStored") stored.push(...(e[1] as number[]));
    });
    await new Promise((resolve) => sub.once("connected", resolve));
    // A publisher drops events until the subscription frame reaches it (a fixed pause may be too
    // short on a loaded box): probe with throwaway prompts until one's events arrive.
    for (let i = 0; stored.length === 0; i++) {
      if (i === 50) throw new Error("no KV events reached the subscriber after 50 probes");
      const probe = { model: "llama-3-8b", max_tokens: 1, messages: [{ role: "user", content: `subscription probe ${i}: ${"warm-up text ".repeat(8)}` }] };
      await (await fetch(`${server.url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(probe) })).text();
      for (let t = 0; t < 20 && stored.length === 0; t++) await new Promise((r) => setTimeout(r, 20));
    }
    stored.length = 0;
  });
  afterAll(async () => {
    sub?.close();
    await server?.close();
  });

  const ttftSum = async () => Number(/^vllm:time_to_first_token_seconds_sum\{[^}]*\} (\S+)$/m.exec(await (await fetch(`${server.url}/metrics`)).text())![1]);

  async function chat(salt: unknown) {
    const before = await ttftSum();
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "llama-3-8b", messages, max_tokens: 2, ignore_eos: true, ...(salt !== undefined ? { cache_salt: salt } : {}) }),
    });
    const body = (await res.json()) as { usage: Usage; error?: { message: string; param: string } };
    return { status: res.status, body, ttft: res.status === 200 ? (await ttftSum()) - before : NaN };
  }

  it("different salts never share; the same salt does", async () => {
    const a = await chat("salt-tenant-a");
    expect(a.status).toBe(200);
    expect(a.body.usage.prompt_tokens_details.cached_tokens).toBe(0);
    const b = await chat("salt-tenant-b");
    expect(b.body.usage.prompt_tokens_details.cached_tokens).toBe(0);
    expect(b.ttft).toBeCloseTo(a.ttft, 6);
    const none = await chat(undefined);
    expect(none.body.usage.prompt_tokens_details.cached_tokens).toBe(0);
    const nulled = await chat(null); // vLLM: null is no salt
    expect(nulled.body.usage.prompt_tokens_details.cached_tokens).toBeGreaterThan(0);
    const aAgain = await chat("salt-tenant-a");
    expect(aAgain.body.usage.prompt_tokens_details.cached_tokens).toBe(Math.floor((a.body.usage.prompt_tokens - 1) / 16) * 16);
    expect(aAgain.ttft).toBeLessThan(a.ttft * 0.6);
  });

  it("publishes the salted block hashes, as vLLM does", async () => {
    const ids = ((await (await fetch(`${server.url}/tokenize`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: "llama-3-8b", messages }) })).json()) as { tokens: number[] }).tokens;
    const salted = Array.from(blockHashes(ids, 16, undefined, 0, namespaceSeed("salt-tenant-a")));
    const other = Array.from(blockHashes(ids, 16, undefined, 0, namespaceSeed("salt-tenant-b")));
    const plain = Array.from(blockHashes(ids, 16));
    const t0 = Date.now();
    while (!salted.every((h) => stored.includes(h)) && Date.now() - t0 < 5_000) await new Promise((r) => setTimeout(r, 20));
    expect(salted.every((h) => stored.includes(h))).toBe(true);
    expect(other.every((h) => stored.includes(h))).toBe(true);
    expect(plain.every((h) => stored.includes(h))).toBe(true); // the unsalted request's own chain
    expect(new Set([...salted, ...other, ...plain]).size).toBe(3 * salted.length);
  });

  it("rejects a cache_salt that is not a non-empty string, as vLLM does", async () => {
    for (const salt of ["", 5, ["x"]]) {
      const res = await chat(salt);
      expect(res.status).toBe(400);
      expect(res.body.error!.message).toMatch(/cache_salt/);
      expect(res.body.error!.param).toBe("cache_salt");
    }
  });
});

describe("agent's openai engine (cacheSalt on) in front of the sim server", () => {
  it("maps namespaces to cache_salt and the emulator isolates them", async () => {
    const sim = await startSimServer({ port: 0, config: { kind: "sim", model: "llama", timeScale: 100, kvCapacityTokens: 65_536 } });
    const engine = new OpenAIEngine(openAIEngineConfigSchema.parse({ kind: "openai", model: "llama", url: sim.url, cacheSalt: true }), createLogger({ component: "test" }));
    try {
      await engine.start();
      const send = async (cacheNamespace: string) => {
        const body = { model: "llama", messages, max_tokens: 2, ignore_eos: true };
        const res = await engine.handle({ requestId: randomUUID(), endpoint: "chat", body: validateGenerationRequest("chat", body), rawBody: new TextEncoder().encode(JSON.stringify(body)), cacheNamespace, signal: new AbortController().signal });
        return ((await res.json()) as { usage: Usage }).usage.prompt_tokens_details.cached_tokens;
      };
      expect(await send("t:acme:llama")).toBe(0);
      expect(await send("t:globex:llama")).toBe(0);
      expect(await send("t:acme:llama")).toBeGreaterThan(2000);
      expect(await send("m:llama")).toBe(0);
      expect(await send("m:llama")).toBeGreaterThan(2000);
    } finally {
      await engine.stop();
      await sim.close();
    }
  });
});

describe("DES with tenants", () => {
  it("routes the same prompt from two tenants to one engine: only each tenant's repeat hits", () => {
    const prompt = tokens(1024 + 40);
    const hashesOf = (ns?: string) => blockHashes(prompt, 16, undefined, 0, namespaceSeed(ns));
    const reqs: StudyRequest[] = [
      { arrivalMs: 0, promptTokens: prompt, cacheNamespace: "t:a:m", blockHashes: hashesOf("t:a:m"), maxTokens: 4, ignoreEos: true },
      { arrivalMs: 1000, promptTokens: prompt, cacheNamespace: "t:b:m", blockHashes: hashesOf("t:b:m"), maxTokens: 4, ignoreEos: true },
      { arrivalMs: 2000, promptTokens: prompt, cacheNamespace: "t:b:m", maxTokens: 4, ignoreEos: true },
      { arrivalMs: 3000, promptTokens: prompt, cacheNamespace: "t:a:m", blockHashes: hashesOf("t:a:m"), maxTokens: 4, ignoreEos: true },
      { arrivalMs: 4000, promptTokens: prompt, maxTokens: 4, ignoreEos: true },
    ];
    const records: StudyRecord[] = [];
    const result = runClusterStudy({ nodes: 1, requests: reqs, route: () => 0, onRecord: (r) => records.push(r) });
    records.sort((x, y) => x.index - y.index);
    const full = Math.floor((prompt.length - 1) / 16) * 16;
    expect(records.map((r) => r.cachedTokens)).toEqual([0, 0, full, full, 0]);
    const ttft = records.map((r) => r.firstTokenMs - r.arrivalMs);
    expect(ttft[1]).toBeCloseTo(ttft[0]!, 9);
    expect(ttft[3]!).toBeLessThan(ttft[0]! * 0.6);
    expect(result.prefixHitRate).toBeCloseTo((2 * full) / (5 * prompt.length), 9);
  });

  it("syntheticRequests({tenants}) puts requests in tenants' namespaces and isolation costs hits", () => {
    const none = [...syntheticRequests({ count: 5, ratePerSec: 10, prefixes: 2, seed: 4 })];
    expect(none.every((r) => r.tenant === -1 && r.cacheNamespace === undefined)).toBe(true);
    const some = [...syntheticRequests({ count: 200, ratePerSec: 10, prefixes: 2, seed: 4, tenants: 3 })];
    expect(new Set(some.map((r) => r.cacheNamespace))).toEqual(new Set(["t:0", "t:1", "t:2"]));
    for (const r of some.slice(0, 20)) {
      expect(Array.from(r.blockHashes)).toEqual(Array.from(blockHashes(r.promptTokens, 16, undefined, 0, namespaceSeed(r.cacheNamespace))));
    }
    const study = (tenants: number) =>
      runClusterStudy({ nodes: 2, requests: syntheticRequests({ count: 2000, ratePerSec: 20, prefixes: 8, prefixTokens: [1024, 2048], seed: 9, tenants }), route: (r) => Math.max(0, r.prefixId) % 2 });
    const shared = study(0);
    const isolated = study(20);
    expect(isolated.completed).toBe(2000);
    // 20 tenants each start their own copy of every prefix: more cold prefills, a lower hit rate.
    expect(isolated.prefixHitRate).toBeLessThan(shared.prefixHitRate - 0.02);
  });
});
