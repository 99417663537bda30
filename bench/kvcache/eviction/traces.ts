/**
 * Deterministic KV chunk traces for the eviction comparison. A trace is the time-ordered list of
 * requests an agent's L1 would see, each request the chain of full 256-token chunks of its prompt
 * (chunk i of a request is only useful if chunks 0..i-1 are loaded too).
 *
 * Chunks are named by integers instead of SHA-256 keys: two requests share chunk i exactly when
 * they share the first (i+1)·256 tokens, which is what chained keys (dataplane/kvcache/keys.ts)
 * guarantee, so the integer names give the same hits as hashing generated tokens would, at a
 * fraction of the cost. A chunk's size is its model's KV bytes for 256 tokens (fp16): Llama-3-8B
 * 128 KiB/token → 32 MiB, Llama-3-70B 320 KiB/token → 80 MiB (reference/kvcache.md §7); the mix of
 * the two on one node is what makes byte and object hit ratios differ.
 *
 * Everything is drawn from one seeded PRNG (sfc32 seeded by splitmix32), so a seed names a trace.
 */

export const CHUNK_TOKENS = 256;
const MiB = 2 ** 20;
export const MODELS = [
  { name: "llama-3-8b", chunkBytes: 32 * MiB, share: 0.7 },
  { name: "llama-3-70b", chunkBytes: 80 * MiB, share: 0.3 },
] as const;

export interface Trace {
  name: string;
  /** Requests in arrival order; each the chunk ids of its prompt, in chain order. */
  requests: Int32Array[];
  /** Bytes of each chunk id. */
  chunkBytes: Float64Array;
  params: Record<string, unknown>;
}

// --- PRNG -----------------------------------------------------------------------------------

