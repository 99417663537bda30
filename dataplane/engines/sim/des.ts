/**
 * Discrete-event cluster studies: N emulated engines on one VirtualClock, requests submitted
 * programmatically (no HTTP) and routed by a function that sees every engine's live state — the
 * place where the real router gets plugged in. Runs as fast as the CPU allows: no real waiting,
 * requests generated lazily in arrival order, nothing allocated per token.
 *
 * @example
 * ```ts
 * const result = runClusterStudy({
 *   nodes: 8,
 *   requests: syntheticRequests({ count: 10_000, ratePerSec: 100, prefixes: 50 }),
 *   route: (req, engines) => leastLoaded(engines),
 * });
 * console.log(result.ttftMs.p99, result.prefixHitRate);
 * ```
 */
import { VirtualClock } from "./clock";
import { EngineCore, type EngineCoreOptions } from "./engine-core";
import { blockHashes, namespaceSeed } from "./kv-cache";
import type { FinishReason, SimRequest, SimRequestObserver } from "./scheduler";
import { nextRandom, randomOf } from "./text-generator";

/** One request of a study. */
export interface StudyRequest {
  /** Arrival in ms of model time; a study's requests come in arrival order. */
  arrivalMs: number;
  promptTokens: ArrayLike<number>;
  /**
   * Cache namespace (a tenant's `t:<tenant>:<model>`, a model's shared `m:<model>`, or vLLM's
   * `cache_salt`): the request hits only blocks cached in the same namespace. Absent: the default one.
   */
  cacheNamespace?: string;
  /**
   * `blockHashes(promptTokens, blockSize, undefined, 0, namespaceSeed(cacheNamespace))`, if the
   * workload already has them (hashes of another namespace are detected and recomputed).
   */
  blockHashes?: Float64Array;
  maxTokens: number;
  /** The answer length the model "wants" (EOS included); default drawn by the engine. */
  outputTokens?: number;
  minTokens?: number;
  ignoreEos?: boolean;
}

/** Picks the engine (index into `engines`) for a request arriving at `nowMs`. */
export type RouteFn<R extends StudyRequest = StudyRequest> = (req: R, engines: readonly EngineCore[], nowMs: number) => number;

/** What happened to one request. Times in ms of model time. */
export interface StudyRecord {
  /** Position in the study's request sequence. */
  index: number;
  engine: number;
  arrivalMs: number;
  firstTokenMs: number;
  finishedMs: number;
  promptTokens: number;
  outputTokens: number;
  cachedTokens: number;
  preemptions: number;
  finishReason: FinishReason;
}

export type EngineSettings = Omit<EngineCoreOptions, "clock" | "kvCapacityTokens"> & { kvCapacityTokens?: number };

export interface ClusterStudyOptions<R extends StudyRequest = StudyRequest> {
  nodes: number;
  requests: Iterable<R>;
  route: RouteFn<R>;
  /**
   * Engine settings, shared or per engine index; KV capacity defaults to the H100 figure. The
   * function form also gets the study's clock, for settings that keep time themselves (a lower KV
   * tier modelling its own network link).
   */
  engine?: EngineSettings | ((index: number, clock: VirtualClock) => EngineSettings);
  /** Called as each request finishes. */
  onRecord?: (record: StudyRecord, req: R) => void;
  /** Stop submitting after this model time (requests in flight still finish). */
  untilMs?: number;
}

