/**
 * Discrete-event mode: many engines on one virtual clock, a routing function, a synthetic workload.
 * Performance is printed, not asserted (the benchmark script measures 100 × 100k).
 */
import { describe, expect, it } from "vitest";
import { leastLoaded, roundRobin, runClusterStudy, syntheticRequests, type RouteFn, type StudyRecord, type SyntheticRequest } from "../../../dataplane/engines/sim/des";

describe("runClusterStudy", () => {
  it("runs 8 engines × 10,000 requests to completion (performance smoke)", () => {
    const result = runClusterStudy({
      nodes: 8,
      requests: syntheticRequests({ count: 10_000, ratePerSec: 60, prefixes: 40, seed: 7 }),
      route: (_req, engines) => leastLoaded(engines),
    });
    console.log(
      `DES 8 engines × 10k requests: ${(result.wallMs / 1000).toFixed(2)} s wall, ${Math.round(result.requests / (result.wallMs / 1000))} requests/s, ` +
        `${(result.makespanMs / 1000).toFixed(0)} s model time, TTFT p50 ${result.ttftMs.p50.toFixed(1)} ms p99 ${result.ttftMs.p99.toFixed(1)} ms, hit rate ${result.prefixHitRate.toFixed(2)}`,
    );
    expect(result.requests).toBe(10_000);
    expect(result.completed).toBe(10_000);
    expect(result.perEngine.reduce((a, e) => a + e.requests, 0)).toBe(10_000);
    expect(result.ttftMs.p50).toBeGreaterThan(5);
    expect(result.tpotMs.p50).toBeGreaterThan(5);
    expect(result.engines.every((e) => e.idle && e.kv.usage() === 0)).toBe(true);
  });

  it("lets the route see live engine state: prefix affinity beats round robin on hit rate", () => {
    const workload = () => syntheticRequests({ count: 3000, ratePerSec: 30, prefixes: 24, prefixTokens: [1024, 2048], seed: 3 });
    const affinity: RouteFn<SyntheticRequest> = (req, engines) => {
      // Route to the engine holding the longest cached prefix; least loaded on ties.
      let best = leastLoaded(engines);
      let bestHit = engines[best]!.cachedPrefixTokens(req.promptTokens, req.blockHashes);
      engines.forEach((e, i) => {
        const hit = e.cachedPrefixTokens(req.promptTokens, req.blockHashes);
        if (hit > bestHit && e.numWaiting < 8) {
          best = i;
          bestHit = hit;
        }
      });
      return best;
    };
    // KV memory for about a third of the prefixes per engine: where a request goes decides whether it hits.
    const engine = { kvCapacityTokens: 16_384 };
    const a = runClusterStudy({ nodes: 4, requests: workload(), route: affinity, engine });
    const rr = runClusterStudy({ nodes: 4, requests: workload(), route: roundRobin(), engine });
    console.log(`hit rate: affinity ${a.prefixHitRate.toFixed(3)} vs round robin ${rr.prefixHitRate.toFixed(3)}; TTFT p50 ${a.ttftMs.p50.toFixed(1)} vs ${rr.ttftMs.p50.toFixed(1)} ms`);
    expect(a.prefixHitRate).toBeGreaterThan(rr.prefixHitRate + 0.1);
  });

  it("is deterministic and reports every request", () => {
    const run = () => {
      const records: StudyRecord[] = [];
      const result = runClusterStudy({
        nodes: 3,
        requests: syntheticRequests({ count: 500, ratePerSec: 20, prefixes: 5, seed: 11 }),
        route: roundRobin(),
        engine: { seed: 5 },
        onRecord: (r) => records.push(r),
      });
      return { result, records };
    };
    const one = run();
    const two = run();
    expect(one.records).toHaveLength(500);
    expect(two.records).toEqual(one.records);
    const r = one.records[0]!;
    expect(r.firstTokenMs).toBeGreaterThan(r.arrivalMs);
    expect(r.finishedMs).toBeGreaterThanOrEqual(r.firstTokenMs);
    expect(one.records.every((x) => x.finishReason === "stop" || x.finishReason === "length")).toBe(true);
  });

  it("rejects a route that returns no engine", () => {
    expect(() => runClusterStudy({ nodes: 2, requests: syntheticRequests({ count: 1, ratePerSec: 1 }), route: () => 5 })).toThrow(RangeError);
  });
});
