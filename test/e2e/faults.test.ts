/**
 * Faults on the real local stack (wrangler dev, agents as processes, engines, a cache server),
 * each seen as a user sees it (the official `openai` client, HTTP statuses) and as an operator
 * sees it (admin stats, node registry, usage, logs):
 *
 * - an agent killed mid-stream: a clean terminating error, in-flight released, usage recorded as cut off;
 * - an agent killed before the first byte: the request is retried on another node, charged once;
 * - an engine crash: the agent reports it unhealthy, the edge routes around it, both recover;
 * - heartbeats lost: the node leaves the pool and rejoins;
 * - the L2 cache server gone: prompts are recomputed, no request fails;
 * - the edge restarted (its Durable Objects with it): usage, VTC counters and the registry survive.
 *
 * Nodes: node-a (emulator in the agent; heartbeats through a proxy that can cut them), node-b (an
 * `openai` engine in front of a vLLM stand-in in this process that can hold requests, crash and
 * come back), both serving one emulated model; node-c (llama.cpp with L1 and L2 tiers on a
 * `switchyard cache-server` process) serving another.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import OpenAI from "openai";
import type { Stream } from "openai/streaming";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DevStack, freePort, ROOT, startDevStack } from "../../scripts/dev-stack";
import { tempDir } from "../support/tmp";
import { type FaultEngine, startFaultEngine } from "./support/fault-engine";
import { type FaultProxy, startFaultProxy } from "./support/fault-proxy";

const MODEL = "sim-8b";
const LLAMA = "tiny-llama";
/**
 * Short enough for the lost-heartbeats test to be quick, long enough that an agent starved of CPU
 * on a loaded 2-core box does not miss the stale bound by accident (4 s).
 */
const HEARTBEAT_MS = 1_000;
/** The edge's stale bound for that interval (3 missed beats + 1 s, pool-object.ts). */
const STALE_MS = HEARTBEAT_MS * 3 + 1_000;
/** The emulator never stops on its own: max_tokens decides how long a stream runs. */
const simEngine = { kind: "sim" as const, model: MODEL, timeScale: 1, eos: { kind: "never" as const }, maxNumSeqs: 16, maxConcurrency: 16 };

let stack: DevStack;
let engineB: FaultEngine;
let heartbeatsA: FaultProxy;
let cacheServer: ChildProcess;
let pool: string;
const dir = tempDir("faults");

function startCacheServer(port: number): ChildProcess {
  return spawn(process.execPath, [join(ROOT, "bin", "switchyard.mjs"), "cache-server", "--port", String(port), "--capacity", "64MiB", "--metrics-port", "off"], {
    cwd: ROOT,
    stdio: "ignore",
    detached: true,
  });
}

async function waitUntil<T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs: number, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

beforeAll(async () => {
  const edgePort = await freePort();
  const cachePort = await freePort();
  [engineB, heartbeatsA] = await Promise.all([startFaultEngine(simEngine), startFaultProxy({ host: "127.0.0.1", port: edgePort })]);
  cacheServer = startCacheServer(cachePort);
  stack = await startDevStack({
    frozenWorker: true,
    stateDir: dir.path,
    edgePort,
    model: MODEL,
    heartbeatIntervalMs: HEARTBEAT_MS,
    agents: [
      { nodeId: "node-a", region: "local", engines: [simEngine], heartbeatUrl: heartbeatsA.url },
      { nodeId: "node-b", region: "local", engines: [{ kind: "openai", model: MODEL, url: engineB.url, maxConcurrency: 16, pollIntervalMs: 200 }] },
      {
        nodeId: "node-c",
        region: "local",
        engines: [{ kind: "llamacpp", model: LLAMA, sequences: 1, contextSize: 1024, threads: 1 }],
        // L1 holds one of the test's prompts (6 chunks of 64 tokens × 2 KiB), not two: the other
        // one's chunks must come from L2.
        kvCache: { chunkTokens: 64, l1: { bytes: "1MiB", policy: "lru" }, l2: { servers: [`127.0.0.1:${cachePort}`], statsRefreshMs: 500 } },
      },
    ],
  });
  pool = (await stack.admin<{ pool: string }>("GET", `/models/${MODEL}`)).body.pool;
}, 240_000);

