/**
 * Dataset files: JSONL, one record a line, in AIBrix's two shapes plus optional fields. An AIBrix
 * dataset loads as is; Switchyard's generators add lengths, groups, timestamps and think times.
 *
 * Prompt record: `{"prompt": "...", "completion"?: "...", "prompt_length"?: 812, "output_length"?: 128,
 *   "prefix_group"?: 3, "shared_prefix_length"?: 700, "timestamp_ms"?: 1200, "tenant"?: "acme"}`
 *   (`messages` may replace `prompt`: an OpenAI chat message list.)
 * Session record: `{"session_id": 0, "prompts": ["...", "..."], "completions"?: [...],
 *   "output_lengths"?: [128, 64], "think_time_ms"?: [0, 4000], "tenant"?: "acme"}`
 */
import { z } from "zod";
import { BenchInputError, parseRecord } from "../lib/errors";
import { readJsonl } from "../lib/jsonl";

const length = z.number().int().min(0).nullable().optional();

export const chatMessageSchema = z.looseObject({
  role: z.enum(["system", "user", "assistant", "tool", "developer"]),
  content: z.union([z.string(), z.array(z.looseObject({ type: z.string() }))]).nullable(),
});
export type ChatMessage = z.infer<typeof chatMessageSchema>;

export const promptRecordSchema = z
  .looseObject({
    prompt: z.string().optional(),
    messages: z.array(chatMessageSchema).min(1).optional(),
    completion: z.string().nullable().optional(),
    prompt_length: length,
    output_length: length,
    prefix_group: z.union([z.number(), z.string()]).nullable().optional(),
    shared_prefix_length: length,
    timestamp_ms: z.number().min(0).nullable().optional(),
    tenant: z.string().min(1).nullable().optional(),
  })
  .refine((r) => r.prompt !== undefined || r.messages !== undefined, { message: "a prompt record needs 'prompt' (a string) or 'messages'", path: ["prompt"] });

export const sessionRecordSchema = z.looseObject({
  session_id: z.union([z.number(), z.string().min(1)]),
  prompts: z.array(z.string()).min(1, "a session needs at least one prompt"),
  completions: z.array(z.string().nullable()).optional(),
  output_lengths: z.array(z.number().int().min(0).nullable()).optional(),
  prompt_lengths: z.array(z.number().int().min(0).nullable()).optional(),
  think_time_ms: z.array(z.number().min(0)).optional(),
  tenant: z.string().min(1).nullable().optional(),
  timestamp_ms: z.number().min(0).nullable().optional(),
});

export type PromptRecord = z.infer<typeof promptRecordSchema>;
export type SessionRecord = z.infer<typeof sessionRecordSchema>;
export type DatasetRecord = PromptRecord | SessionRecord;

/** One prompt (a single-turn request). */
export interface PromptEntry {
  kind: "prompt";
  line: number;
  prompt?: string;
  messages?: ChatMessage[];
  completion?: string;
  promptLength?: number;
  outputLength?: number;
  group?: string | number;
  timestampMs?: number;
  tenant?: string;
}

/** One conversation: turns sent in order, each after the previous answer. */
export interface SessionEntry {
  kind: "session";
  line: number;
  sessionId: string | number;
  prompts: string[];
  completions?: Array<string | null>;
  outputLengths?: Array<number | null>;
  promptLengths?: Array<number | null>;
  thinkTimeMs?: number[];
  tenant?: string;
  timestampMs?: number;
}

export type DatasetEntry = PromptEntry | SessionEntry;

export function isSessionRecord(value: unknown): boolean {
  return typeof value === "object" && value !== null && "session_id" in value && "prompts" in value;
}

/** Validates one parsed line into an entry (throws BenchInputError naming file, line and field). */
export function toEntry(value: unknown, file: string, line: number): DatasetEntry {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new BenchInputError(file, line, undefined, "expected a JSON object");
  if (isSessionRecord(value)) {
    const r = parseRecord(sessionRecordSchema, value, file, line);
    const n = r.prompts.length;
    for (const [field, arr] of [["completions", r.completions], ["output_lengths", r.output_lengths], ["think_time_ms", r.think_time_ms], ["prompt_lengths", r.prompt_lengths]] as const) {
      if (arr && arr.length !== n && !(field === "completions" && arr.length === 0)) {
        throw new BenchInputError(file, line, field, `has ${arr.length} entries for ${n} prompts`);
      }
    }
    return {
      kind: "session",
      line,
      sessionId: r.session_id,
      prompts: r.prompts,
      ...(r.completions && r.completions.length > 0 ? { completions: r.completions } : {}),
      ...(r.output_lengths ? { outputLengths: r.output_lengths } : {}),
      ...(r.prompt_lengths ? { promptLengths: r.prompt_lengths } : {}),
      ...(r.think_time_ms ? { thinkTimeMs: r.think_time_ms } : {}),
      ...(r.tenant ? { tenant: r.tenant } : {}),
      ...(r.timestamp_ms != null ? { timestampMs: r.timestamp_ms } : {}),
    };
  }
  if ("prompts" in value && !("session_id" in value)) throw new BenchInputError(file, line, "session_id", "a record with 'prompts' is a session and needs 'session_id'");
  const r = parseRecord(promptRecordSchema, value, file, line);
  return {
    kind: "prompt",
    line,
    ...(r.prompt !== undefined ? { prompt: r.prompt } : {}),
    ...(r.messages ? { messages: r.messages } : {}),
    ...(r.completion != null ? { completion: r.completion } : {}),
    ...(r.prompt_length != null ? { promptLength: r.prompt_length } : {}),
    ...(r.output_length != null ? { outputLength: r.output_length } : {}),
    ...(r.prefix_group != null ? { group: r.prefix_group } : {}),
    ...(r.timestamp_ms != null ? { timestampMs: r.timestamp_ms } : {}),
    ...(r.tenant ? { tenant: r.tenant } : {}),
  };
}

/** Loads a dataset JSONL file (Switchyard's or AIBrix's). */
export async function loadDataset(file: string): Promise<DatasetEntry[]> {
  const out: DatasetEntry[] = [];
  for await (const { value, line } of readJsonl(file)) out.push(toEntry(value, file, line));
  if (out.length === 0) throw new BenchInputError(file, undefined, undefined, "the dataset is empty");
  return out;
}
