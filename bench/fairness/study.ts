/**
 * Fair admission in discrete-event mode: the production pool logic (worker/pool/pool-core.ts, with
 * its VTC counters and admission queue) in front of calibrated emulator engines, on one virtual
 * clock. Requests arrive per tenant, wait at the "edge" when every node is at its limit, are
 * admitted by the pool's policy (vtc, fcfs or off), run on an engine, report output progress once a
 * second like the worker does, and are released with the engine's real counts.
 *
 * Measures per tenant: TTFT from arrival at the edge (queueing included), requests refused after
 * the wait bound, and weighted service over time (input × w_p + output × w_q, / weight), from which
 * the Jain index over backlogged tenants is computed.
 */
import { VirtualClock } from "../../dataplane/engines/sim/clock";
import { H100_KV_CAPACITY_TOKENS } from "../../dataplane/engines/sim/des";
import { EngineCore, type EngineCoreOptions } from "../../dataplane/engines/sim/engine-core";
import type { SimRequest, SimRequestObserver } from "../../dataplane/engines/sim/scheduler";
import { PoolCore } from "../../worker/pool/pool-core";
import type { AdmissionSettings, RouteInput, RouteResult } from "../../worker/pool/types";
import { Rng } from "../lib/rng";
import { enginePriority } from "../../protocol/priority";

export interface TenantLoad {
  id: string;
  weight: number;
  /** Poisson arrivals per second. */
  ratePerSec: number;
  /** Prompt tokens: lognormal around this median. */
  promptMedian: number;
  /** Output tokens the model "wants": lognormal around this median. */
  outputMedian: number;
  /** Start and stop sending (ms of model time); default: the whole study. */
  fromMs?: number;
  untilMs?: number;
}

export interface FairnessStudyOptions {
  nodes: number;
  /** Requests in flight per node before requests wait at the edge. */
  nodeLimit: number;
  policy: "vtc" | "fcfs" | "off";
  tenants: TenantLoad[];
  durationMs: number;
  maxWaitMs: number;
  seed: number;
  /** VTC weights (defaults 1 and 2). */
  inputWeight?: number;
  outputWeight?: number;
  /** VTC headroom over the node limit for tenants below their share (default: the pool's). */
  headroom?: number;
  /** Engine batch limit (vLLM max_num_seqs). */
  maxNumSeqs?: number;
  /**
   * Engine scheduling: vLLM's policy and long-prefill threshold, and Switchyard's prioritised
   * prefill (dataplane/engines/sim/scheduler.ts). Requests carry the edge's priority as the
   * agents send it (protocol/priority.ts).
   */
  engine?: Pick<EngineCoreOptions, "schedulingPolicy" | "longPrefillTokenThreshold" | "priorityPrefill">;
  /** Width of the service-over-time buckets, ms. */
  bucketMs?: number;
}

export interface TenantOutcome {
  id: string;
  weight: number;
  sent: number;
  completed: number;
  /** Refused after waiting maxWaitMs (429 at the edge). */
  timedOut: number;
  ttftMs: number[];
  /** Wait at the edge, arrival to admission. */
  queueMs: number[];
  /** Admission to first token: the engine's part of TTFT. */
  engineTtftMs: number[];
  /** Arrival time of each entry of ttftMs / engineTtftMs, and of queueMs. */
  ttftArrivalMs: number[];
  queueArrivalMs: number[];
  /** When each completed request finished (throughput over a window). */
  finishedAtMs: number[];
  /** Weighted service per bucket: (input × w_p + output × w_q) / weight. */
  service: number[];
  /** Whether the tenant had requests waiting at the edge, per bucket (sampled each 100 ms). */
  backlogged: number[];
}

export interface FairnessStudyResult {
  options: FairnessStudyOptions;
  tenants: TenantOutcome[];
  bucketMs: number;
  wallMs: number;
  requests: number;
}

const HEARTBEAT_MS = 2_000;
const PROGRESS_MS = 1_000;
const BACKLOG_SAMPLE_MS = 100;