afterAll(async () => {
  await stack?.stop();
  if (cacheServer?.pid !== undefined && cacheServer.exitCode === null && cacheServer.signalCode === null) process.kill(-cacheServer.pid, "SIGKILL");
  await Promise.allSettled([engineB?.close(), heartbeatsA?.close()]);
  dir.cleanup();
});

/** A fresh tenant (its usage is this scenario's alone) and a client with its key. */
async function tenant(name: string, extra: Record<string, unknown> = {}): Promise<{ id: string; key: string; client: OpenAI }> {
  const id = `${name}-${Date.now().toString(36)}`;
  expect((await stack.admin("POST", "/tenants", { id, name: id, ...extra })).status).toBe(201);
  const { body } = await stack.admin<{ key: string }>("POST", `/tenants/${id}/keys`, { name: "faults" });
  return { id, key: body.key, client: new OpenAI({ baseURL: `${stack.edgeUrl}/v1`, apiKey: body.key, maxRetries: 0, timeout: 30_000 }) };
}

interface UsageTotals {
  num_model_requests: number;
  input_tokens: number;
  output_tokens: number;
  input_cached_tokens: number;
  estimated_requests: number;
  failed_requests: number;
}

async function usageOf(client: OpenAI): Promise<UsageTotals> {
  return ((await client.get("/usage")) as { totals: UsageTotals }).totals;
}

interface PoolStats {
  inflight: number;
  nodes: Array<{ node_id: string; status: string; inflight: number; last_heartbeat_at: string; kv_cache: { tiers: Array<{ tier: string; servers?: number; servers_up?: number | null }> } | null }>;
  tenants: Array<{ tenant_id: string; inflight: number; vtc_counter: number | null; requests: number }>;
}

async function poolStats(name = pool): Promise<PoolStats> {
  const r = await stack.admin<PoolStats>("GET", `/stats/pools/${name}`);
  expect(r.status).toBe(200);
  return r.body;
}

const nodeStatus = (id: string, model = MODEL) => async () => {
  const nodes = await stack.waitForNodes(() => true);
  return nodes.find((n) => n.id === id)?.live.find((l) => l.model === model)?.status;
};

async function waitStatus(id: string, status: string, timeoutMs: number, model = MODEL): Promise<number> {
  const t0 = Date.now();
  await waitUntil(`${id} to be ${status}`, async () => (await nodeStatus(id, model)()) === status, timeoutMs, 50);
  return Date.now() - t0;
}

interface Outcome {
  status: number;
  node: string | null;
  startedAt: number;
  error?: string;
}

/**
 * Sequential requests (random routing, so both nodes are asked) until stopped: what each got.
 * Transport errors count as failures too.
 */
function traffic(key: string): { results: Outcome[]; stop: () => Promise<Outcome[]> } {
  const results: Outcome[] = [];
  let running = true;
  const loop = (async () => {
    for (let i = 0; running; i++) {
      const startedAt = Date.now();
      try {
        const r = await fetch(`${stack.edgeUrl}/v1/chat/completions`, {
          method: "POST",
          headers: { authorization: `Bearer ${key}`, "content-type": "application/json", "routing-strategy": "random" },
          body: JSON.stringify({ model: MODEL, max_tokens: 3, messages: [{ role: "user", content: `traffic ${i}` }] }),
        });
        const body = (await r.json()) as { choices?: unknown[]; error?: { message: string } };
        results.push({ status: r.status, node: r.headers.get("x-switchyard-node"), startedAt, ...(body.error ? { error: body.error.message } : {}) });
      } catch (err) {
        results.push({ status: 0, node: null, startedAt, error: String(err) });
      }
      await new Promise((r) => setTimeout(r, 40));
    }
  })();
  return {
    results,
    stop: async () => {
      running = false;
      await loop;
      return results;
    },
  };
}

async function restartAgent(id: string): Promise<void> {
  await stack.startAgent(id);
  await waitStatus(id, "healthy", 30_000);
}

