/**
 * Benchmark of the discrete-event mode: 100 engines × 100,000 requests (flags change both), a
 * synthetic workload with shared prefixes, routed by prefix affinity with a load guard (or least
 * loaded, or round robin). Prints one JSON object: wall time, simulated requests per wall second,
 * and the cluster's latency figures in model time.
 *
 *   npx tsx dataplane/engines/sim/bench-des.ts [--nodes 100] [--requests 100000] [--route affinity|least-loaded|round-robin] [--tenants 0]
 *
 * `--tenants N` puts requests in N tenants' cache namespaces (prefixes cached per tenant).
 */
import { parseArgs } from "node:util";
import { leastLoaded, roundRobin, runClusterStudy, syntheticRequests, type RouteFn, type SyntheticRequest } from "./des";

export interface BenchOptions {
  nodes: number;
  requests: number;
  route: "affinity" | "least-loaded" | "round-robin";
  /** Arrival rate per engine, requests per second of model time. */
  ratePerNode: number;
  /** Tenants with their own cache namespaces; 0: none (default). */
  tenants?: number;
}

/**
 * Prefix affinity: the home engine of the (prefix, tenant) pair — its cache lives in the tenant's
 * namespace — unless it is clearly busier than the least loaded one.
 */
function affinity(): RouteFn<SyntheticRequest> {
  return (req, engines) => {
    if (req.prefixId < 0) return leastLoaded(engines);
    const home = req.tenant < 0 ? (req.prefixId * 2654435761) % engines.length : (Math.imul(req.prefixId * 7919 + req.tenant, 0x9e3779b1) >>> 0) % engines.length;
    const h = engines[home];
    const alt = leastLoaded(engines);
    const a = engines[alt];
    if (!h || !a) return alt;
    return h.numWaiting > 4 && h.numRunning + h.numWaiting > 2 * (a.numRunning + a.numWaiting) + 8 ? alt : home;
  };
}

export function runBench(opts: BenchOptions) {
  const route: RouteFn<SyntheticRequest> = opts.route === "affinity" ? affinity() : opts.route === "least-loaded" ? (_r, e) => leastLoaded(e) : roundRobin();
  const heapBefore = process.memoryUsage().heapUsed;
  const result = runClusterStudy({
    nodes: opts.nodes,
    requests: syntheticRequests({ count: opts.requests, ratePerSec: opts.ratePerNode * opts.nodes, prefixes: Math.max(1, opts.nodes * 4), seed: 42, tenants: opts.tenants ?? 0 }),
    route,
  });
  const ms = (s: { p50: number; p99: number; mean: number }) => ({ mean: +s.mean.toFixed(1), p50: +s.p50.toFixed(1), p99: +s.p99.toFixed(1) });
  return {
    nodes: opts.nodes,
    requests: result.requests,
    completed: result.completed,
    route: opts.route,
    tenants: opts.tenants ?? 0,
    wallSeconds: +(result.wallMs / 1000).toFixed(2),
    simulatedRequestsPerWallSecond: Math.round(result.requests / (result.wallMs / 1000)),
    modelSeconds: +(result.makespanMs / 1000).toFixed(1),
    ttftMs: ms(result.ttftMs),
    tpotMs: ms(result.tpotMs),
    e2eMs: ms(result.e2eMs),
    outputTokensPerSec: Math.round(result.outputTokensPerSec),
    prefixHitRate: +result.prefixHitRate.toFixed(3),
    preemptions: result.preemptions,
    meanBusyFraction: +(result.perEngine.reduce((a, e) => a + e.busyFraction, 0) / result.perEngine.length).toFixed(3),
    heapDeltaMB: Math.round((process.memoryUsage().heapUsed - heapBefore) / 1e6),
    node: process.version,
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      nodes: { type: "string", default: "100" },
      requests: { type: "string", default: "100000" },
      route: { type: "string", default: "affinity" },
      "rate-per-node": { type: "string", default: "6" },
      tenants: { type: "string", default: "0" },
    },
  });
  const route = values.route as BenchOptions["route"];
  if (!["affinity", "least-loaded", "round-robin"].includes(route)) throw new Error(`--route must be affinity, least-loaded or round-robin`);
  const out = runBench({ nodes: Number(values.nodes), requests: Number(values.requests), route, ratePerNode: Number(values["rate-per-node"]), tenants: Number(values.tenants) });
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
}
