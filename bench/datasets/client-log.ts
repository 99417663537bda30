/**
 * Client logs → dataset with timestamps, for replay. Reads JSONL request logs of three kinds:
 *
 * - `bench run` output (recorded with text, the default): `timestamp_ms`, `prompt`/`messages`,
 *   `output`, `tenant`, `session_id`, `turn`, `completion_tokens`, `sent_ms`, `e2e_ms`;
 * - AIBrix's client output: `input` (the chat messages sent), `output`, `start_time` (seconds),
 *   `output_tokens`, `session_id`;
 * - a generic request log: `timestamp` (ms since epoch or ISO text) or `time`, `prompt` or
 *   `messages`, `max_tokens`/`output_length`, `tenant`, `session_id`.
 *
 * Times become `timestamp_ms` relative to the earliest request; sessions become session records
 * (turns in order, think time = gap between a turn's end and the next turn's start when the log
 * has both). `bench workload --pattern replay` then sends them at those times.
 *
 * @example
 * ```ts
 * const records = await convertClientLog("results.jsonl");
 * ```
 */
import { BenchInputError } from "../lib/errors";
import { readJsonl } from "../lib/jsonl";
import type { ChatMessage, DatasetRecord, PromptRecord, SessionRecord } from "./format";
import { chatMessageSchema } from "./format";

interface LogRequest {
  line: number;
  timeMs: number;
  endMs?: number;
  prompt?: string;
  messages?: ChatMessage[];
  completion?: string;
  outputLength?: number;
  promptLength?: number;
  tenant?: string;
  sessionId?: string | number;
  turn?: number;
  /** Think time before this turn, when the log records it (`bench run` does). */
  thinkMs?: number;
}

function num(v: unknown): number | undefined {
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

function timeOf(r: Record<string, unknown>, file: string, line: number): { timeMs: number; endMs?: number } {
  // Our own records: the request's time in the workload (their think times are recorded too).
  const ts = num(r.timestamp_ms);
  if (ts !== undefined) return { timeMs: ts };
  for (const key of ["timestamp", "time", "ts", "created_at"]) {
    const v = r[key];
    if (typeof v === "number" && Number.isFinite(v)) return { timeMs: v < 1e11 && key !== "timestamp" ? v * 1000 : v };
    if (typeof v === "string" && v.trim() !== "") {
      const t = Date.parse(v);
      if (Number.isNaN(t)) throw new BenchInputError(file, line, key, `'${v}' is not a time (ISO 8601 or milliseconds)`);
      return { timeMs: t };
    }
  }
  const start = num(r.start_time);
  if (start !== undefined) {
    // AIBrix: seconds (event-loop clock); end_time likewise.
    const end = num(r.end_time);
    return { timeMs: start * 1000, ...(end !== undefined ? { endMs: end * 1000 } : {}) };
  }
  const sent = num(r.sent_ms);
  if (sent !== undefined) return { timeMs: sent };
  throw new BenchInputError(file, line, "timestamp", "no request time: expected one of timestamp_ms, timestamp (ms or ISO), time, start_time (s), sent_ms");
}

function messagesOf(v: unknown, file: string, line: number, field: string): ChatMessage[] | undefined {
  if (!Array.isArray(v)) return undefined;
  return v.map((m, i) => {
    const parsed = chatMessageSchema.safeParse(m);
    if (!parsed.success) throw new BenchInputError(file, line, `${field}[${i}]`, parsed.error.issues[0]?.message ?? "not a chat message");
    return parsed.data;
  });
}

function lastUserText(messages: ChatMessage[]): string | undefined {
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i] as ChatMessage;
    if (m.role === "user" && typeof m.content === "string") return m.content;
  }
  return undefined;
}