describe("an agent killed mid-stream", () => {
  it("ends the client's stream with a clean error at once, frees its in-flight count and records the request as cut off", async () => {
    const { id, client } = await tenant("cut");
    const { data: stream, response } = await client.chat.completions
      .create({ model: MODEL, stream: true, max_tokens: 3_000, messages: [{ role: "user", content: "Tell me a long story." }] })
      .withResponse();
    const node = response.headers.get("x-switchyard-node") as string;
    expect(["node-a", "node-b"]).toContain(node);
    let chunks = 0;
    let killedAt = 0;
    let error: unknown;
    try {
      try {
        for await (const chunk of stream) {
          if (chunk.choices[0]?.delta?.content) chunks++;
          if (chunks === 5 && killedAt === 0) {
            // While it streams, the operator sees it in flight on its node and for its tenant.
            const during = await poolStats();
            expect(during.nodes.find((n) => n.node_id === node)?.inflight).toBe(1);
            expect(during.tenants.find((t) => t.tenant_id === id)?.inflight).toBe(1);
            await stack.stopAgent(node, "SIGKILL");
            killedAt = Date.now();
          }
        }
      } catch (err) {
        error = err;
      }
      expect(killedAt).toBeGreaterThan(0);
      // An error the SDK raises, naming what happened, within moments: no hang (the client's own
      // timeout is 30 s; the bound leaves room for a loaded box), no silent truncation.
      expect(error).toBeInstanceOf(OpenAI.APIError);
      expect((error as InstanceType<typeof OpenAI.APIError>).code).toBe("upstream_stream_broken");
      expect((error as Error).message).toMatch(/failed mid-stream/);
      expect(Date.now() - killedAt).toBeLessThan(15_000);
      expect(chunks).toBeLessThan(3_000);

      // The stream's end reached the client after its usage was recorded: cut off, estimated from
      // what was streamed (the engine's own count never came).
      const usage = await usageOf(client);
      expect(usage).toMatchObject({ num_model_requests: 1, failed_requests: 1, estimated_requests: 1 });
      expect(usage.output_tokens).toBeGreaterThanOrEqual(chunks);
      expect(usage.input_tokens).toBeGreaterThan(0);

      const after = await waitUntil("the pool to release the request", async () => {
        const s = await poolStats();
        return s.inflight === 0 ? s : undefined;
      }, 20_000);
      expect(after.nodes.every((n) => n.inflight === 0)).toBe(true);
      expect(after.tenants.find((t) => t.tenant_id === id)?.inflight ?? 0).toBe(0);
    } finally {
      // A failed assertion must not leave the agent dead for the tests after this one.
      if (killedAt > 0) await restartAgent(node);
    }
  });
});

describe("an agent killed before the first byte", () => {
  it("is retried on another node: the client gets a normal answer, charged once", async () => {
    const { client } = await tenant("retry", { rpm_limit: 100 });
    // The request must land on node-b, whose engine holds it without answering.
    expect((await stack.admin("POST", "/nodes/node-a/drain")).status).toBe(200);
    engineB.hold();
    let pending: ReturnType<typeof startRequest> | undefined;
    const startRequest = () =>
      client.chat.completions
        .create({ model: MODEL, stream: true, stream_options: { include_usage: true }, max_tokens: 8, messages: [{ role: "user", content: "Are you there?" }] })
        .withResponse();
    let killed = false;
    try {
      try {
        pending = startRequest();
        await waitUntil("node-b's engine to hold the request", () => engineB.held.length === 1, 20_000, 20);
        expect((await stack.admin("POST", "/nodes/node-a/undrain")).status).toBe(200);
        await stack.stopAgent("node-b", "SIGKILL");
        killed = true;
      } finally {
        engineB.release();
        await stack.admin("POST", "/nodes/node-a/undrain");
      }
      const killedAt = Date.now();
      const { data: stream, response } = await pending;
      // Retried at once, not after some timeout (with room for a loaded box).
      expect(Date.now() - killedAt).toBeLessThan(15_000);
      expect(response.status).toBe(200);
      expect(response.headers.get("x-switchyard-node")).toBe("node-a");
      const requestId = response.headers.get("x-request-id") as string;
      let content = 0;
      let finish: string | null | undefined;
      let usage: OpenAI.CompletionUsage | undefined;
      for await (const chunk of stream) {
        if (chunk.choices[0]?.delta?.content) content++;
        finish = chunk.choices[0]?.finish_reason ?? finish;
        if (chunk.usage) usage = chunk.usage;
      }
      expect(content).toBeGreaterThan(0);
      expect(finish).toBe("length");
      expect(usage?.completion_tokens).toBe(8);

      // One request in the tenant's usage and one against its rate limit.
      expect(await usageOf(client)).toMatchObject({ num_model_requests: 1, failed_requests: 0, estimated_requests: 0, input_tokens: usage?.prompt_tokens, output_tokens: 8 });
      expect(response.headers.get("x-ratelimit-remaining-requests")).toBe("99");
      const next = await client.chat.completions.create({ model: MODEL, max_tokens: 1, messages: [{ role: "user", content: "again" }] }).withResponse();
      expect(next.response.headers.get("x-ratelimit-remaining-requests")).toBe("98");

      // The operator finds the failed attempt in the edge's log, under the request's id (wrangler
      // passes the edge's output on to the file: give it a moment on a slow box).
      const edgeLogHas = () =>
        readFileSync(join(dir.path, "logs", "edge.log"), "utf8")
          .split("\n")
          .some((l) => l.includes(requestId) && l.includes("node_attempt_failed") && l.includes("node-b"));
      await waitUntil("the failed attempt in the edge's log", edgeLogHas, 10_000);
      // Releases are sent once a response has ended (waitUntil): the last one may still be on its way.
      await waitUntil("every request released", async () => (await poolStats()).inflight === 0, 20_000);
    } finally {
      // A failed assertion must not leave node-b's agent dead for the tests after this one.
      if (killed) await restartAgent("node-b");
    }
  });
});

