/**
 * The eviction benchmark's pieces: traces are a function of their seed, and the replay simulator
 * counts exactly the hits a real DramTier gets on the same trace (so the published hit ratios are
 * the tier's, not a model's).
 */
import { describe, expect, it } from "vitest";
import { simulate } from "../../../bench/kvcache/eviction/simulate";
import { DEFAULT_MULTI_TURN, DEFAULT_SHARED_PREFIX, multiTurnTrace, sharedPrefixTrace, type Trace, traceStats } from "../../../bench/kvcache/eviction/traces";
import { DramTier } from "../../../dataplane/kvcache/l1/dram-tier";

const small = {
  chat: (seed: number) => multiTurnTrace(seed, { ...DEFAULT_MULTI_TURN, sessions: 150 }),
  shared: (seed: number) => sharedPrefixTrace(seed, { ...DEFAULT_SHARED_PREFIX, groups: 40, requests: 600 }),
};

/** The trace with chunk sizes in MiB instead of bytes, so a DramTier can hold real buffers. */
function scaled(trace: Trace): Trace {
  return { ...trace, chunkBytes: trace.chunkBytes.map((b) => b / 2 ** 20) };
}

describe("eviction benchmark", () => {
  it("generates the same trace from the same seed and another from another seed", () => {
    for (const make of [small.chat, small.shared]) {
      const a = make(7);
      const b = make(7);
      expect(a.requests.length).toBe(b.requests.length);
      a.requests.forEach((r, i) => expect([...r]).toEqual([...(b.requests[i] as Int32Array)]));
      expect(traceStats(make(8))).not.toEqual(traceStats(a));
      const s = traceStats(a);
      expect(s.accesses).toBeGreaterThan(s.distinctChunks);
    }
  });

  it("shares chunks as the workloads say: chains are prefixes, suffixes are never reused", () => {
    const t = small.shared(3);
    const count = new Map<number, number>();
    for (const r of t.requests) for (const id of r) count.set(id, (count.get(id) ?? 0) + 1);
    // In a request, the reused chunks are a leading run: after the first one-use chunk all are one-use.
    for (const r of t.requests) {
      const firstUnique = [...r].findIndex((id) => count.get(id) === 1);
      if (firstUnique >= 0) for (const id of r.subarray(firstUnique)) expect(count.get(id)).toBe(1);
    }
  });

  it("counts the same hits as a DramTier replaying the trace", () => {
    for (const [trace, policy] of [
      [scaled(small.chat(1)), "lru"],
      [scaled(small.chat(2)), "s3fifo"],
      [scaled(small.shared(1)), "s3fifo"],
    ] as const) {
      const capacityBytes = Math.floor(traceStats(trace).footprintBytes * 0.05);
      for (const order of ["forward", "reverse"] as const) {
        const sim = simulate(trace, policy === "lru" ? { name: "lru", capacityBytes } : { name: "s3fifo", capacityBytes, smallRatio: 0.3, threshold: 1 }, order);
        const tier = new DramTier({ capacityBytes, policy });
        let chunkHits = 0;
        let prefixHits = 0;
        const key = (id: number) => id.toString(16).padStart(64, "0");
        for (const req of trace.requests) {
          const keys = [...req].map(key);
          prefixHits += tier.longestPrefixSync(keys);
          chunkHits += keys.filter((k) => tier.has(k)).length;
          const idx = [...keys.keys()];
          for (const i of order === "forward" ? idx : idx.reverse()) {
            const k = keys[i] as string;
            if (tier.has(k)) tier.getSync(k);
            else tier.putSync(k, new Uint8Array(trace.chunkBytes[req[i] as number] as number));
          }
        }
        expect([sim.chunkHits, sim.prefixHits, sim.evictions]).toEqual([chunkHits, prefixHits, tier.stats().evictions]);
        expect(sim.chunkHits).toBeGreaterThan(0);
      }
    }
  });
});