export interface LatencySummary {
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export interface EngineSummary {
  requests: number;
  steps: number;
  /** Fraction of the makespan the engine spent computing. */
  busyFraction: number;
  prefixHitRate: number;
  preemptions: number;
}

export interface ClusterStudyResult {
  requests: number;
  completed: number;
  /** Model time from the first arrival to the last finish. */
  makespanMs: number;
  /** Real time the study took. */
  wallMs: number;
  ttftMs: LatencySummary;
  e2eMs: LatencySummary;
  /** Per request: (e2e − ttft) / (output − 1). */
  tpotMs: LatencySummary;
  outputTokens: number;
  /** Output tokens per second of model time, cluster-wide. */
  outputTokensPerSec: number;
  /** Prefix-cache hit tokens / queried tokens, all engines. */
  prefixHitRate: number;
  preemptions: number;
  perEngine: EngineSummary[];
  engines: EngineCore[];
}

/** KV capacity of one H100 80GB serving Llama-3-8B (see config.ts: 26,197 blocks of 16). */
export const H100_KV_CAPACITY_TOKENS = 419_152;

export function summarize(values: ArrayLike<number>): LatencySummary {
  const n = values.length;
  if (n === 0) return { mean: 0, p50: 0, p90: 0, p99: 0, max: 0 };
  const sorted = Float64Array.from(values).sort();
  let sum = 0;
  for (let i = 0; i < n; i++) sum += sorted[i] as number;
  const at = (q: number) => sorted[Math.min(n - 1, Math.floor(q * n))] as number;
  return { mean: sum / n, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: sorted[n - 1] as number };
}

/** Growable Float64 column (no per-push allocation). */
class Column {
  data = new Float64Array(1024);
  length = 0;
  push(v: number): void {
    if (this.length === this.data.length) {
      const next = new Float64Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.length++] = v;
  }
  view(): Float64Array {
    return this.data.subarray(0, this.length);
  }
}

interface Tag<R> {
  index: number;
  engine: number;
  req: R;
}

export function runClusterStudy<R extends StudyRequest>(opts: ClusterStudyOptions<R>): ClusterStudyResult {
  const wallStart = performance.now();
  const clock = new VirtualClock();
  const engines: EngineCore[] = [];
  for (let i = 0; i < opts.nodes; i++) {
    const settings = typeof opts.engine === "function" ? opts.engine(i, clock) : (opts.engine ?? {});
    engines.push(new EngineCore({ ...settings, kvCapacityTokens: settings.kvCapacityTokens ?? H100_KV_CAPACITY_TOKENS, clock }));
  }
  const perEngineRequests = new Array<number>(opts.nodes).fill(0);
  const ttft = new Column();
  const e2e = new Column();
  const tpot = new Column();
  let submitted = 0;
  let completed = 0;
  let outputTokens = 0;
  let firstArrival = Number.POSITIVE_INFINITY;
  let lastFinish = 0;

  const observer: SimRequestObserver = {
    onFinish(req: SimRequest, reason: FinishReason, at: number) {
      const tag = req.tag as Tag<R>;
      completed++;
      outputTokens += req.output;
      lastFinish = Math.max(lastFinish, at);
      if (req.firstTokenMs >= 0) {
        ttft.push(req.firstTokenMs - req.arrivalMs);
        if (req.output > 1) tpot.push((at - req.firstTokenMs) / (req.output - 1));
      }
      e2e.push(at - req.arrivalMs);
      opts.onRecord?.(
        {
          index: tag.index,
          engine: tag.engine,
          arrivalMs: req.arrivalMs,
          firstTokenMs: req.firstTokenMs,
          finishedMs: at,
          promptTokens: req.promptTokens,
          outputTokens: req.output,
          cachedTokens: Math.max(0, req.cachedTokens),
          preemptions: req.preemptions,
          finishReason: reason,
        },
        tag.req,
      );
    },
  };

  const iterator = opts.requests[Symbol.iterator]();
  const until = opts.untilMs ?? Number.POSITIVE_INFINITY;
  let pending: R | undefined;
  const arrive = () => {
    const req = pending as R;
    pending = undefined;
    const now = clock.now();
    const target = opts.route(req, engines, now);
    const engine = engines[target];
    if (!engine) throw new RangeError(`route returned ${target}, not an engine index (0..${engines.length - 1})`);
    perEngineRequests[target] = (perEngineRequests[target] as number) + 1;
    engine.submit({
      promptTokens: req.promptTokens,
      cacheNamespace: req.cacheNamespace,
      blockHashes: req.blockHashes,
      maxTokens: req.maxTokens,
      outputTokens: req.outputTokens,
      minTokens: req.minTokens,
      ignoreEos: req.ignoreEos,
      observer,
      tag: { index: submitted++, engine: target, req } satisfies Tag<R>,
    });
    scheduleNext();
  };
  const scheduleNext = () => {
    const next = iterator.next();
    if (next.done || next.value.arrivalMs > until) return;
    pending = next.value;
    firstArrival = Math.min(firstArrival, pending.arrivalMs);
    clock.schedule(pending.arrivalMs, arrive);
  };
  scheduleNext();
  clock.run();

  const makespanMs = Number.isFinite(firstArrival) ? lastFinish - firstArrival : 0;
  let queries = 0;
  let hits = 0;
  let preemptions = 0;
  const perEngine = engines.map((e, i) => {
    queries += e.metrics.prefixCacheQueries;
    hits += e.metrics.prefixCacheHits;
    preemptions += e.metrics.preemptions;
    return {
      requests: perEngineRequests[i] as number,
      steps: e.steps,
      busyFraction: makespanMs > 0 ? e.busyMs / makespanMs : 0,
      prefixHitRate: e.metrics.prefixCacheQueries > 0 ? e.metrics.prefixCacheHits / e.metrics.prefixCacheQueries : 0,
      preemptions: e.metrics.preemptions,
    };
  });
  return {
    requests: submitted,
    completed,
    makespanMs,
    wallMs: performance.now() - wallStart,
    ttftMs: summarize(ttft.view()),
    e2eMs: summarize(e2e.view()),
    tpotMs: summarize(tpot.view()),
    outputTokens,
    outputTokensPerSec: makespanMs > 0 ? outputTokens / (makespanMs / 1000) : 0,
    prefixHitRate: queries > 0 ? hits / queries : 0,
    preemptions,
    perEngine,
    engines,
  };
}

// --- simple routes (baselines; the real router plugs in as a RouteFn) ---

/** Fewest running + waiting requests; ties to the lowest index. */
export function leastLoaded(engines: readonly EngineCore[]): number {
  let best = 0;
  let bestLoad = Number.POSITIVE_INFINITY;
  for (let i = 0; i < engines.length; i++) {
    const e = engines[i] as EngineCore;
    const load = e.numRunning + e.numWaiting;
    if (load < bestLoad) {
      bestLoad = load;
      best = i;
    }
  }
  return best;
}

/** Round robin over the engines. */
export function roundRobin(): RouteFn {
  let next = 0;
  return (_req, engines) => next++ % engines.length;
}

// --- a synthetic workload ---

export interface SyntheticWorkloadOptions {
  count: number;
  /** Mean arrival rate (Poisson), requests per second of model time. */
  ratePerSec: number;
  /** Distinct shared prefixes (system prompts, documents); 0: every prompt is unique. */
  prefixes?: number;
  /**
   * Tenants, each in its own cache namespace (`t:<k>`; a request's tenant is drawn uniformly): the
   * shared prefixes are the same text for every tenant but are cached per tenant, as Switchyard's
   * isolated models are. 0 (default): no namespaces, the workload of earlier versions unchanged.
   */
  tenants?: number;
  /** Shared prefix length range in tokens (rounded to blocks). Default [256, 2048]. */
  prefixTokens?: [number, number];
  /** Per-request suffix length range. Default [32, 512]. */
  suffixTokens?: [number, number];
  /** Answer lengths: lognormal median and sigma. Default 150, 0.8. */
  outputMedian?: number;
  outputSigma?: number;
  maxTokens?: number;
  blockSize?: number;
  seed?: number;
}

export interface SyntheticRequest extends StudyRequest {
  /** Which shared prefix the prompt starts with (-1: none). */
  prefixId: number;
  /** The request's tenant (-1 without `tenants`); its namespace is `cacheNamespace`. */
  tenant: number;
  blockHashes: Float64Array;
}

/**
 * Poisson arrivals; a prompt is one of `prefixes` shared prefixes (Zipf-ish popularity) followed
 * by a unique suffix. Block hashes come precomputed (a prefix's are computed once per namespace).
 */
export function* syntheticRequests(opts: SyntheticWorkloadOptions): Generator<SyntheticRequest> {
  const bs = opts.blockSize ?? 16;
  let state = (opts.seed ?? 1) | 0;
  const random = () => {
    state = nextRandom(state);
    return randomOf(state);
  };
  const between = ([lo, hi]: [number, number]) => lo + Math.floor(random() * (hi - lo + 1));
  const prefixCount = opts.prefixes ?? 0;
  const prefixes: Array<{ tokens: Int32Array; hashes: Float64Array }> = [];
  for (let p = 0; p < prefixCount; p++) {
    const length = Math.max(bs, Math.round(between(opts.prefixTokens ?? [256, 2048]) / bs) * bs);
    const tokens = new Int32Array(length);
    for (let i = 0; i < length; i++) tokens[i] = Math.floor(random() * 128000);
    prefixes.push({ tokens, hashes: blockHashes(tokens, bs) });
  }
  const tenants = opts.tenants ?? 0;
  const seeds = Array.from({ length: tenants }, (_, k) => namespaceSeed(`t:${k}`));
  /** Prefix hashes per (prefix, tenant), computed on first use. */
  const tenantPrefixHashes = new Map<number, Float64Array>();
  const median = opts.outputMedian ?? 150;
  const sigma = opts.outputSigma ?? 0.8;
  const maxTokens = opts.maxTokens ?? 1024;
  let t = 0;
  for (let n = 0; n < opts.count; n++) {
    t += (-Math.log(1 - random()) / opts.ratePerSec) * 1000;
    const prefixId = prefixCount > 0 ? Math.min(prefixCount - 1, Math.floor(prefixCount * random() * random())) : -1;
    const prefix = prefixId >= 0 ? (prefixes[prefixId] as { tokens: Int32Array; hashes: Float64Array }) : undefined;
    const tenant = tenants > 0 ? Math.min(tenants - 1, Math.floor(random() * tenants)) : -1;
    const seed = tenant >= 0 ? (seeds[tenant] as number) : undefined;
    let prefixHashes = prefix?.hashes;
    if (prefix && seed !== undefined) {
      const key = prefixId * tenants + tenant;
      prefixHashes = tenantPrefixHashes.get(key);
      if (!prefixHashes) {
        prefixHashes = blockHashes(prefix.tokens, bs, undefined, 0, seed);
        tenantPrefixHashes.set(key, prefixHashes);
      }
    }
    const suffix = between(opts.suffixTokens ?? [32, 512]);
    const length = (prefix?.tokens.length ?? 0) + suffix;
    const tokens = new Int32Array(length);
    if (prefix) tokens.set(prefix.tokens);
    for (let i = prefix?.tokens.length ?? 0; i < length; i++) tokens[i] = Math.floor(random() * 128000);
    const hashes = new Float64Array(Math.floor(length / bs));
    if (prefixHashes) hashes.set(prefixHashes);
    blockHashes(tokens, bs, hashes, prefixHashes?.length ?? 0, seed);
    const z = Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
    yield {
      arrivalMs: t,
      promptTokens: tokens,
      blockHashes: hashes,
      maxTokens,
      outputTokens: Math.max(1, Math.round(median * Math.exp(sigma * z))),
      prefixId,
      tenant,
      ...(tenant >= 0 ? { cacheNamespace: `t:${tenant}` } : {}),
    };
  }
}
