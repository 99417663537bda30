/**
 * What `bench run` writes: one JSONL record per request (in completion order, written as each
 * finishes) and a run file next to it (`<results>.run.json`) describing the run. Times are wall-clock
 * milliseconds measured by the client; `timestamp_ms` is the request's time in the workload.
 */
import { existsSync } from "node:fs";
import { z } from "zod";
import { BenchInputError, parseRecord } from "../lib/errors";
import { readJsonFile, readJsonl } from "../lib/jsonl";

export type RequestStatus = "ok" | "error" | "cancelled";

export interface ResultRecord {
  /** The response's `x-request-id` (the id the client sent unless the edge replaced it). */
  request_id: string;
  /** Position of the request in the workload (0-based). */
  index: number;
  status: RequestStatus;
  tenant: string | null;
  session_id: string | null;
  turn: number | null;
  /** Session turns: the think time (workload ms) waited after the previous answer. */
  think_time_ms: number | null;
  /** The request's time in the workload (ms, before --time-scale). */
  timestamp_ms: number;
  /** Wall ms after the run's start when the request was due (open loop; after the previous turn for sessions). */
  scheduled_ms: number;
  /** Wall ms after the run's start when it was sent (scheduled + client-side delay). */
  sent_ms: number;
  /** ISO time it was sent. */
  sent_at: string;
  /** Time to the first non-empty content token (streaming only). */
  ttft_ms: number | null;
  /** (end − first token) / (completion tokens − 1) (streaming only). */
  tpot_ms: number | null;
  /** Gaps between content chunks as they arrived (streaming only). */
  itl_ms: number[];
  /** Send to last byte. */
  e2e_ms: number | null;
  prompt_tokens: number | null;
  completion_tokens: number | null;
  cached_tokens: number | null;
  /** Lengths the workload asked for (prompt_length, output_length). */
  expected_prompt_tokens: number | null;
  expected_output_tokens: number | null;
  http_status: number | null;
  /** `http`, `network`, `timeout`, `protocol`, `stream` or `cancelled`. */
  error_type: string | null;
  error_code: string | null;
  error_message: string | null;
  /** Response headers: x-switchyard-node, -region, -routing-strategy, -prefix-blocks. */
  node: string | null;
  region: string | null;
  routing_strategy: string | null;
  prefix_blocks: string | null;
  finish_reason: string | null;
  stream: boolean;
  /** With --record-text: the last user prompt, the messages sent and the answer. */
  prompt?: string;
  messages?: unknown[];
  output?: string;
}

export interface RunMeta {
  schema: "switchyard.bench.run.v1";
  run_id: string;
  /** What was measured (a strategy, a configuration): the column in comparisons. */
  system: string;
  /** Workload label (e.g. "Workload-1"): the row group in comparisons. */
  workload: string | null;
  workload_file: string | null;
  /** Nominal request rate of the workload (req/s in workload time), when known. */
  qps: number | null;
  base_url: string;
  model: string;
  endpoint: "chat" | "completions";
  stream: boolean;
  routing_strategy: string | null;
  /** Arrivals were sent this many times faster than the workload's timestamps. */
  time_scale: number;
  /**
   * The served engines ran this many times faster than real time (the emulator's timeScale): reports
   * multiply latencies by it and divide rates by it to show model time. 1 for real engines.
   */
  model_time_scale: number;
  max_concurrency: number;
  started_at: string;
  finished_at: string | null;
  duration_ms: number | null;
  requests_total: number;
  sent: number;
  ok: number;
  errors: number;
  cancelled: number;
  not_sent: number;
  interrupted: boolean;
  tags: Record<string, string>;
}

const n = z.number().nullable();
export const resultRecordSchema = z.looseObject({
  request_id: z.string(),
  index: z.number().int().min(0),
  status: z.enum(["ok", "error", "cancelled"]),
  tenant: z.string().nullable(),
  session_id: z.string().nullable().optional(),
  turn: z.number().int().nullable().optional(),
  think_time_ms: n.optional(),
  timestamp_ms: z.number(),
  scheduled_ms: z.number(),
  sent_ms: z.number(),
  sent_at: z.string().optional(),
  ttft_ms: n,
  tpot_ms: n,
  itl_ms: z.array(z.number()).optional(),
  e2e_ms: n,
  prompt_tokens: n,
  completion_tokens: n,
  cached_tokens: n,
  expected_prompt_tokens: n.optional(),
  expected_output_tokens: n.optional(),
  http_status: n.optional(),
  error_type: z.string().nullable().optional(),
  error_code: z.string().nullable().optional(),
  error_message: z.string().nullable().optional(),
  node: z.string().nullable().optional(),
  region: z.string().nullable().optional(),
  routing_strategy: z.string().nullable().optional(),
  prefix_blocks: z.string().nullable().optional(),
  finish_reason: z.string().nullable().optional(),
  stream: z.boolean().optional(),
});

export const runMetaSchema = z.looseObject({
  schema: z.literal("switchyard.bench.run.v1"),
  run_id: z.string(),
  system: z.string(),
  workload: z.string().nullable().optional(),
  qps: z.number().nullable().optional(),
  time_scale: z.number().positive().optional(),
  model_time_scale: z.number().positive().optional(),
  started_at: z.string().optional(),
  interrupted: z.boolean().optional(),
});

/** `<results>.jsonl` → `<results>.run.json`. */
export function runFileFor(resultsPath: string): string {
  return resultsPath.replace(/\.jsonl$/i, "") + ".run.json";
}

export interface LoadedRun {
  file: string;
  meta: RunMeta;
  records: ResultRecord[];
}

/** Reads a results file and its run file (when missing, the run is named after the file). */
export async function loadRun(file: string): Promise<LoadedRun> {
  const records: ResultRecord[] = [];
  for await (const { value, line } of readJsonl(file)) {
    records.push({ itl_ms: [], ...(parseRecord(resultRecordSchema, value, file, line) as object) } as unknown as ResultRecord);
  }
  const metaPath = runFileFor(file);
  let meta: RunMeta;
  if (existsSync(metaPath)) {
    meta = parseRecord(runMetaSchema, readJsonFile(metaPath), metaPath, undefined) as unknown as RunMeta;
  } else {
    const base = file.replace(/^.*[\\/]/, "").replace(/\.jsonl$/i, "");
    meta = {
      schema: "switchyard.bench.run.v1",
      run_id: base,
      system: base,
      workload: null,
      workload_file: null,
      qps: null,
      base_url: "",
      model: "",
      endpoint: "chat",
      stream: records.some((r) => r.ttft_ms !== null),
      routing_strategy: null,
      time_scale: 1,
      model_time_scale: 1,
      max_concurrency: 0,
      started_at: "",
      finished_at: null,
      duration_ms: null,
      requests_total: records.length,
      sent: records.length,
      ok: records.filter((r) => r.status === "ok").length,
      errors: records.filter((r) => r.status === "error").length,
      cancelled: records.filter((r) => r.status === "cancelled").length,
      not_sent: 0,
      interrupted: false,
      tags: {},
    };
  }
  if (records.length === 0) throw new BenchInputError(file, undefined, undefined, "no request records (an empty results file)");
  return { file, meta: { ...meta, time_scale: meta.time_scale ?? 1, model_time_scale: meta.model_time_scale ?? 1, workload: meta.workload ?? null, qps: meta.qps ?? null }, records };
}