describe("an engine crash", () => {
  it("ends a stream it was serving with a clean error, recorded as cut off", async () => {
    const { client } = await tenant("engine-cut");
    expect((await stack.admin("POST", "/nodes/node-a/drain")).status).toBe(200);
    let stream: Stream<OpenAI.Chat.Completions.ChatCompletionChunk>;
    try {
      const started = await client.chat.completions
        .create({ model: MODEL, stream: true, max_tokens: 3_000, messages: [{ role: "user", content: "Another long story, please." }] })
        .withResponse();
      expect(started.response.headers.get("x-switchyard-node")).toBe("node-b");
      stream = started.data;
    } finally {
      await stack.admin("POST", "/nodes/node-a/undrain");
    }
    let chunks = 0;
    let crashedAt = 0;
    let error: unknown;
    try {
      for await (const chunk of stream) {
        if (chunk.choices[0]?.delta?.content) chunks++;
        if (chunks === 5 && crashedAt === 0) {
          await engineB.crash();
          crashedAt = Date.now();
        }
      }
    } catch (err) {
      error = err;
    }
    try {
      expect(crashedAt).toBeGreaterThan(0);
      expect(error).toBeInstanceOf(OpenAI.APIError);
      expect((error as InstanceType<typeof OpenAI.APIError>).code).toBe("upstream_stream_broken");
      expect(Date.now() - crashedAt).toBeLessThan(15_000);
      expect(await usageOf(client)).toMatchObject({ num_model_requests: 1, failed_requests: 1 });
      await waitUntil("the pool to release the request", async () => (await poolStats()).inflight === 0, 20_000);
    } finally {
      await engineB.restart();
    }
    await waitStatus("node-b", "healthy", 20_000);
  });

  it("is reported unhealthy by its agent and routed around without a failed request; both recover when it returns", async () => {
    const { key } = await tenant("crash");
    const agentHealth = async () => (await fetch(`${stack.agents.get("node-b")?.url}/healthz`)).status;
    // Start from a known state: the agent sees its engine up and the pool has heard so (a heartbeat
    // from the previous test's outage must not pass for this one's detection).
    await waitUntil("node-b's agent to see its engine up", async () => (await agentHealth()) === 200, 20_000);
    await waitStatus("node-b", "healthy", 20_000);
    const load = traffic(key);
    let engineDown = false;
    try {
      await waitUntil("traffic on both nodes", () => new Set(load.results.map((r) => r.node)).size >= 2, 20_000);
      await engineB.crash();
      engineDown = true;
      const crashedAt = Date.now();
      // The agent notices at its next health poll, then still beats, saying its engine is unhealthy:
      // the node is not lost but unhealthy. (Seconds normally; the bounds leave room for a loaded box.)
      await waitUntil("node-b's agent to report its engine down", async () => (await agentHealth()) === 503, 15_000);
      await waitStatus("node-b", "unhealthy", 15_000);
      const detectedAt = Date.now();
      // Requests sent once the pool knows (however slowly a loaded box sends them) all go to node-a.
      const whileDown = await waitUntil("four requests sent after the detection", () => {
        const after = load.results.filter((r) => r.startedAt > detectedAt);
        return after.length > 3 ? after : undefined;
      }, 20_000);
      expect(whileDown.every((r) => r.node === "node-a")).toBe(true);

      await engineB.restart();
      engineDown = false;
      await waitStatus("node-b", "healthy", 20_000);
      const recoveredAt = Date.now();
      await waitUntil("a request served by node-b again", () => load.results.some((r) => r.startedAt > recoveredAt && r.node === "node-b"), 20_000);
      expect(crashedAt).toBeLessThan(detectedAt);
    } finally {
      await load.stop();
      // A failed assertion must not leave the engine down for the tests after this one.
      if (engineDown) await engineB.restart();
    }
    // Not one request failed: those that met the dead engine before detection were retried.
    expect(load.results.filter((r) => r.status !== 200)).toEqual([]);
  });
});

