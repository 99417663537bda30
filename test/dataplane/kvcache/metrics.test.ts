/**
 * KV tier metrics: counters and gauges read from tiers' stats at scrape time, and a latency
 * histogram observed through the timed wrapper.
 */
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { DramTier } from "../../../dataplane/kvcache/l1/dram-tier";
import { tierMetrics } from "../../../dataplane/kvcache/metrics";
import type { KvTier, TierStats } from "../../../dataplane/kvcache/tier";

const key = (i: number) => i.toString(16).padStart(64, "0");

function fakeRemote(): KvTier {
  const stats: TierStats = { hits: 5, misses: 7, bytesIn: 100, bytesOut: 50, evictions: 2, bytesUsed: 900, capacityBytes: 1000 };
  return {
    name: "l2",
    get: async () => {
      throw new Error("unreachable");
    },
    put: async () => undefined,
    longestPrefix: async () => 0,
    delete: async () => undefined,
    stats: () => stats,
    close: async () => undefined,
  };
}

describe("tierMetrics", () => {
  it("exports each tier's counters and gauges, labelled by tier, current at every scrape", async () => {
    const registry = new Registry();
    const l1 = new DramTier({ capacityBytes: 20, policy: "lru" });
    const kv = tierMetrics(registry, [l1, fakeRemote()]);
    const l1t = kv.timed(l1);
    await l1t.put(key(1), new Uint8Array(10));
    await l1t.put(key(2), new Uint8Array(10));
    await l1t.put(key(3), new Uint8Array(10));
    await l1t.get(key(3));
    await l1t.get(key(1));
    await l1t.longestPrefix([key(2), key(3)]);
    const text = await registry.metrics();
    for (const line of [
      'switchyard_kv_tier_hits_total{tier="l1"} 1',
      'switchyard_kv_tier_misses_total{tier="l1"} 1',
      'switchyard_kv_tier_bytes_in_total{tier="l1"} 30',
      'switchyard_kv_tier_bytes_out_total{tier="l1"} 10',
      'switchyard_kv_tier_evictions_total{tier="l1"} 1',
      'switchyard_kv_tier_bytes_used{tier="l1"} 20',
      'switchyard_kv_tier_capacity_bytes{tier="l1"} 20',
      'switchyard_kv_tier_hits_total{tier="l2"} 5',
      'switchyard_kv_tier_evictions_total{tier="l2"} 2',
      'switchyard_kv_tier_op_seconds_count{tier="l1",op="put"} 3',
      'switchyard_kv_tier_op_seconds_count{tier="l1",op="get"} 2',
      'switchyard_kv_tier_op_seconds_count{tier="l1",op="longest_prefix"} 1',
    ]) {
      expect(text).toContain(line);
    }
    expect(text).toContain("# TYPE switchyard_kv_tier_hits_total counter");
    // A second scrape reflects new activity without double counting.
    await l1.get(key(3));
    expect(await registry.metrics()).toContain('switchyard_kv_tier_hits_total{tier="l1"} 2');
  });

  it("times failed calls too", async () => {
    const registry = new Registry();
    const remote = fakeRemote();
    const kv = tierMetrics(registry, () => [remote]);
    await expect(kv.timed(remote).get(key(1))).rejects.toThrow("unreachable");
    expect(await registry.metrics()).toContain('switchyard_kv_tier_op_seconds_count{tier="l2",op="get"} 1');
  });
});
