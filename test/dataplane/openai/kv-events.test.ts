/** vLLM KV events: ZMTP pub/sub, msgpack decoding, and the emulator → agent feedback path. */
import { encode } from "@msgpack/msgpack";
import { afterAll, describe, expect, it } from "vitest";
import { OpenAIEngine } from "../../../dataplane/engines/openai/adapter";
import { openAIEngineConfigSchema } from "../../../dataplane/engines/openai/config";
import { KvEventTracker, summariseBatch } from "../../../dataplane/engines/openai/kv-events";
import { startSimServer } from "../../../dataplane/engines/sim/server";
import { createLogger } from "../../../dataplane/lib/log";
import { greeting, ZmtpPublisher, ZmtpReader, ZmtpSubscriber } from "../../../dataplane/lib/zmtp";
import { validateGenerationRequest } from "../../../protocol/openai-request";

const silent = createLogger({ component: "test" });
const cleanups: Array<() => unknown> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function until(cond: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("ZMTP", () => {
  it("delivers multipart messages to matching subscribers, long frames included", async () => {
    const pub = await ZmtpPublisher.listen("127.0.0.1", 0);
    cleanups.push(() => pub.close());
    const got: Buffer[][] = [];
    const other: Buffer[][] = [];
    const sub = new ZmtpSubscriber({ endpoint: `tcp://127.0.0.1:${pub.port}`, topic: "kv" });
    const sub2 = new ZmtpSubscriber({ endpoint: `tcp://127.0.0.1:${pub.port}`, topic: "other" });
    cleanups.push(() => sub.close(), () => sub2.close());
    sub.on("message", (m: Buffer[]) => got.push(m));
    sub2.on("message", (m: Buffer[]) => other.push(m));
    await until(() => pub.subscribers === 2, "subscriptions");
    const big = Buffer.alloc(70_000, 7);
    pub.publish([Buffer.from("kv-events"), Buffer.from("a"), big]);
    pub.publish([Buffer.from("kv-events"), Buffer.from("b")]);
    await until(() => got.length === 2, "messages");
    expect(got[0]?.map((p) => p.length)).toEqual([9, 1, 70_000]);
    expect(got[0]?.[2]?.equals(big)).toBe(true);
    expect(got[1]?.[1]?.toString()).toBe("b");
    expect(other).toHaveLength(0);
  });

  it("reconnects to a publisher that restarts on the same port", async () => {
    const pub = await ZmtpPublisher.listen("127.0.0.1", 0);
    const port = pub.port;
    const sub = new ZmtpSubscriber({ endpoint: `tcp://127.0.0.1:${port}`, minBackoffMs: 20, maxBackoffMs: 100 });
    cleanups.push(() => sub.close());
    const got: string[] = [];
    sub.on("message", (m: Buffer[]) => got.push(m[0]?.toString() ?? ""));
    await until(() => pub.subscribers === 1, "subscription");
    pub.publish([Buffer.from("one")]);
    await until(() => got.length === 1, "first message");
    await pub.close();
    const again = await ZmtpPublisher.listen("127.0.0.1", port);
    cleanups.push(() => again.close());
    await until(() => again.subscribers === 1, "resubscription");
    again.publish([Buffer.from("two")]);
    await until(() => got.length === 2, "second message");
    expect(got).toEqual(["one", "two"]);
  });

  it("refuses peers that are not ZMTP and frames over the limit", () => {
    const reader = new ZmtpReader(() => {}, () => {});
    expect(() => reader.push(Buffer.from("GET / HTTP/1.1\r\n".padEnd(64, " ")))).toThrow(/greeting/);
    const r2 = new ZmtpReader(() => {}, () => {});
    r2.push(greeting(true));
    const huge = Buffer.alloc(9);
    huge[0] = 0x02;
    huge.writeBigUInt64BE(1n << 40n, 1);
    expect(() => r2.push(huge)).toThrow(/over the limit/);
  });
});

describe("vLLM KV event batches", () => {
  it("reads array_like batches (vLLM 0.9-0.11) and map-shaped events (newer)", () => {
    const arrayLike = encode([1.5, [["BlockStored", [1n, 2n], null, new Array(32).fill(1), 16, null, "GPU"], ["BlockRemoved", [1n, 2n, 3n], "GPU"]], null], { useBigInt64: true });
    expect(summariseBatch(arrayLike)).toEqual({ stored: 2, removed: 3, cleared: false, blockSize: 16 });
    const maps = encode({ ts: 2, events: [{ type: "BlockRemoved", block_hashes: [9], medium: "GPU" }, { type: "AllBlocksCleared" }] });
    expect(summariseBatch(maps)).toMatchObject({ removed: 1, cleared: true });
    // Removals from the CPU offload tier are not GPU evictions.
    expect(summariseBatch(encode([3, [["BlockRemoved", [1, 2], "CPU"]]])).removed).toBe(0);
    expect(() => summariseBatch(encode("nonsense"))).toThrow();
  });

  it("counts evicted tokens by block size and starts a new epoch on a reset or a sequence gap", () => {
    const t = new KvEventTracker();
    const msg = (seq: number, events: unknown[]) => {
      const s = Buffer.alloc(8);
      s.writeBigUInt64BE(BigInt(seq));
      return [Buffer.from(""), s, Buffer.from(encode([0, events]))];
    };
    t.handle(msg(0, [["BlockStored", [1], null, [], 32]]));
    t.handle(msg(1, [["BlockRemoved", [1, 2]]]));
    expect(t.evictedTokens).toBe(64);
    const e1 = t.epoch;
    t.handle(msg(2, [["AllBlocksCleared"]]));
    const e2 = t.epoch;
    expect(e2).not.toBe(e1);
    t.handle(msg(5, []));
    expect(t.epoch).not.toBe(e2);
  });
});

describe("emulator → agent KV feedback, over ZMQ as with vLLM", () => {
  it("the openai adapter reports the evictions the emulator publishes", async () => {
    const sim = await startSimServer({ port: 0, config: { kind: "sim", model: "llama", timeScale: 50, kvCapacityTokens: 4_096 }, kvEvents: { port: 0 } });
    cleanups.push(() => sim.close());
    expect(sim.kvEventsEndpoint).toMatch(/^tcp:\/\/127\.0\.0\.1:\d+$/);
    const engine = new OpenAIEngine(openAIEngineConfigSchema.parse({ kind: "openai", model: "llama", url: sim.url, pollIntervalMs: 100, kvEvents: { endpoint: sim.kvEventsEndpoint } }), silent);
    cleanups.push(() => engine.stop());
    await engine.start();
    const epoch0 = engine.load().kvEpoch;
    expect(engine.load().kvEvictedTokens).toBe(0);
    await new Promise((r) => setTimeout(r, 100)); // let the subscription land
    // Distinct ~1.5k-token prompts through a 4k-token cache: older prompts' blocks get evicted.
    for (let i = 0; i < 6; i++) {
      const body = { model: "llama", max_tokens: 2, messages: [{ role: "user", content: `${i} `.repeat(1_500) }] };
      const raw = JSON.stringify(body);
      const res = await engine.handle({ requestId: `r${i}`, endpoint: "chat", body: validateGenerationRequest("chat", body), rawBody: new TextEncoder().encode(raw), signal: new AbortController().signal });
      await res.text();
    }
    await until(() => (engine.load().kvEvictedTokens ?? 0) > 0, "evictions to be reported");
    expect(engine.load().kvEpoch).toBe(epoch0);
    await fetch(`${sim.url}/reset_prefix_cache`, { method: "POST" });
    await until(() => engine.load().kvEpoch !== epoch0, "a new epoch after the cache reset");
  });
});
