/**
 * AgentKvTiers with real cache servers on loopback: lookups across L1 and L2, the three ingestion
 * modes and the cap on writes in flight, windowed hit rates, membership from the edge's heartbeat
 * answer, and the metrics on the agent's /metrics.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startAgent } from "../../../dataplane/agent/agent";
import { parseAgentConfig } from "../../../dataplane/agent/config";
import { parsePrometheusText } from "../../../dataplane/engines/openai/prometheus-text";
import { AgentKvTiers } from "../../../dataplane/kvcache/agent-tiers";
import type { CacheServer } from "../../../dataplane/kvcache/server/cache-server";
import { addr, bytes, key, startServer } from "./l2-test-support";
import { fakeEdge, recordingLogger, SECRET, silent, waitFor } from "./llamacpp-tiers-support";

let s1: CacheServer;
let s2: CacheServer;
const open: AgentKvTiers[] = [];

function tiers(config: Record<string, unknown>, now?: () => number): AgentKvTiers {
  const t = new AgentKvTiers({ l1: { bytes: 1_000_000, policy: "lru" }, ...config }, { log: silent, now });
  open.push(t);
  return t;
}

beforeAll(async () => {
  [s1, s2] = await Promise.all([startServer(), startServer()]);
});

afterAll(async () => {
  await Promise.allSettled(open.map((t) => t.close()));
  await Promise.allSettled([s1?.close(), s2?.close()]);
});

const keys = (n: number, salt: string) => Array.from({ length: n }, (_, i) => key(`${salt}:${i}`));
const values = (n: number, size = 10_000) => Array.from({ length: n }, (_, i) => bytes(size, i + 1));

describe("AgentKvTiers over L1 and L2", () => {
  it("finds a prefix in L1, then the rest in L2, and keeps what L2 gave in L1", async () => {
    const writer = tiers({ l2: { servers: [addr(s1), addr(s2)], statsRefreshMs: 0 } });
    const reader = tiers({ l2: { servers: [addr(s1), addr(s2)], statsRefreshMs: 0 } });
    const ks = keys(6, "prefix");
    const vs = values(6);
    writer.store(ks, vs);
    await writer.flushWrites();
    expect(writer.spills).toEqual({ sent: 6, dropped: 0 });
    expect(s1.stats().objects + s2.stats().objects).toBe(6);

    reader.store(ks.slice(0, 2), vs.slice(0, 2));
    await reader.flushWrites();
    const found = await reader.lookup([...ks, key("not-there")]);
    expect(found).toMatchObject({ fromL1: 2, fromL2: 4 });
    found.values.forEach((v, i) => expect(Buffer.from(v).equals(vs[i] as Buffer)).toBe(true));
    found.done();
    // What came from L2 is in L1 now, and was not written back.
    expect(reader.l1.longestPrefixSync(ks)).toBe(6);
    await reader.flushWrites();
    expect(reader.spills.sent).toBe(2);
  });

  it("evicted ingestion writes a chunk to L2 only when L1 lets it go", async () => {
    const t = tiers({ l1: { bytes: 25_000, policy: "lru" }, l2: { servers: [addr(s1)], statsRefreshMs: 0 }, l2Ingestion: "evicted" });
    const ks = keys(3, "victim");
    t.store(ks.slice(0, 2), values(2));
    await t.flushWrites();
    expect(t.spills.sent).toBe(0);
    t.store([ks[2] as string], values(1)); // evicts the least recent: the chain's tail, ks[1] (stored first)
    await t.flushWrites();
    expect(t.spills.sent).toBe(1);
    expect(t.l1.has(ks[1] as string)).toBe(false);
    const other = tiers({ l2: { servers: [addr(s1)], statsRefreshMs: 0 } });
    expect(await other.l2?.longestPrefix([ks[1] as string])).toBe(1);
  });

  it("queues writes beyond the cap in flight, drops beyond the queue, and keeps a chain's head", async () => {
    const t = tiers({ l2: { servers: [addr(s2)], statsRefreshMs: 0 }, l2MaxWritesInFlight: 2, l2MaxQueuedBytes: 15_000 });
    const ks = keys(5, "burst");
    t.store(ks, values(5)); // L1 takes them tail first; L2 gets them head first
    await t.flushWrites();
    // Two in flight, one queued (10 kB of 15 kB), two dropped: the chain's last two chunks.
    expect(t.spills).toEqual({ sent: 3, dropped: 2 });
    expect(await t.l2?.longestPrefix(ks)).toBe(3);
  });

  it("treats a dead L2 as misses: the L1 prefix is all a lookup returns", async () => {
    const t = tiers({ l2: { servers: ["127.0.0.1:1"], connectTimeoutMs: 200, statsRefreshMs: 0 } });
    const ks = keys(3, "alone");
    t.store(ks.slice(0, 1), values(1));
    await t.flushWrites();
    const found = await t.lookup(ks);
    expect(found).toMatchObject({ fromL1: 1, fromL2: 0 });
  });

  it("reports hit rates over its window only", async () => {
    let now = 0;
    const t = tiers({ windowMs: 10_000 }, () => now);
    const ks = keys(4, "window");
    t.store(ks.slice(0, 2), values(2));
    await t.lookup(ks); // 2 hits, 2 misses
    let l1 = t.report().tiers[0];
    expect(l1).toMatchObject({ tier: "l1", queries: 4, hits: 2, hitRate: 0.5 });
    now = 5_000;
    await t.lookup(ks.slice(0, 2)); // 2 more hits
    l1 = t.report().tiers[0];
    expect(l1).toMatchObject({ queries: 6, hits: 4 });
    now = 20_000;
    l1 = t.report().tiers[0];
    expect(l1?.queries).toBe(0);
    expect(l1?.hitRate).toBeUndefined();
    const e = t.forEngine("m");
    expect(t.engineHitRate("m")).toBeUndefined(); // no lookups yet
    e.record(100, 30, 20);
    e.record(100, 0, 10);
    expect(t.engineHitRate("m")).toBeCloseTo(0.3);
    now = 40_000;
    expect(t.engineHitRate("m")).toBeUndefined(); // nothing in the last 10 s
  });
});

describe("the agent's L2 membership and metrics", () => {
  it("takes the cache servers from the edge's heartbeat answer and exports the tier metrics", async () => {
    let list: unknown = [addr(s1), addr(s2)];
    const edge = await fakeEdge(() => ({ cacheServers: list as string[] }));
    const log = recordingLogger();
    const agent = await startAgent(
      parseAgentConfig(
        {
          nodeId: "n1",
          region: "local",
          listen: { port: 0 },
          edge: { url: edge.url, nodeSecret: SECRET, heartbeatIntervalMs: 200 },
          engines: [{ kind: "sim", model: "sim", kvCapacityTokens: 4096, modelShape: { layers: 1, kvHeads: 1, headDim: 8 } }],
          kvCache: { l1: { bytes: "1MiB" }, l2: {} },
        },
        "test",
      ),
      { log },
    );
    try {
      const l2 = agent.kvTiers?.l2;
      await waitFor(() => l2?.members().length === 2, "the edge's membership");
      expect(l2?.members().sort()).toEqual([addr(s1), addr(s2)].sort());
      list = [{ id: addr(s2), weight: 2 }];
      await waitFor(() => l2?.members().length === 1, "a smaller membership");
      list = [{ id: "x", weight: -3 }];
      await waitFor(() => log.lines.some((l) => l.event === "heartbeat_cache_servers_invalid"), "the invalid list to be refused");
      expect(l2?.members()).toEqual([addr(s2)]);

      const kv = agent.kvTiers as AgentKvTiers;
      const ks = keys(2, "metrics");
      kv.store(ks, values(2));
      await kv.flushWrites();
      await kv.lookup(ks);
      const text = await (await fetch(`${agent.url}/metrics`)).text();
      const samples = parsePrometheusText(text);
      const value = (name: string, labels: Record<string, string>) => samples.find((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v))?.value;
      expect(value("switchyard_kv_tier_hits_total", { tier: "l1" })).toBe(2);
      expect(value("switchyard_kv_tier_capacity_bytes", { tier: "l1" })).toBe(2 ** 20);
      expect(value("switchyard_kv_tier_bytes_in_total", { tier: "l2" })).toBe(20_000);
      expect(value("switchyard_kv_tier_l2_writes_total", { result: "sent" })).toBe(2);
      expect(value("switchyard_kv_tier_op_seconds_count", { tier: "l2", op: "put" })).toBe(2);
      expect(value("switchyard_kv_tier_op_seconds_count", { tier: "l1", op: "get" })).toBe(1);
      expect(text).toContain('switchyard_kv_tier_lookup_tokens_total{model="sim",source="computed"');
    } finally {
      await agent.stop({ leaving: false });
      await edge.close();
    }
  });
});
