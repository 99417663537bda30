/**
 * ShareGPT → dataset. Reads a local ShareGPT dump (`ShareGPT_V3_unfiltered_cleaned_split.json`: a
 * JSON array, streamed element by element; or JSONL) of `{"id", "conversations": [{"from":
 * "human"|"gpt"|..., "value": "..."}]}` and writes sessions (human turns as prompts, the recorded
 * answers as completions, their token counts as output lengths), as AIBrix's converter does, or with
 * `singleTurn` one prompt record per conversation (its first exchange).
 *
 * @example
 * ```ts
 * for await (const record of convertShareGpt("ShareGPT_V3.json", { maxSessions: 1000 })) out.write(record);
 * ```
 */
import { z } from "zod";
import { BenchInputError, parseRecord } from "../lib/errors";
import { firstChar, readJsonArray, readJsonl } from "../lib/jsonl";
import type { DatasetRecord } from "./format";
import { countTokens } from "./text";

const conversationSchema = z.looseObject({
  id: z.union([z.string(), z.number()]).optional(),
  conversations: z.array(z.looseObject({ from: z.string(), value: z.string() })),
});

const USER = new Set(["human", "user"]);
const ASSISTANT = new Set(["gpt", "chatgpt", "bing", "bard", "assistant", "model"]);

export interface ShareGptOptions {
  /** Stop after this many sessions (records written). */
  maxSessions?: number;
  /** Skip conversations with fewer complete exchanges (default 1). */
  minTurns?: number;
  /** Keep at most this many exchanges per conversation. */
  maxTurns?: number;
  /** Skip exchanges whose prompt is longer (tokens); the conversation is cut there. */
  maxPromptLength?: number;
  /** One prompt record per conversation (first exchange) instead of sessions. */
  singleTurn?: boolean;
}

export interface ShareGptStats {
  read: number;
  written: number;
  skipped: number;
}

export async function* convertShareGpt(file: string, opts: ShareGptOptions = {}, stats: ShareGptStats = { read: 0, written: 0, skipped: 0 }): AsyncGenerator<DatasetRecord> {
  const isArray = firstChar(file) === "[";
  const source = isArray ? readJsonArray(file) : readJsonl(file);
  const minTurns = opts.minTurns ?? 1;
  for await (const item of source) {
    const index = "index" in item ? (item as { index: number }).index : undefined;
    stats.read++;
    const conv = parseRecord(conversationSchema, item.value, file, item.line, index !== undefined ? `[${index}]` : "");
    const prompts: string[] = [];
    const completions: string[] = [];
    let pending: string | undefined;
    for (const [i, turn] of conv.conversations.entries()) {
      const from = turn.from.toLowerCase();
      if (USER.has(from)) pending = pending === undefined ? turn.value : `${pending}\n${turn.value}`;
      else if (ASSISTANT.has(from)) {
        if (pending === undefined) continue; // an answer before any question (or two in a row): skip it
        if (opts.maxPromptLength !== undefined && countTokens(pending) > opts.maxPromptLength) break;
        prompts.push(pending);
        completions.push(turn.value);
        pending = undefined;
        if (opts.maxTurns !== undefined && prompts.length >= opts.maxTurns) break;
      } else if (from !== "system") {
        throw new BenchInputError(file, item.line, `${index !== undefined ? `[${index}].` : ""}conversations[${i}].from`, `unknown speaker '${turn.from}' (expected human/user or gpt/assistant)`);
      }
    }
    if (prompts.length < minTurns || prompts.length === 0) {
      stats.skipped++;
      continue;
    }
    const outputLengths = completions.map(countTokens);
    if (opts.singleTurn) {
      yield { prompt: prompts[0] as string, completion: completions[0] as string, prompt_length: countTokens(prompts[0] as string), output_length: outputLengths[0] as number };
    } else {
      yield {
        session_id: conv.id ?? stats.written,
        prompts,
        completions,
        prompt_lengths: prompts.map(countTokens),
        output_lengths: outputLengths,
      };
    }
    stats.written++;
    if (opts.maxSessions !== undefined && stats.written >= opts.maxSessions) return;
  }
}