describe("an engine that ends a stream early without saying so", () => {
  it("is reported to the client as a broken stream, not passed off as a finished one", async () => {
    const { client } = await tenant("early-end");
    expect((await stack.admin("POST", "/nodes/node-a/drain")).status).toBe(200);
    engineB.truncateStreams(6);
    let chunks = 0;
    let finish: string | null | undefined;
    let error: unknown;
    try {
      const { data: stream, response } = await client.chat.completions
        .create({ model: MODEL, stream: true, max_tokens: 200, messages: [{ role: "user", content: "Go on." }] })
        .withResponse();
      expect(response.headers.get("x-switchyard-node")).toBe("node-b");
      for await (const chunk of stream) {
        if (chunk.choices[0]?.delta?.content) chunks++;
        finish = chunk.choices[0]?.finish_reason ?? finish;
      }
    } catch (err) {
      error = err;
    } finally {
      engineB.truncateStreams(undefined);
      await stack.admin("POST", "/nodes/node-a/undrain");
    }
    expect(chunks).toBeGreaterThan(0);
    expect(finish).toBeUndefined();
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect((error as InstanceType<typeof OpenAI.APIError>).code).toBe("upstream_stream_broken");
    expect(await usageOf(client)).toMatchObject({ num_model_requests: 1, failed_requests: 1, estimated_requests: 1 });
  });
});

describe("heartbeats lost", () => {
  it("take the node out of the pool after the stale bound, with no failed request, and it rejoins when they resume", async () => {
    const { key } = await tenant("beats");
    const load = traffic(key);
    try {
      await waitUntil("traffic on both nodes", () => new Set(load.results.map((r) => r.node)).size >= 2, 20_000);
      heartbeatsA.block();
      // Lost, and not before the stale bound had passed since the last beat the edge received (its
      // own record; beats delayed on a loaded box make "since the block" the wrong clock).
      const { lastBeat, seenAt } = await waitUntil("node-a to be lost", async () => {
        const nodes = await stack.waitForNodes(() => true);
        const live = nodes.find((n) => n.id === "node-a")?.live.find((l) => l.model === MODEL) as { status: string; last_heartbeat_at: string } | undefined;
        return live?.status === "lost" ? { lastBeat: Date.parse(live.last_heartbeat_at), seenAt: Date.now() } : undefined;
      }, STALE_MS + 15_000, 50);
      expect(seenAt - lastBeat).toBeGreaterThan(STALE_MS);
      const lostAt = Date.now();
      // The agent knows: its failed beats are counted on its /metrics.
      const metrics = await (await fetch(`${stack.agents.get("node-a")?.url}/metrics`)).text();
      expect(Number(/switchyard_agent_heartbeats_total\{[^}]*result="failed"[^}]*\} (\d+)/.exec(metrics)?.[1] ?? 0)).toBeGreaterThan(0);
      const whileLost = await waitUntil("four requests sent while node-a is lost", () => {
        const after = load.results.filter((r) => r.startedAt > lostAt);
        return after.length > 3 ? after : undefined;
      }, 20_000);
      expect(whileLost.every((r) => r.node === "node-b")).toBe(true);

      heartbeatsA.unblock();
      // Back at its next beat (a second here; the bound leaves room for a loaded box).
      await waitStatus("node-a", "healthy", 20_000);
      const backAt = Date.now();
      await waitUntil("a request served by node-a again", () => load.results.some((r) => r.startedAt > backAt && r.node === "node-a"), 20_000);
    } finally {
      heartbeatsA.unblock();
      await load.stop();
    }
    expect(load.results.filter((r) => r.status !== 200)).toEqual([]);
  });
});

