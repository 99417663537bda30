/**
 * Workloads for routing studies in the emulator's discrete-event mode: token-level prompts with
 * their engine block hashes precomputed, a session key (what session-affinity routes on), and a
 * request id. Both are seeded and reproducible.
 *
 * - shared-prefix: groups (an app's system prompt, a document) of a few thousand tokens with
 *   Zipf-skewed popularity, each request the group's prefix plus a unique question;
 * - multi-turn: chat sessions that resend their history every turn (the next prompt is the
 *   previous prompt + the answer + a new user message), with think time between turns.
 */
import { blockHashes } from "../../dataplane/engines/sim/kv-cache";
import type { StudyRequest } from "../../dataplane/engines/sim/des";

export interface RoutedRequest extends StudyRequest {
  id: string;
  sessionKey: string;
  blockHashes: Float64Array;
}

const BLOCK = 16;

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function tokens(n: number, random: () => number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = 1000 + Math.floor(random() * 120_000);
  return out;
}

function lognormal(random: () => number, median: number, sigma: number): number {
  const z = Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  return median * Math.exp(sigma * z);
}

/** Zipf(s) over n items, by inverse CDF. */
function zipf(n: number, s: number, random: () => number): () => number {
  const cdf = new Float64Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) total += 1 / (i + 1) ** s;
  let acc = 0;
  for (let i = 0; i < n; i++) {
    acc += 1 / (i + 1) ** s / total;
    cdf[i] = acc;
  }
  return () => {
    const u = random();
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((cdf[mid] as number) < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

export interface SharedPrefixOptions {
  count: number;
  qps: number;
  groups: number;
  prefixTokens: [number, number];
  questionTokens: [number, number];
  outputMedian: number;
  zipfS: number;
  seed: number;
}

export const SHARED_PREFIX_DEFAULTS: Omit<SharedPrefixOptions, "count" | "qps"> = {
  groups: 200,
  prefixTokens: [1_024, 6_144],
  questionTokens: [32, 256],
  outputMedian: 128,
  zipfS: 0.8,
  seed: 1,
};

export function* sharedPrefixWorkload(o: SharedPrefixOptions): Generator<RoutedRequest> {
  const random = rng(o.seed);
  const pick = zipf(o.groups, o.zipfS, random);
  const groups = Array.from({ length: o.groups }, () => {
    const len = Math.round((o.prefixTokens[0] + random() * (o.prefixTokens[1] - o.prefixTokens[0])) / BLOCK) * BLOCK;
    const t = tokens(len, random);
    return { tokens: t, hashes: blockHashes(t, BLOCK) };
  });
  let t = 0;
  for (let i = 0; i < o.count; i++) {
    t += (-Math.log(1 - random()) / o.qps) * 1000;
    const g = pick();
    const group = groups[g] as { tokens: Int32Array; hashes: Float64Array };
    const q = Math.round(o.questionTokens[0] + random() * (o.questionTokens[1] - o.questionTokens[0]));
    const prompt = new Int32Array(group.tokens.length + q);
    prompt.set(group.tokens);
    prompt.set(tokens(q, random), group.tokens.length);
    const hashes = new Float64Array(Math.floor(prompt.length / BLOCK));
    hashes.set(group.hashes);
    blockHashes(prompt, BLOCK, hashes, group.hashes.length);
    yield {
      id: `sp-${i}`,
      sessionKey: `group-${g}`,
      arrivalMs: t,
      promptTokens: prompt,
      blockHashes: hashes,
      maxTokens: 1_024,
      outputTokens: Math.max(1, Math.round(lognormal(random, o.outputMedian, 0.6))),
    };
  }
}

export interface MultiTurnOptions {
  /** Requests (turns) to produce in total. */
  count: number;
  /** Turns per second across sessions (sessions start at qps / meanTurns). */
  qps: number;
  meanTurns: number;
  systemPrompts: number;
  systemTokens: [number, number];
  userTokens: [number, number];
  answerTokens: [number, number];
  thinkMs: number;
  seed: number;
}

export const MULTI_TURN_DEFAULTS: Omit<MultiTurnOptions, "count" | "qps"> = {
  meanTurns: 6,
  systemPrompts: 20,
  systemTokens: [256, 1_536],
  userTokens: [32, 384],
  answerTokens: [64, 512],
  thinkMs: 5_000,
  seed: 2,
};

/** All turns of all sessions, in arrival order (answers have fixed lengths so history is exact). */
export function multiTurnWorkload(o: MultiTurnOptions): RoutedRequest[] {
  const random = rng(o.seed);
  const between = ([lo, hi]: [number, number]) => Math.round(lo + random() * (hi - lo));
  const systems = Array.from({ length: o.systemPrompts }, () => tokens(Math.round(between(o.systemTokens) / BLOCK) * BLOCK, random));
  // Turns must arrive at `qps` from the first second, so sessions start well before time 0 (about
  // three session lifetimes); turns before 0 are not sent — like a cluster whose cache starts
  // cold while conversations are already under way — nor are turns after the run's end.
  const sessionRate = o.qps / o.meanTurns;
  const meanAnswer = (o.answerTokens[0] + o.answerTokens[1]) / 2;
  const lifetimeMs = o.meanTurns * (o.thinkMs + meanAnswer * 12);
  const horizonMs = (o.count / o.qps) * 1000;
  const out: RoutedRequest[] = [];
  let start = -3 * lifetimeMs;
  let session = 0;
  for (;;) {
    start += (-Math.log(1 - random()) / sessionRate) * 1000;
    if (start > horizonMs) break;
    const turns = Math.min(4 * o.meanTurns, Math.max(1, Math.round(-Math.log(1 - random()) * o.meanTurns)));
    let history = systems[Math.floor(random() * systems.length)] as Int32Array;
    let at = start;
    for (let k = 0; k < turns && at <= horizonMs; k++) {
      const user = tokens(between(o.userTokens), random);
      const prompt = new Int32Array(history.length + user.length);
      prompt.set(history);
      prompt.set(user, history.length);
      const answerLen = between(o.answerTokens);
      if (at >= 0) out.push({
        id: `mt-${session}-${k}`,
        sessionKey: `session-${session}`,
        arrivalMs: at,
        promptTokens: prompt,
        blockHashes: blockHashes(prompt, BLOCK),
        maxTokens: answerLen,
        outputTokens: answerLen,
        ignoreEos: true,
      });
      // The answer the engine will produce is unknown here; what matters for caching is that the
      // next turn resends this turn's prompt, which it does. The answer tokens are stand-ins.
      const answer = tokens(answerLen, random);
      history = new Int32Array(prompt.length + answer.length);
      history.set(prompt);
      history.set(answer, prompt.length);
      // Next turn: after the answer (≈ its decode time) and the user's think time.
      at += answerLen * 12 + -Math.log(1 - random()) * o.thinkMs;
    }
    session++;
  }
  out.sort((a, b) => a.arrivalMs - b.arrivalMs);
  return out.slice(0, o.count);
}
