/**
 * Synthetic shared-prefix dataset: `groups` prefixes (a system prompt, a document, a tool list),
 * each followed by `promptsPerGroup` distinct suffixes (the user's question). Prefix, suffix and
 * output lengths each follow a distribution; the text is generated to those token lengths. This is
 * AIBrix's `synthetic_shared` (length, shared proportion) written as separate prefix and suffix
 * lengths, which also expresses "same length, 95 % shared" (`--prefix-length normal:3800,17
 * --suffix-length normal:200,5`).
 *
 * @example
 * ```ts
 * const records = generateSharedPrefix({ groups: 8, promptsPerGroup: 16, prefixLength: parseDistribution("2048"),
 *   suffixLength: parseDistribution("lognormal:128,64"), seed: 1 });
 * ```
 */
import { type Distribution, describeDistribution, sampleInt } from "../lib/distribution";
import { Rng } from "../lib/rng";
import type { PromptRecord } from "./format";
import { promptText } from "./text";

export interface SharedPrefixOptions {
  groups: number;
  promptsPerGroup: number;
  /** Shared prefix length per group (0 allowed: no shared prefix). */
  prefixLength: Distribution;
  /** Distinct suffix length per prompt (≥ 1). */
  suffixLength: Distribution;
  /** Answer length per prompt (the request's max_tokens); omitted when not given. */
  outputLength?: Distribution;
  /** Shuffle prompts across groups (default: grouped, in order). */
  randomizeOrder?: boolean;
  seed: number;
}

export function generateSharedPrefix(opts: SharedPrefixOptions): PromptRecord[] {
  const root = new Rng(opts.seed);
  const lengths = root.fork("lengths");
  const out: PromptRecord[] = [];
  for (let g = 0; g < opts.groups; g++) {
    const prefixTokens = sampleInt(opts.prefixLength, lengths, 0);
    const prefix = prefixTokens > 0 ? promptText(prefixTokens, root.fork(`prefix:${g}`)) : "";
    for (let i = 0; i < opts.promptsPerGroup; i++) {
      const suffixTokens = sampleInt(opts.suffixLength, lengths, 1);
      const suffix = promptText(suffixTokens, root.fork(`suffix:${g}:${i}`), { leadingSpace: prefixTokens > 0, question: true });
      out.push({
        prompt: prefix + suffix,
        prompt_length: prefixTokens + suffixTokens,
        ...(opts.outputLength ? { output_length: sampleInt(opts.outputLength, lengths, 1) } : {}),
        prefix_group: g,
        shared_prefix_length: prefixTokens,
      });
    }
  }
  if (opts.randomizeOrder) root.fork("order").shuffle(out);
  return out;
}

export function describeSharedPrefix(opts: SharedPrefixOptions): Record<string, unknown> {
  return {
    generator: "shared-prefix",
    groups: opts.groups,
    prompts_per_group: opts.promptsPerGroup,
    prefix_length: describeDistribution(opts.prefixLength),
    suffix_length: describeDistribution(opts.suffixLength),
    ...(opts.outputLength ? { output_length: describeDistribution(opts.outputLength) } : {}),
    randomize_order: opts.randomizeOrder ?? false,
    seed: opts.seed,
  };
}