describe("the L2 cache server gone", () => {
  /** A greedy completion on node-c: its text and how many prompt tokens came from cached KV. */
  async function ask(client: OpenAI, prompt: string): Promise<{ text: string; cached: number }> {
    const stream = await client.completions.create({ model: LLAMA, prompt, max_tokens: 6, temperature: 0, stream: true, stream_options: { include_usage: true } });
    let text = "";
    let cached = 0;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.text ?? "";
      if (chunk.usage) cached = (chunk.usage as { prompt_tokens_details?: { cached_tokens?: number } }).prompt_tokens_details?.cached_tokens ?? 0;
    }
    return { text, cached };
  }
  const prompt = (salt: string) => `${salt}: ${"The quick brown fox jumps over the lazy dog. ".repeat(9)}`;

  it("costs recomputation only: every request still answers, the same text as before", async () => {
    const { client } = await tenant("kv");
    const P = prompt("first prompt");
    const Q = prompt("second prompt");
    // P and Q each fill L1, so each evicts the other there: a repeat has to come from L2.
    const p1 = await ask(client, P);
    const q1 = await ask(client, Q);
    const p2 = await waitUntil("P restored from L2", async () => {
      const r = await ask(client, P);
      return r.cached > 64 ? r : undefined;
    }, 30_000, 300);
    expect(p2.text).toBe(p1.text);
    const l2Hits = async () => {
      const metrics = await (await fetch(`${stack.agents.get("node-c")?.url}/metrics`)).text();
      return Number(/switchyard_kv_tier_hits_total\{[^}]*tier="l2"[^}]*\} (\d+)/.exec(metrics)?.[1] ?? 0);
    };
    expect(await l2Hits()).toBeGreaterThan(0);

    process.kill(-(cacheServer.pid as number), "SIGKILL");
    const t0 = Date.now();
    // Q is no longer wholly in L1 (P took most of its place) and L2 is gone: what L1 lacks is
    // recomputed, to the same greedy text.
    const hitsBefore = await l2Hits();
    const q2 = await ask(client, Q);
    expect(q2.text).toBe(q1.text);
    expect(q2.cached).toBeLessThan(p2.cached);
    expect(await l2Hits()).toBe(hitsBefore);
    for (const salt of ["after one", "after two"]) expect((await ask(client, prompt(salt))).text.length).toBeGreaterThan(0);
    // No request hung on the dead server (four short completions; room left for a loaded box).
    expect(Date.now() - t0).toBeLessThan(30_000);
    expect(await usageOf(client)).toMatchObject({ failed_requests: 0 });

    // The operator sees the tier down in the node's report, the node itself healthy.
    const nodeC = await waitUntil("node-c's report of its L2 server down", async () => {
      const n = (await poolStats(LLAMA)).nodes.find((x) => x.node_id === "node-c");
      return n?.kv_cache?.tiers.find((t) => t.tier === "l2")?.servers_up === 0 ? n : undefined;
    }, 20_000, 250);
    expect(nodeC.status).toBe("healthy");
    expect(stack.agents.get("node-c")?.process.exitCode).toBeNull();
  });
});

