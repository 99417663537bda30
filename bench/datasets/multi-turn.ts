/**
 * Synthetic multi-turn dataset: sessions of several turns; each turn a new user message of a drawn
 * length, an answer length, and the user's think time before it (the first turn's is 0). The client
 * replays history (every earlier prompt and the answer actually received), so a session's context
 * grows turn by turn, as in AIBrix's `synthetic_multiturn` and the seed's Workload-3. An optional
 * shared prefix (a system prompt common to every session) is prepended to each first turn.
 *
 * @example
 * ```ts
 * generateMultiTurn({ sessions: 100, turns: parseDistribution("normal:3.55,2.89"), promptLength: parseDistribution("lognormal:200,150"),
 *   outputLength: parseDistribution("128"), thinkTimeMs: parseDistribution("exponential:5000"), seed: 3 });
 * ```
 */
import { type Distribution, describeDistribution, sample, sampleInt } from "../lib/distribution";
import { Rng } from "../lib/rng";
import type { SessionRecord } from "./format";
import { promptText } from "./text";

export interface MultiTurnOptions {
  sessions: number;
  /** Turns per session (≥ 1). */
  turns: Distribution;
  /** New user tokens per turn. */
  promptLength: Distribution;
  outputLength: Distribution;
  /** Think time before each turn after the first, in workload milliseconds. */
  thinkTimeMs: Distribution;
  /** A system-prompt-like prefix shared by all sessions (tokens; default none). */
  sharedPrefixLength?: number;
  seed: number;
}

export function generateMultiTurn(opts: MultiTurnOptions): SessionRecord[] {
  const root = new Rng(opts.seed);
  const lengths = root.fork("lengths");
  const shared = opts.sharedPrefixLength && opts.sharedPrefixLength > 0 ? promptText(opts.sharedPrefixLength, root.fork("shared-prefix")) : "";
  const out: SessionRecord[] = [];
  for (let s = 0; s < opts.sessions; s++) {
    const turns = sampleInt(opts.turns, lengths, 1);
    const prompts: string[] = [];
    const promptLengths: number[] = [];
    const outputLengths: number[] = [];
    const think: number[] = [];
    for (let t = 0; t < turns; t++) {
      const n = sampleInt(opts.promptLength, lengths, 1);
      const text = promptText(n, root.fork(`session:${s}:${t}`), { leadingSpace: t === 0 && shared !== "", question: true });
      prompts.push(t === 0 ? shared + text : text);
      promptLengths.push(t === 0 ? (opts.sharedPrefixLength ?? 0) + n : n);
      outputLengths.push(sampleInt(opts.outputLength, lengths, 1));
      think.push(t === 0 ? 0 : Math.round(sample(opts.thinkTimeMs, lengths, 0)));
    }
    out.push({ session_id: s, prompts, prompt_lengths: promptLengths, output_lengths: outputLengths, think_time_ms: think });
  }
  return out;
}

export function describeMultiTurn(opts: MultiTurnOptions): Record<string, unknown> {
  return {
    generator: "multi-turn",
    sessions: opts.sessions,
    turns: describeDistribution(opts.turns),
    prompt_length: describeDistribution(opts.promptLength),
    output_length: describeDistribution(opts.outputLength),
    think_time_ms: describeDistribution(opts.thinkTimeMs),
    shared_prefix_length: opts.sharedPrefixLength ?? 0,
    seed: opts.seed,
  };
}
