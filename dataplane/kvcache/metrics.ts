/**
 * Prometheus metrics for KV tiers, on the agent's registry:
 *
 *   switchyard_kv_tier_hits_total{tier}        counter  gets answered with a value
 *   switchyard_kv_tier_misses_total{tier}      counter  gets answered with nothing
 *   switchyard_kv_tier_bytes_in_total{tier}    counter  bytes written by puts
 *   switchyard_kv_tier_bytes_out_total{tier}   counter  bytes read by gets
 *   switchyard_kv_tier_evictions_total{tier}   counter  entries evicted to make room
 *   switchyard_kv_tier_bytes_used{tier}        gauge    bytes held (L1) or last known (remote)
 *   switchyard_kv_tier_capacity_bytes{tier}    gauge
 *   switchyard_kv_tier_op_seconds{tier,op}     histogram  latency of get / put / longest_prefix / delete
 *
 * Counters and gauges are read from each tier's stats() at scrape time (tiers keep cumulative
 * counts; nothing is double-counted and nothing goes stale). Latency needs the calls themselves:
 * wrap a tier with `timed(tier)` and use the wrapper where the agent calls the tier.
 *
 *   const kv = tierMetrics(agentMetrics.registry, [l1, l2]);
 *   const l1Timed = kv.timed(l1);   // a KvTier; l1's own sync methods stay untimed
 */
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { KvKey, KvTier, TierStats } from "./tier";

/** 1 µs (an L1 hit) .. 2.5 s (a remote fetch of a long prefix under load). */
export const KV_TIER_LATENCY_BUCKETS = [1e-6, 5e-6, 2.5e-5, 1e-4, 2.5e-4, 1e-3, 2.5e-3, 1e-2, 2.5e-2, 0.1, 0.25, 1, 2.5];

export type KvTierOp = "get" | "put" | "longest_prefix" | "delete";

export interface KvTierMetrics {
  readonly opSeconds: Histogram<"tier" | "op">;
  /** A KvTier that forwards to `tier` and observes each call's duration (also when it fails). */
  timed(tier: KvTier): KvTier;
}

const COUNTERS: [keyof TierStats, string, string][] = [
  ["hits", "hits_total", "KV tier gets answered with a value"],
  ["misses", "misses_total", "KV tier gets answered with nothing"],
  ["bytesIn", "bytes_in_total", "Bytes written into the KV tier by puts"],
  ["bytesOut", "bytes_out_total", "Bytes read out of the KV tier by gets"],
  ["evictions", "evictions_total", "KV tier entries evicted to make room"],
];

/**
 * Registers the KV tier metrics for `tiers` (a list, or a function returning the current list) on
 * `registry`. Call once per registry; tier names (`l1`, `l2`) become the `tier` label.
 */
export function tierMetrics(registry: Registry, tiers: readonly KvTier[] | (() => Iterable<KvTier>), prefix = "switchyard_kv_tier_"): KvTierMetrics {
  const current = typeof tiers === "function" ? tiers : () => tiers;
  const snapshot = () => [...current()].map((t) => [t.name, t.stats()] as const);
  for (const [field, suffix, help] of COUNTERS) {
    new Counter({
      name: prefix + suffix,
      help,
      labelNames: ["tier"],
      registers: [registry],
      collect() {
        this.reset();
        for (const [tier, s] of snapshot()) this.inc({ tier }, s[field]);
      },
    });
  }
  for (const [field, suffix, help] of [
    ["bytesUsed", "bytes_used", "Bytes held by the KV tier (remote tiers: last known)"],
    ["capacityBytes", "capacity_bytes", "Byte capacity of the KV tier"],
  ] as const) {
    new Gauge({
      name: prefix + suffix,
      help,
      labelNames: ["tier"],
      registers: [registry],
      collect() {
        this.reset();
        for (const [tier, s] of snapshot()) this.set({ tier }, s[field]);
      },
    });
  }
  const opSeconds = new Histogram({
    name: `${prefix}op_seconds`,
    help: "Latency of KV tier operations",
    labelNames: ["tier", "op"],
    buckets: KV_TIER_LATENCY_BUCKETS,
    registers: [registry],
  });
  return { opSeconds, timed: (tier) => new TimedTier(tier, opSeconds) };
}

class TimedTier implements KvTier {
  constructor(
    private readonly inner: KvTier,
    private readonly hist: Histogram<"tier" | "op">,
  ) {}

  get name(): string {
    return this.inner.name;
  }

  private async time<T>(op: KvTierOp, run: () => Promise<T>): Promise<T> {
    const start = process.hrtime.bigint();
    try {
      return await run();
    } finally {
      this.hist.observe({ tier: this.inner.name, op }, Number(process.hrtime.bigint() - start) / 1e9);
    }
  }

  get(key: KvKey, signal?: AbortSignal): Promise<Uint8Array | undefined> {
    return this.time("get", () => this.inner.get(key, signal));
  }

  put(key: KvKey, value: Uint8Array): Promise<void> {
    return this.time("put", () => this.inner.put(key, value));
  }

  longestPrefix(keys: readonly KvKey[], signal?: AbortSignal): Promise<number> {
    return this.time("longest_prefix", () => this.inner.longestPrefix(keys, signal));
  }

  delete(key: KvKey): Promise<void> {
    return this.time("delete", () => this.inner.delete(key));
  }

  stats(): TierStats {
    return this.inner.stats();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