export class Prng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  constructor(seed: number) {
    let s = seed >>> 0;
    const next = () => {
      s = (s + 0x9e3779b9) | 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
  }
  /** Uniform in [0, 1). */
  next(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return (t >>> 0) / 4294967296;
  }
  exponential(mean: number): number {
    return -mean * Math.log(1 - this.next());
  }
  normal(): number {
    const u = 1 - this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  /** Log-normal with the given median and log-space sigma, clamped to [min, max], rounded. */
  lognormalInt(median: number, sigma: number, min: number, max: number): number {
    return Math.min(max, Math.max(min, Math.round(median * Math.exp(sigma * this.normal()))));
  }
  /** Geometric number of extra trials with continuation probability p (mean p / (1 − p)). */
  geometric(p: number): number {
    let n = 0;
    while (this.next() < p) n++;
    return n;
  }
}

/** Samples ranks 0..n−1 with P(rank k) ∝ 1/(k+1)^alpha. */
export function zipfSampler(n: number, alpha: number): (rng: Prng) => number {
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let k = 0; k < n; k++) cdf[k] = sum += 1 / Math.pow(k + 1, alpha);
  return (rng) => {
    const u = rng.next() * sum;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((cdf[mid] as number) < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

function pickModel(rng: Prng): 0 | 1 {
  return rng.next() < MODELS[0].share ? 0 : 1;
}

/** Interns chunk names ("what the chunk's tokens are") into dense integer ids with sizes. */
class ChunkTable {
  private readonly ids = new Map<string, number>();
  private sizes: number[] = [];
  id(name: string, bytes: number): number {
    let id = this.ids.get(name);
    if (id === undefined) {
      id = this.sizes.length;
      this.ids.set(name, id);
      this.sizes.push(bytes);
    }
    return id;
  }
  bytes(): Float64Array {
    return Float64Array.from(this.sizes);
  }
}

/**
 * A request's chunk ids when its prompt is `shared` tokens of a shared prefix (named `sharedName`)
 * followed by private tokens (named `privateName`): chunks entirely inside the shared prefix are
 * shared, every later chunk (including the one straddling the boundary) is private.
 */
function chunksOf(table: ChunkTable, promptTokens: number, sharedTokens: number, sharedName: string, privateName: string, bytes: number): Int32Array {
  const n = Math.floor(promptTokens / CHUNK_TOKENS);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const shared = (i + 1) * CHUNK_TOKENS <= sharedTokens;
    out[i] = table.id(shared ? `${sharedName}#${i}` : `${privateName}#${i}`, bytes);
  }
  return out;
}

// --- (a) multi-turn chat ---------------------------------------------------------------------

export interface MultiTurnParams {
  sessions: number;
  /** Mean seconds between session starts (Poisson arrivals). */
  sessionInterarrivalS: number;
  /** System prompts per model, picked Zipf(systemPromptZipf); lengths log-normal. */
  systemPrompts: number;
  systemPromptZipf: number;
  systemPromptMedianTokens: number;
  /** Probability that a session is abandoned after its first turn. */
  abandonAfterFirst: number;
  /** Probability of another turn after each later turn (geometric number of turns). */
  continueProb: number;
  maxTurns: number;
  userMedianTokens: number;
  /** Probability that a user turn pastes a document (log-normal, median pasteMedianTokens). */
  pasteProb: number;
  pasteMedianTokens: number;
  replyMedianTokens: number;
  /** Think time: exponential with mean thinkMeanS, or with probability longBreakProb a break of mean longBreakMeanS. */
  thinkMeanS: number;
  longBreakProb: number;
  longBreakMeanS: number;
  /** Seconds per generated token (the reply's generation time adds to the gap). */
  decodeSPerToken: number;
  maxContextTokens: number;
}

export const DEFAULT_MULTI_TURN: MultiTurnParams = {
  sessions: 4000,
  sessionInterarrivalS: 1.5,
  systemPrompts: 6,
  systemPromptZipf: 1.0,
  systemPromptMedianTokens: 900,
  abandonAfterFirst: 0.35,
  continueProb: 0.8,
  maxTurns: 40,
  userMedianTokens: 120,
  pasteProb: 0.05,
  pasteMedianTokens: 3000,
  replyMedianTokens: 280,
  thinkMeanS: 45,
  longBreakProb: 0.12,
  longBreakMeanS: 1200,
  decodeSPerToken: 0.02,
  maxContextTokens: 32_768,
};

/**
 * Sessions arrive as a Poisson process. Each picks a model (70 % 8B, 30 % 70B) and one of that
 * model's system prompts (Zipf). Turn 1's prompt is the system prompt plus a user message; each
 * later turn's prompt is the whole history (every earlier user message and reply) plus a new user
 * message, so the session's chunks grow turn by turn and each turn re-reads all earlier ones. A
 * share of sessions is abandoned after the first turn (its chunks are never read again); the others
 * continue with a fixed probability per turn. Between turns: generation time of the reply plus a
 * think time (exponential, or occasionally a long break after which the user comes back). A session
 * ends when its context would exceed maxContextTokens. Replies are not cached at generation time
 * (LMCache's save_decode_cache=false), so a reply's chunks are first stored by the next turn.
 */
export function multiTurnTrace(seed: number, p: MultiTurnParams = DEFAULT_MULTI_TURN): Trace {
  const rng = new Prng(seed);
  const table = new ChunkTable();
  const sysLen: number[][] = MODELS.map(() => Array.from({ length: p.systemPrompts }, () => rng.lognormalInt(p.systemPromptMedianTokens, 0.6, 200, 6000)));
  const pickSys = zipfSampler(p.systemPrompts, p.systemPromptZipf);
  const events: { t: number; seq: number; chunks: Int32Array }[] = [];
  let start = 0;
  let seq = 0;
  for (let s = 0; s < p.sessions; s++) {
    start += rng.exponential(p.sessionInterarrivalS);
    const model = pickModel(rng);
    const sys = pickSys(rng);
    const shared = (sysLen[model] as number[])[sys] as number;
    const turns = rng.next() < p.abandonAfterFirst ? 1 : Math.min(p.maxTurns, 2 + rng.geometric(p.continueProb));
    let context = shared;
    let t = start;
    for (let turn = 0; turn < turns; turn++) {
      const user = rng.next() < p.pasteProb ? rng.lognormalInt(p.pasteMedianTokens, 0.7, 500, 16_000) : rng.lognormalInt(p.userMedianTokens, 1.0, 5, 4000);
      const prompt = context + user;
      if (prompt > p.maxContextTokens) break;
      events.push({ t, seq: seq++, chunks: chunksOf(table, prompt, shared, `sys:${model}:${sys}`, `session:${s}`, MODELS[model].chunkBytes) });
      const reply = rng.lognormalInt(p.replyMedianTokens, 0.7, 10, 2000);
      context = prompt + reply;
      const think = rng.next() < p.longBreakProb ? rng.exponential(p.longBreakMeanS) : rng.exponential(p.thinkMeanS);
      t += reply * p.decodeSPerToken + think;
    }
  }
  events.sort((x, y) => x.t - y.t || x.seq - y.seq);
  return { name: "multi-turn chat", requests: events.map((e) => e.chunks), chunkBytes: table.bytes(), params: { seed, ...p } };
}

// --- (b) shared prefix -----------------------------------------------------------------------

export interface SharedPrefixParams {
  groups: number;
  requests: number;
  /** Group popularity: P(group k) ∝ 1/(k+1)^zipf. */
  zipf: number;
  prefixMedianTokens: number;
  prefixSigma: number;
  suffixMedianTokens: number;
  suffixSigma: number;
}

export const DEFAULT_SHARED_PREFIX: SharedPrefixParams = {
  groups: 300,
  requests: 24_000,
  zipf: 0.9,
  prefixMedianTokens: 3000,
  prefixSigma: 0.6,
  suffixMedianTokens: 400,
  suffixSigma: 0.9,
};

/**
 * Groups (an app's system prompt, tool list, few-shot examples or a shared document), each with a
 * model (70 % 8B, 30 % 70B) and a long prefix (log-normal tokens, 500..16k). Each request picks a
 * group by Zipf popularity (groups in a random order, so popularity is independent of length and
 * model) and appends a unique suffix (log-normal); the suffix's chunks, including the one
 * straddling the prefix boundary, are never read again: one-hit wonders.
 */
export function sharedPrefixTrace(seed: number, p: SharedPrefixParams = DEFAULT_SHARED_PREFIX): Trace {
  const rng = new Prng(seed);
  const table = new ChunkTable();
  const groups = Array.from({ length: p.groups }, () => ({ model: pickModel(rng), prefix: rng.lognormalInt(p.prefixMedianTokens, p.prefixSigma, 500, 16_000) }));
  const pick = zipfSampler(p.groups, p.zipf);
  // Popularity rank → group, shuffled (Fisher-Yates).
  const order = Array.from({ length: p.groups }, (_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    [order[i], order[j]] = [order[j] as number, order[i] as number];
  }
  const requests: Int32Array[] = [];
  for (let r = 0; r < p.requests; r++) {
    const g = order[pick(rng)] as number;
    const group = groups[g] as { model: 0 | 1; prefix: number };
    const suffix = rng.lognormalInt(p.suffixMedianTokens, p.suffixSigma, 10, 8000);
    requests.push(chunksOf(table, group.prefix + suffix, group.prefix, `group:${g}`, `req:${r}`, MODELS[group.model].chunkBytes));
  }
  return { name: "shared prefix", requests, chunkBytes: table.bytes(), params: { seed, ...p } };
}

/** Accesses, distinct chunks, footprint bytes, and the hit ratios of an infinite cache. */
export function traceStats(trace: Trace) {
  let accesses = 0;
  let accessedBytes = 0;
  const seen = new Uint8Array(trace.chunkBytes.length);
  let firstBytes = 0;
  let first = 0;
  for (const req of trace.requests) {
    for (const id of req) {
      const b = trace.chunkBytes[id] as number;
      accesses++;
      accessedBytes += b;
      if (!seen[id]) {
        seen[id] = 1;
        first++;
        firstBytes += b;
      }
    }
  }
  let once = 0;
  const count = new Uint32Array(trace.chunkBytes.length);
  for (const req of trace.requests) for (const id of req) count[id] = (count[id] as number) + 1;
  for (const c of count) if (c === 1) once++;
  return {
    requests: trace.requests.length,
    accesses,
    distinctChunks: first,
    footprintBytes: firstBytes,
    oneHitChunkShare: once / first,
    infiniteCacheObjectHitRatio: 1 - first / accesses,
    infiniteCacheByteHitRatio: 1 - firstBytes / accessedBytes,
  };
}
