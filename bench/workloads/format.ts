/**
 * Workload files: AIBrix's format — JSONL (or a JSON array) of `{"timestamp": <ms>, "requests":
 * [{"prompt", "prompt_length", "output_length", "session_id"}]}` — extended with optional request
 * fields `tenant`, `messages`, `turn`, `think_time_ms`, and an optional first line describing the
 * workload and its tenants:
 *
 * ```
 * {"schema":"switchyard.workload.v1","tenants":[{"id":"acme","api_key_env":"ACME_KEY","weight":1,"rate":10}],"meta":{"qps":12,...}}
 * {"timestamp":0,"requests":[{"prompt":"...","prompt_length":812,"output_length":128,"tenant":"acme"}]}
 * ```
 *
 * AIBrix workloads load as they are (including Python's `NaN` for missing lengths).
 */
import { z } from "zod";
import { type ChatMessage, chatMessageSchema } from "../datasets/format";
import { BenchInputError, parseRecord } from "../lib/errors";
import { firstChar, readJsonArray, readJsonl } from "../lib/jsonl";

export const WORKLOAD_SCHEMA = "switchyard.workload.v1";

export const tenantSpecSchema = z.strictObject({
  id: z.string().min(1).max(128),
  /** The tenant's API key in plain text (prefer api_key_env: workload files get shared). */
  api_key: z.string().min(1).optional(),
  /** Environment variable holding the tenant's API key. */
  api_key_env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "must be an environment variable name").optional(),
  /** Share of the pattern's rate among tenants without their own rate (default 1). */
  weight: z.number().positive().optional(),
  /** The tenant's own mean rate (req/s): scales the pattern for this tenant. */
  rate: z.number().positive().optional(),
  /** A dataset file for this tenant's prompts (default: the workload's dataset). */
  dataset: z.string().min(1).optional(),
});
export type TenantSpec = z.infer<typeof tenantSpecSchema>;

const headerSchema = z.looseObject({
  schema: z.literal(WORKLOAD_SCHEMA),
  tenants: z.array(tenantSpecSchema).optional(),
  meta: z.record(z.string(), z.unknown()).optional(),
});

const length = z.number().int().min(0).nullable().optional();
export const workloadRequestSchema = z
  .looseObject({
    prompt: z.string().nullable().optional(),
    messages: z.array(chatMessageSchema).min(1).optional(),
    prompt_length: length,
    output_length: length,
    session_id: z.union([z.string(), z.number()]).nullable().optional(),
    tenant: z.string().min(1).nullable().optional(),
    turn: z.number().int().min(0).nullable().optional(),
    think_time_ms: z.number().min(0).nullable().optional(),
  })
  .refine((r) => typeof r.prompt === "string" || r.messages !== undefined, { message: "a request needs 'prompt' (a string) or 'messages'", path: ["prompt"] });

export const workloadEntrySchema = z.looseObject({
  timestamp: z.number().min(0, "must be ≥ 0 (milliseconds from the start)"),
  requests: z.array(z.unknown()),
});

export interface WorkloadRequestJson {
  prompt?: string;
  messages?: ChatMessage[];
  prompt_length?: number | null;
  output_length?: number | null;
  session_id?: string | number | null;
  tenant?: string;
  turn?: number;
  think_time_ms?: number;
}

export interface WorkloadEntryJson {
  timestamp: number;
  requests: WorkloadRequestJson[];
}

export interface WorkloadHeader {
  schema: typeof WORKLOAD_SCHEMA;
  tenants?: TenantSpec[];
  meta?: Record<string, unknown>;
}

/** One request, normalized, in the order it appears in the file. */
export interface WorkloadRequest {
  index: number;
  /** Workload time (ms). */
  timestampMs: number;
  /** Where it came from (file line) for messages. */
  line: number;
  prompt?: string;
  messages?: ChatMessage[];
  promptLength?: number;
  outputLength?: number;
  /** Session id as text (scoped by tenant when the client groups turns). */
  sessionId?: string;
  turn?: number;
  thinkTimeMs?: number;
  tenant?: string;
}

export interface Workload {
  file: string;
  header: WorkloadHeader | undefined;
  requests: WorkloadRequest[];
}

function isHeader(value: unknown): boolean {
  return typeof value === "object" && value !== null && !("timestamp" in value) && ("schema" in value || "tenants" in value);
}

/** Loads a workload file: Switchyard JSONL (with or without header), AIBrix JSONL or AIBrix JSON array. */
export async function loadWorkload(file: string): Promise<Workload> {
  const isArray = firstChar(file) === "[";
  const source = isArray ? readJsonArray(file) : readJsonl(file);
  let header: WorkloadHeader | undefined;
  const requests: WorkloadRequest[] = [];
  let first = true;
  let lastTs = -Infinity;
  let sorted = true;
  for await (const item of source) {
    const { value, line } = item;
    const where = "index" in item ? `[${(item as { index: number }).index}]` : "";
    if (first && !isArray && isHeader(value)) {
      header = parseRecord(headerSchema, value, file, line) as WorkloadHeader;
      first = false;
      continue;
    }
    first = false;
    if (typeof value !== "object" || value === null || Array.isArray(value)) throw new BenchInputError(file, line, where || undefined, "expected a workload entry {timestamp, requests}");
    if (isHeader(value)) throw new BenchInputError(file, line, "schema", "the workload header must be the first line");
    const entry = parseRecord(workloadEntrySchema, value, file, line, where);
    if (entry.timestamp < lastTs) sorted = false;
    lastTs = entry.timestamp;
    entry.requests.forEach((raw, i) => {
      const r = parseRecord(workloadRequestSchema, raw, file, line, `${where ? `${where}.` : ""}requests[${i}]`);
      requests.push({
        index: requests.length,
        timestampMs: entry.timestamp,
        line,
        ...(typeof r.prompt === "string" ? { prompt: r.prompt } : {}),
        ...(r.messages ? { messages: r.messages } : {}),
        ...(r.prompt_length != null ? { promptLength: r.prompt_length } : {}),
        ...(r.output_length != null ? { outputLength: r.output_length } : {}),
        ...(r.session_id != null ? { sessionId: String(r.session_id) } : {}),
        ...(r.turn != null ? { turn: r.turn } : {}),
        ...(r.think_time_ms != null ? { thinkTimeMs: r.think_time_ms } : {}),
        ...(r.tenant ? { tenant: r.tenant } : {}),
      });
    });
  }
  if (requests.length === 0) throw new BenchInputError(file, undefined, undefined, "the workload has no requests");
  if (!sorted) {
    requests.sort((a, b) => a.timestampMs - b.timestampMs || a.index - b.index);
    requests.forEach((r, i) => (r.index = i));
  }
  if (header?.tenants) {
    const known = new Set(header.tenants.map((t) => t.id));
    const stray = requests.find((r) => r.tenant !== undefined && !known.has(r.tenant));
    if (stray) throw new BenchInputError(file, stray.line, "tenant", `'${stray.tenant}' is not in the tenant table of the first line`);
  }
  return { file, header, requests };
}

/** Groups requests into AIBrix entries (one per distinct timestamp). */
export function toEntries(requests: Iterable<{ timestampMs: number; request: WorkloadRequestJson }>): WorkloadEntryJson[] {
  const byTs = new Map<number, WorkloadRequestJson[]>();
  for (const { timestampMs, request } of requests) {
    let list = byTs.get(timestampMs);
    if (!list) byTs.set(timestampMs, (list = []));
    list.push(request);
  }
  return [...byTs.entries()].sort((a, b) => a[0] - b[0]).map(([timestamp, reqs]) => ({ timestamp, requests: reqs }));
}
