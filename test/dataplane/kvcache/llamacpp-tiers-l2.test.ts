/**
 * Two node agents, each with its own real llama.cpp engine (generated model, one thread), sharing
 * one real cache server through L2: a prefix agent A computed is restored by agent B with the same
 * greedy tokens; another namespace never gets it; with the cache server gone, prompts are
 * recomputed without an error. Heartbeats carry the tiers' report.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startAgent, type RunningAgent } from "../../../dataplane/agent/agent";
import { parseAgentConfig } from "../../../dataplane/agent/config";
import type { LlamaCppEngine } from "../../../dataplane/engines/llamacpp/adapter";
import type { CacheServer } from "../../../dataplane/kvcache/server/cache-server";
import { addr, startServer } from "./l2-test-support";
import { complete, fakeEdge, MODEL_DIR, SECRET, text, waitFor } from "./llamacpp-tiers-support";

const MODEL = "tiny-kv-l2";
const C = 256;
let server: CacheServer;
let edge: Awaited<ReturnType<typeof fakeEdge>>;
let a: RunningAgent;
let b: RunningAgent;

async function agent(nodeId: string, l2: string): Promise<RunningAgent> {
  const config = parseAgentConfig(
    {
      nodeId,
      region: "local",
      listen: { port: 0 },
      edge: { url: edge.url, nodeSecret: SECRET, heartbeatIntervalMs: 200 },
      logLevel: "error",
      engines: [{ kind: "llamacpp", model: MODEL, generatedModelDir: MODEL_DIR, contextSize: 4096, sequences: 1 }],
      // Two writes in flight per server: a 7-chunk prefix goes through the write queue.
      kvCache: { chunkTokens: C, l1: { bytes: "32MiB" }, l2: { servers: [l2], statsRefreshMs: 0 }, l2MaxWritesInFlight: 2 },
    },
    "test",
  );
  return startAgent(config);
}

const engineOf = (x: RunningAgent) => x.engines.get(MODEL)?.engine as LlamaCppEngine;

beforeAll(async () => {
  server = await startServer();
  edge = await fakeEdge();
  [a, b] = await Promise.all([agent("node-a", addr(server)), agent("node-b", addr(server))]);
});

afterAll(async () => {
  await Promise.allSettled([a?.stop({ leaving: false }), b?.stop({ leaving: false })]);
  await server?.close();
  await edge?.close();
});

const P = text(2000, "region-wide-prefix");
const restorable = Math.floor(P.length / C) * C; // BOS + 2000 tokens: 7 full chunks before the last prompt token

describe("KV reuse across two agents through one cache server", () => {
  let cold: Awaited<ReturnType<typeof complete>>;

  it("agent A computes a prefix and writes its chunks through to L2", async () => {
    cold = await complete(engineOf(a), MODEL, P, { namespace: "t:acme:m" });
    expect(cold.status).toBe(200);
    expect(cold.cachedTokens).toBe(0);
    await engineOf(a).kvTiers?.idle();
    await a.kvTiers?.flushWrites();
    expect(a.kvTiers?.spills.sent).toBe(7);
    expect(server.stats().objects).toBe(7);
  });

  it("agent B restores it from L2 instead of recomputing: same tokens, sooner", async () => {
    const warm = await complete(engineOf(b), MODEL, P, { namespace: "t:acme:m" });
    expect(warm.cachedTokens).toBe(restorable);
    expect(warm.text).toBe(cold.text);
    expect(warm.ttftMs).toBeLessThan(cold.ttftMs * 0.6);
    const l2 = b.kvTiers?.l2?.stats();
    expect(l2?.hits).toBe(7);
    // B now holds the chunks in its own L1 too, and did not write them back to L2.
    expect(b.kvTiers?.l1.stats().entries).toBe(7);
    await b.kvTiers?.flushWrites();
    expect(b.kvTiers?.spills.sent).toBe(0);
    expect(b.kvTiers?.forEngine(MODEL).counters()).toMatchObject({ l1Tokens: 0, l2Tokens: restorable });
  });

  it("another namespace never restores those chunks, in L1 or L2", async () => {
    const hits = server.stats().hits;
    const other = await complete(engineOf(b), MODEL, P, { namespace: "t:globex:m" });
    expect(other.cachedTokens).toBe(0);
    expect(other.text).toBe(cold.text);
    expect(server.stats().hits).toBe(hits);
  });

  it("reports the tiers in heartbeats: capacities, use, hit rates", async () => {
    await waitFor(() => edge.beats.some((x) => x.nodeId === "node-b" && (x.kvCache?.tiers.find((t) => t.tier === "l2")?.hits ?? 0) > 0), "a beat with L2 hits");
    const beat = [...edge.beats].reverse().find((x) => x.nodeId === "node-b" && x.kvCache);
    expect(beat?.kvCache?.chunkTokens).toBe(C);
    const l1 = beat?.kvCache?.tiers.find((t) => t.tier === "l1");
    expect(l1?.capacityBytes).toBe(32 * 2 ** 20);
    expect(l1?.bytesUsed).toBeGreaterThan(0);
    const l2 = beat?.kvCache?.tiers.find((t) => t.tier === "l2");
    expect(l2).toMatchObject({ servers: 1, serversUp: 1 });
    expect(l2?.hitRate).toBeGreaterThan(0);
    const engine = beat?.engines.find((e) => e.model === MODEL);
    expect(engine?.kvTierHitRate).toBeGreaterThan(0);
  });

  it("with the cache server gone, prompts are recomputed and nothing fails", async () => {
    const P2 = text(1500, "written-before-the-outage");
    const first = await complete(engineOf(b), MODEL, P2, { namespace: "t:acme:m" });
    await engineOf(b).kvTiers?.idle();
    await b.kvTiers?.flushWrites();
    await server.close();
    const t0 = performance.now();
    const again = await complete(engineOf(a), MODEL, P2, { namespace: "t:acme:m" });
    expect(again.status).toBe(200);
    expect(again.cachedTokens).toBeLessThanOrEqual(1); // only the BOS A's slot still had
    expect(again.text).toBe(first.text);
    expect(performance.now() - t0).toBeLessThan(5_000);
    await engineOf(a).kvTiers?.idle();
    await a.kvTiers?.flushWrites(); // write-through to a dead server: settles, never throws
    const health = a.kvTiers?.l2?.clientStats().servers[0];
    expect(health?.up).toBe(false);
  });
});
