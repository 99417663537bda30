/**
 * The seed's Workload-2 shape for discrete-event offloading studies (bench/recipes/kv-offload.ts,
 * full scale; AIBrix v0.3.0's "Workload-2, 8× footprint", reference/aibrix.md §8): `groups` long
 * prompt prefixes whose tokens add up to `footprint ×` the GPU KV capacity, each request one
 * prefix (drawn uniformly, with replacement, so a prefix comes back after a random reuse distance)
 * followed by a suffix of its own, with Poisson arrivals.
 *
 * Two phases. A warm-up serves every prefix once, in random order, at `warmupQps` (low enough for
 * every configuration to keep up), then `gapMs` of silence lets it drain; the measured phase follows
 * at the study's QPS. Without it a run would measure the first pass too, which misses in every
 * configuration (559 first touches in 1,290 requests at the seed's 4.3 QPS for 5 minutes), and
 * would report the cold start rather than the steady state the tiers are for.
 *
 * @example
 * ```ts
 * const reqs = offloadWorkload({ kvCapacityTokens: 419_152, qps: 6, durationMs: 300_000, seed: 1 });
 * ```
 */
import { blockHashes } from "../../../dataplane/engines/sim/kv-cache";
import type { StudyRequest } from "../../../dataplane/engines/sim/des";
import { Rng } from "../../lib/rng";

export interface OffloadWorkloadOptions {
  /** GPU KV capacity of the engines the footprint is measured against (all of them together). */
  kvCapacityTokens: number;
  /** Unique prefix tokens as a multiple of `kvCapacityTokens`. Default 8 (Workload-2). */
  footprint?: number;
  /** Tokens of each prefix. Default 6000 (the seed recipe's full scale). */
  prefixTokens?: number;
  /** Suffix tokens: normal(mean, sd), at least 1. Default 200, 40. */
  suffixMean?: number;
  suffixSd?: number;
  /** Answer length (max_tokens, reached every time). Default 16. */
  outputTokens?: number;
  /** Measured phase: arrival rate and length. */
  qps: number;
  durationMs: number;
  /** Warm-up rate (each prefix once). Default 2. */
  warmupQps?: number;
  /** Quiet time between the phases. Default 60 s. */
  gapMs?: number;
  /** Skip the warm-up (cold-start runs). */
  noWarmup?: boolean;
  blockSize?: number;
  seed: number;
}

export interface OffloadRequest extends StudyRequest {
  phase: "warmup" | "measure";
  group: number;
  blockHashes: Float64Array;
}

export interface OffloadWorkloadShape {
  groups: number;
  prefixTokens: number;
  footprintTokens: number;
  footprintFactor: number;
  suffix: { mean: number; sd: number };
  outputTokens: number;
  warmupRequests: number;
  /** When the measured phase starts (model ms). */
  measureStartMs: number;
}

export function offloadWorkloadShape(opts: OffloadWorkloadOptions): OffloadWorkloadShape {
  const prefixTokens = opts.prefixTokens ?? 6000;
  const factor = opts.footprint ?? 8;
  const groups = Math.max(1, Math.round((factor * opts.kvCapacityTokens) / prefixTokens));
  const warmupQps = opts.warmupQps ?? 2;
  const warmupRequests = opts.noWarmup ? 0 : groups;
  // The warm-up's last arrival is ≈ groups / rate; the measured phase starts a gap later.
  const measureStartMs = warmupRequests > 0 ? (warmupRequests / warmupQps) * 1000 + (opts.gapMs ?? 60_000) : 0;
  return {
    groups,
    prefixTokens,
    footprintTokens: groups * prefixTokens,
    footprintFactor: (groups * prefixTokens) / opts.kvCapacityTokens,
    suffix: { mean: opts.suffixMean ?? 200, sd: opts.suffixSd ?? 40 },
    outputTokens: opts.outputTokens ?? 16,
    warmupRequests,
    measureStartMs,
  };
}

/** Requests in arrival order, generated lazily (a prefix's tokens and hashes once per group). */
export function* offloadWorkload(opts: OffloadWorkloadOptions): Generator<OffloadRequest> {
  const shape = offloadWorkloadShape(opts);
  const bs = opts.blockSize ?? 16;
  const root = new Rng(opts.seed);
  const prefixes: Array<{ tokens: Int32Array; hashes: Float64Array } | undefined> = new Array(shape.groups);
  const prefixOf = (g: number) => {
    let p = prefixes[g];
    if (!p) {
      const rng = root.fork(`prefix:${g}`);
      const tokens = new Int32Array(shape.prefixTokens);
      for (let i = 0; i < tokens.length; i++) tokens[i] = rng.int(0, 127_999);
      p = { tokens, hashes: blockHashes(tokens, bs) };
      prefixes[g] = p;
    }
    return p;
  };
  const suffixRng = root.fork("suffix");
  const make = (group: number, arrivalMs: number, phase: OffloadRequest["phase"]): OffloadRequest => {
    const prefix = prefixOf(group);
    const suffix = Math.max(1, Math.round(suffixRng.normal(shape.suffix.mean, shape.suffix.sd)));
    const tokens = new Int32Array(prefix.tokens.length + suffix);
    tokens.set(prefix.tokens);
    for (let i = prefix.tokens.length; i < tokens.length; i++) tokens[i] = suffixRng.int(0, 127_999);
    const hashes = new Float64Array(Math.floor(tokens.length / bs));
    hashes.set(prefix.hashes.subarray(0, Math.min(prefix.hashes.length, hashes.length)));
    blockHashes(tokens, bs, hashes, prefix.hashes.length);
    return { arrivalMs, promptTokens: tokens, blockHashes: hashes, maxTokens: shape.outputTokens, outputTokens: shape.outputTokens, phase, group };
  };

  let lastWarmup = 0;
  if (shape.warmupRequests > 0) {
    const order = root.fork("warmup-order").shuffle(Array.from({ length: shape.groups }, (_, g) => g));
    const arrivals = root.fork("warmup-arrivals");
    const mean = 1000 / (opts.warmupQps ?? 2);
    let t = 0;
    for (const g of order) {
      t += arrivals.exponential(mean);
      yield make(g, t, "warmup");
    }
    lastWarmup = t;
  }
  const arrivals = root.fork("arrivals");
  const picks = root.fork("groups");
  const mean = 1000 / opts.qps;
  // Arrivals stay in order even if the warm-up ran long (≈ 12 s sd at the defaults, against a 60 s gap).
  const start = Math.max(shape.measureStartMs, lastWarmup);
  const end = start + opts.durationMs;
  for (let t = start + arrivals.exponential(mean); t < end; t += arrivals.exponential(mean)) {
    yield make(picks.int(0, shape.groups - 1), t, "measure");
  }
}