function toRequest(value: unknown, file: string, line: number): LogRequest {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new BenchInputError(file, line, undefined, "expected a JSON object");
  const r = value as Record<string, unknown>;
  const { timeMs, endMs } = timeOf(r, file, line);
  let prompt = typeof r.prompt === "string" ? r.prompt : undefined;
  let messages = messagesOf(r.messages, file, line, "messages");
  if (prompt === undefined && messages === undefined) {
    if (typeof r.input === "string") prompt = r.input;
    else messages = messagesOf(r.input, file, line, "input");
  }
  if (prompt === undefined && messages === undefined) {
    throw new BenchInputError(file, line, "prompt", "no prompt text: expected 'prompt', 'messages' or 'input' (run `bench run` with text recording, the default, to replay its output)");
  }
  const completion = typeof r.output === "string" ? r.output : typeof r.completion === "string" ? r.completion : undefined;
  const outputLength = num(r.completion_tokens) ?? num(r.output_tokens) ?? num(r.output_length) ?? num(r.max_tokens) ?? num(r.expected_output_tokens);
  const promptLength = num(r.prompt_length) ?? num(r.expected_prompt_tokens);
  const session = r.session_id;
  return {
    line,
    timeMs,
    ...(endMs !== undefined ? { endMs } : {}),
    ...(prompt !== undefined ? { prompt } : {}),
    ...(messages !== undefined ? { messages } : {}),
    ...(completion !== undefined && completion !== "" ? { completion } : {}),
    ...(outputLength !== undefined && outputLength > 0 ? { outputLength: Math.round(outputLength) } : {}),
    ...(promptLength !== undefined ? { promptLength: Math.round(promptLength) } : {}),
    ...(typeof r.tenant === "string" && r.tenant !== "" ? { tenant: r.tenant } : {}),
    ...(typeof session === "string" || typeof session === "number" ? { sessionId: session } : {}),
    ...(num(r.turn) !== undefined ? { turn: num(r.turn) as number } : {}),
    ...(num(r.think_time_ms) !== undefined ? { thinkMs: num(r.think_time_ms) as number } : {}),
  };
}

export interface ClientLogOptions {
  /** Keep only requests of these statuses when the log has a `status` field (default: all). */
  statuses?: string[];
}

/** Converts a client log into dataset records with `timestamp_ms` (sorted by time). */
export async function convertClientLog(file: string, opts: ClientLogOptions = {}): Promise<DatasetRecord[]> {
  const requests: LogRequest[] = [];
  for await (const { value, line } of readJsonl(file)) {
    const status = (value as { status?: unknown } | null)?.status;
    if (opts.statuses && typeof status === "string" && !opts.statuses.includes(status)) continue;
    requests.push(toRequest(value, file, line));
  }
  if (requests.length === 0) throw new BenchInputError(file, undefined, undefined, "no requests in the log");
  const t0 = Math.min(...requests.map((r) => r.timeMs));
  const singles: Array<{ t: number; rec: PromptRecord }> = [];
  const sessions = new Map<string, LogRequest[]>();
  for (const r of requests) {
    if (r.sessionId === undefined) {
      const rec: PromptRecord = {
        ...(r.prompt !== undefined ? { prompt: r.prompt } : { messages: r.messages }),
        ...(r.completion !== undefined ? { completion: r.completion } : {}),
        ...(r.promptLength !== undefined ? { prompt_length: r.promptLength } : {}),
        ...(r.outputLength !== undefined ? { output_length: r.outputLength } : {}),
        ...(r.tenant !== undefined ? { tenant: r.tenant } : {}),
        timestamp_ms: Math.round((r.timeMs - t0) * 1000) / 1000,
      };
      singles.push({ t: r.timeMs, rec });
      continue;
    }
    const key = `${r.tenant ?? ""}\u0000${r.sessionId}`;
    let list = sessions.get(key);
    if (!list) sessions.set(key, (list = []));
    list.push(r);
  }
  const sessionRecords: Array<{ t: number; rec: SessionRecord }> = [];
  for (const turns of sessions.values()) {
    turns.sort((a, b) => (a.turn !== undefined && b.turn !== undefined ? a.turn - b.turn : a.timeMs - b.timeMs));
    const first = turns[0] as LogRequest;
    const think = turns.map((t, i) => {
      if (i === 0) return 0;
      if (t.thinkMs !== undefined) return t.thinkMs;
      const prev = turns[i - 1] as LogRequest;
      return prev.endMs !== undefined ? Math.max(0, Math.round(t.timeMs - prev.endMs)) : 0;
    });
    const prompts = turns.map((t) => t.prompt ?? (t.messages ? lastUserText(t.messages) : undefined) ?? "");
    const completions = turns.map((t) => t.completion ?? null);
    sessionRecords.push({
      t: first.timeMs,
      rec: {
        session_id: first.sessionId as string | number,
        prompts,
        ...(completions.some((c) => c !== null) ? { completions } : {}),
        output_lengths: turns.map((t) => t.outputLength ?? null),
        think_time_ms: think,
        ...(first.tenant !== undefined ? { tenant: first.tenant } : {}),
        timestamp_ms: Math.round((first.timeMs - t0) * 1000) / 1000,
      },
    });
  }
  return [...singles, ...sessionRecords].sort((a, b) => a.t - b.t).map((x) => x.rec);
}