describe("the edge restarted, its pool and ledger objects with it", () => {
  it("keeps usage (counted once), VTC counters and the node registry, and frees the slot of a stream it cut", async () => {
    // A stream under way when the edge dies: nobody is left to release its lease.
    const streaming = await tenant("restart-stream");
    const cut = await streaming.client.chat.completions.create({ model: MODEL, stream: true, max_tokens: 3_000, messages: [{ role: "user", content: "A story for the restart." }] });
    const cutEnded = (async () => {
      for await (const _chunk of cut);
    })().then(
      () => "ended",
      (err: unknown) => err,
    );
    // node-a cannot beat while the edge is down and back up: what the registry shows of it then
    // is what the pool object kept. Cut first, so that a beat already on its way has landed by the
    // time of the restart.
    let round: { id: string; client: OpenAI; before: UsageTotals; vtcBefore: number | null | undefined } | undefined;
    heartbeatsA.block();
    try {
      // Requests all at once, so that the restart comes before the ledger's flush (2 s after its
      // first record). A loaded box can take longer than that; then the round is run again with a
      // fresh tenant, so the restart always meets usage that is not in D1 yet.
      for (let attempt = 1; attempt <= 3 && !round; attempt++) {
        const { id, client } = await tenant(`restart${attempt}`);
        const answers = await Promise.all([0, 1, 2].map((i) => client.chat.completions.create({ model: MODEL, max_tokens: 4 + i, messages: [{ role: "user", content: `before ${i}` }] })));
        const prompt = answers.reduce((a, r) => a + (r.usage?.prompt_tokens ?? 0), 0);
        const completion = answers.reduce((a, r) => a + (r.usage?.completion_tokens ?? 0), 0);
        const [before, stats, d1] = await Promise.all([
          usageOf(client),
          poolStats(),
          stack.admin<{ tenants: Array<{ id: string; usage: { today: { requests: number } } }> }>("GET", "/stats"),
        ]);
        expect(before).toMatchObject({ num_model_requests: 3, input_tokens: prompt, output_tokens: completion });
        const vtcBefore = stats.tenants.find((t) => t.tenant_id === id)?.vtc_counter;
        expect(vtcBefore).toBeGreaterThan(0);
        // Not in D1 yet: what has to survive is the ledger's own log.
        if ((d1.body.tenants.find((x) => x.id === id)?.usage.today.requests ?? 0) === 0) round = { id, client, before, vtcBefore };
      }
      if (!round) throw new Error("three times the ledger flushed to D1 before the edge could be restarted: the box is too slow for this test");
      const { id, client, before, vtcBefore } = round;

      const restartAt = Date.now();
      // A crash, not a shutdown: the ledger's usage is still unflushed to D1 (it flushes after 2 s).
      await stack.restartEdge("SIGKILL");
      // The stream's connection went with the edge: an error, not a hang (no error event can be sent).
      expect(await cutEnded).toBeInstanceOf(Error);
      const nodes = await stack.waitForNodes(() => true);
      const a = nodes.find((n) => n.id === "node-a")?.live.find((l) => l.model === MODEL) as { status: string; last_heartbeat_at?: string } | undefined;
      expect(a).toBeDefined();
      expect(Date.parse(a?.last_heartbeat_at as string)).toBeLessThan(restartAt);

      expect(await usageOf(client)).toEqual(before);
      const restored = await poolStats();
      expect(restored.tenants.find((t) => t.tenant_id === id)?.vtc_counter).toBe(vtcBefore);
      expect(restored.tenants.find((t) => t.tenant_id === streaming.id)?.inflight).toBe(1);

      // node-b beats again and serves; node-a rejoins once its beats get through.
      await waitStatus("node-b", "healthy", 30_000);
      heartbeatsA.unblock();
      await waitStatus("node-a", "healthy", 30_000);
    } finally {
      heartbeatsA.unblock();
    }
    const { id, client, before } = round;
    // The cut stream's lease is dropped once its node's beats show nobody runs it (10 beats, ≥ 10 s).
    await waitUntil("the cut stream's slot to be freed", async () => (await poolStats()).inflight === 0, 40_000, 500);
    const after = await client.chat.completions.create({ model: MODEL, max_tokens: 2, messages: [{ role: "user", content: "after" }] });
    expect(after.choices[0]?.message.content?.length).toBeGreaterThan(0);

    // Once flushed to D1, the operator's summary (D1 aggregates) and the tenant's report (ledger)
    // agree: each request counted once.
    const expected = before.num_model_requests + 1;
    const summary = await waitUntil("the usage flushed to D1", async () => {
      const r = await stack.admin<{ tenants: Array<{ id: string; usage: { today: { requests: number } } }> }>("GET", "/stats");
      const t = r.body.tenants.find((x) => x.id === id);
      return t && t.usage.today.requests >= expected ? t : undefined;
    }, 30_000, 500);
    expect(summary.usage.today.requests).toBe(expected);
    expect((await usageOf(client)).num_model_requests).toBe(expected);
  });
});