interface Live {
  tenant: TenantOutcome;
  arrivalMs: number;
  admittedMs: number;
  sim?: SimRequest;
  promptTokens: number;
  /** Service already attributed to buckets (input at first token, output as progress). */
  countedOutput: number;
}

function lognormalAround(rng: Rng, median: number, sigma: number, min: number, max: number): number {
  return Math.max(min, Math.min(max, Math.round(rng.lognormal(Math.log(median), sigma))));
}

export function runFairnessStudy(opts: FairnessStudyOptions): FairnessStudyResult {
  const wall = performance.now();
  const clock = new VirtualClock();
  const rng = new Rng(opts.seed);
  const wIn = opts.inputWeight ?? 1;
  const wOut = opts.outputWeight ?? 2;
  const bucketMs = opts.bucketMs ?? 5_000;
  const buckets = Math.ceil(opts.durationMs / bucketMs) + 1;
  const engines = Array.from({ length: opts.nodes }, (_, i) => new EngineCore({ clock, kvCapacityTokens: H100_KV_CAPACITY_TOKENS, maxNumSeqs: opts.maxNumSeqs ?? 256, seed: opts.seed * 31 + i, ...opts.engine }));
  const core = new PoolCore({ staleAfterMs: 3 * HEARTBEAT_MS + 1_000, now: () => clock.now(), random: () => rng.next() });
  const admission: AdmissionSettings = { policy: opts.policy, maxWaitMs: opts.maxWaitMs, nodeLimit: opts.nodeLimit, inputWeight: wIn, outputWeight: wOut, ...(opts.headroom !== undefined ? { headroom: opts.headroom } : {}) };
  const outcomes = new Map<string, TenantOutcome>(
    opts.tenants.map((t) => [t.id, { id: t.id, weight: t.weight, sent: 0, completed: 0, timedOut: 0, ttftMs: [], queueMs: [], engineTtftMs: [], ttftArrivalMs: [], queueArrivalMs: [], finishedAtMs: [], service: new Array<number>(buckets).fill(0), backlogged: new Array<number>(buckets).fill(0) }]),
  );
  const live = new Map<string, Live>();
  const waitingByTenant = new Map<string, number>();
  let seq = 0;

  const credit = (t: TenantOutcome, at: number, amount: number) => {
    const b = Math.min(buckets - 1, Math.floor(at / bucketMs));
    t.service[b] = (t.service[b] as number) + amount / t.weight;
  };

  const beat = () => {
    engines.forEach((e, i) => {
      core.heartbeat({
        nodeId: `node-${i}`,
        region: "local",
        url: `sim://${i}`,
        drained: false,
        sentAt: clock.now(),
        leaving: false,
        engines: [{ model: "m", engine: "sim", healthy: true, maxConcurrency: opts.nodeLimit, ...e.load() }],
      });
    });
  };

  const observer: SimRequestObserver = {
    onFirstToken(req, at) {
      const l = live.get(req.id as string);
      if (!l) return;
      l.tenant.ttftMs.push(at - l.arrivalMs);
      l.tenant.engineTtftMs.push(at - l.admittedMs);
      l.tenant.ttftArrivalMs.push(l.arrivalMs);
      credit(l.tenant, at, l.promptTokens * wIn);
    },
    onFinish(req, _reason, at) {
      const id = req.id as string;
      const l = live.get(id);
      if (!l) return;
      live.delete(id);
      l.tenant.completed++;
      l.tenant.finishedAtMs.push(at);
      credit(l.tenant, at, (req.output - l.countedOutput) * wOut);
      // Released after the engine's step, as the worker's waitUntil would.
      clock.schedule(at, () => core.release({ requestId: id, outcome: "completed", usage: { promptTokens: l.promptTokens, completionTokens: req.output, cachedTokens: Math.max(0, req.cachedTokens), estimated: false } }));
    },
  };

  const admitted = (id: string, l: Live) => (result: RouteResult) => {
    waitingByTenant.set(l.tenant.id, (waitingByTenant.get(l.tenant.id) ?? 1) - 1);
    if (!result.ok) {
      if (result.reason === "queue_timeout") l.tenant.timedOut++;
      live.delete(id);
      return;
    }
    const now = clock.now();
    l.admittedMs = now;
    l.tenant.queueMs.push(now - l.arrivalMs);
    l.tenant.queueArrivalMs.push(l.arrivalMs);
    const engine = engines[Number(result.nodeId.slice("node-".length))] as EngineCore;
    const prompt = new Int32Array(l.promptTokens);
    for (let i = 0; i < prompt.length; i++) prompt[i] = 1 + (rng.nextU32() % 127_999);
    const t = opts.tenants.find((x) => x.id === l.tenant.id) as TenantLoad;
    const output = lognormalAround(rng, t.outputMedian, 0.6, 1, 2_048);
    l.sim = engine.submit({ id, promptTokens: prompt, maxTokens: output, outputTokens: output, ignoreEos: false, observer, priority: enginePriority(result.priority) });
  };

  // Arrivals: each tenant an independent Poisson stream, merged on the clock.
  for (const t of opts.tenants) {
    const trng = rng.fork(`tenant:${t.id}`);
    const outcome = outcomes.get(t.id) as TenantOutcome;
    let at = (t.fromMs ?? 0) + trng.exponential(1_000 / t.ratePerSec);
    const until = Math.min(t.untilMs ?? opts.durationMs, opts.durationMs);
    const arrive = (when: number) => {
      clock.schedule(when, () => {
        const id = `${t.id}-${seq++}`;
        outcome.sent++;
        const l: Live = { tenant: outcome, arrivalMs: clock.now(), admittedMs: -1, promptTokens: lognormalAround(trng, t.promptMedian, 0.5, 16, 6_000), countedOutput: 0 };
        live.set(id, l);
        waitingByTenant.set(t.id, (waitingByTenant.get(t.id) ?? 0) + 1);
        const input: RouteInput = {
          requestId: id,
          tenantId: t.id,
          model: "m",
          strategies: [{ name: "least-request", weight: 1 }],
          prompt: { blocks: [], tokens: l.promptTokens, maxTokens: 2_048 },
          tenantWeight: t.weight,
          admission,
        };
        core.submit(input, admitted(id, l));
        const next = when + trng.exponential(1_000 / t.ratePerSec);
        if (next < until) arrive(next);
      });
    };
    if (at < until) arrive(at);
  }

  // Heartbeats, progress reports (output charged as generated), wait-bound expiry, backlog samples.
  const periodic = (every: number, fn: () => void) => {
    const tick = (when: number) =>
      clock.schedule(when, () => {
        fn();
        if (when + every <= opts.durationMs + 120_000 && (live.size > 0 || when < opts.durationMs)) tick(when + every);
      });
    tick(0);
  };
  periodic(HEARTBEAT_MS, beat);
  periodic(PROGRESS_MS, () => {
    const updates: Array<[string, number]> = [];
    const now = clock.now();
    for (const [id, l] of live) {
      if (!l.sim || l.sim.output === 0) continue;
      updates.push([id, l.sim.output]);
      credit(l.tenant, now, (l.sim.output - l.countedOutput) * wOut);
      l.countedOutput = l.sim.output;
    }
    if (updates.length > 0) core.progressBatch(updates);
  });
  periodic(100, () => core.expireWaiting());
  periodic(BACKLOG_SAMPLE_MS, () => {
    const b = Math.min(buckets - 1, Math.floor(clock.now() / bucketMs));
    for (const [tenant, n] of waitingByTenant) if (n > 0) {
      const o = outcomes.get(tenant) as TenantOutcome;
      o.backlogged[b] = (o.backlogged[b] as number) + BACKLOG_SAMPLE_MS / bucketMs;
    }
  });
  clock.run();
  return { options: opts, tenants: [...outcomes.values()], bucketMs, wallMs: performance.now() - wall, requests: seq };
}

/** Jain's fairness index of non-negative amounts: 1 when all equal, 1/n when one has everything. */
export function jainIndex(xs: readonly number[]): number {
  const sum = xs.reduce((a, b) => a + b, 0);
  const squares = xs.reduce((a, b) => a + b * b, 0);
  return squares === 0 ? 1 : (sum * sum) / (xs.length * squares);
}

export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}
