/**
 * The benchmark client: sends a workload to an OpenAI-compatible endpoint and records every request.
 *
 * - **Open loop.** Each request (and each session's first turn) is sent at its timestamp ÷
 *   `timeScale` after the start, whether or not earlier requests have answered. A request that finds
 *   `maxConcurrency` requests in flight waits for a slot; the wait shows as `sent_ms − scheduled_ms`
 *   in its record (the report's "send lag"), so a run that stopped being open-loop says so.
 * - **Sessions.** Turns of one session (same tenant and session_id) go in order: turn k is sent at
 *   the later of its timestamp and the previous answer's arrival + its think time (both ÷
 *   timeScale), with the whole history (earlier prompts and the answers actually received). A
 *   failed turn ends its session (the rest count as not sent). `maxSessions` caps sessions in
 *   progress.
 * - **Stopping.** Aborting `signal` (Ctrl-C) stops sending, cancels requests in flight — recorded
 *   as `cancelled` with what they had received — and resolves with everything recorded so far.
 *
 * @example
 * ```ts
 * const result = await runWorkload(workload, { baseUrl: "http://127.0.0.1:8787", model: "llama-3-8b", apiKey, onRecord: (r) => out.write(r) });
 * ```
 */
import { randomBytes } from "node:crypto";
import { setMaxListeners } from "node:events";
import { Agent, type Dispatcher } from "undici";
import type { ChatMessage } from "../datasets/format";
import { BenchUsageError } from "../lib/errors";
import type { Workload, WorkloadRequest } from "../workloads/format";
import type { ResultRecord } from "./records";
import { sendRequest } from "./request";

export interface RunOptions {
  /** Endpoint base: `http://host:port` (with or without a trailing `/v1`). */
  baseUrl: string;
  model: string;
  endpoint?: "chat" | "completions";
  stream?: boolean;
  /** Key for requests whose tenant has none of its own (and for requests without a tenant). */
  apiKey?: string;
  /** API key per tenant id. */
  tenantKeys?: Record<string, string>;
  /** `routing-strategy` header on every request. */
  routingStrategy?: string;
  headers?: Record<string, string>;
  /** Send this many times faster than the workload's timestamps (think times too). */
  timeScale?: number;
  maxConcurrency?: number;
  maxSessions?: number;
  timeoutMs?: number;
  /** max_tokens for requests whose output_length is unknown (omitted when undefined). */
  defaultMaxTokens?: number;
  /** Send `ignore_eos: true` (vLLM and the emulator then answer exactly max_tokens tokens). */
  ignoreEos?: boolean;
  temperature?: number;
  /** Prepended to each conversation's first message: keeps runs from hitting each other's prefix caches. */
  salt?: string;
  /** Send `x-session-key: <tenant>/<session>` on session turns (default true). */
  sessionHeader?: boolean;
  /** Keep prompt/messages/output text in the records. */
  recordText?: boolean;
  /** Send at most this many requests (the first ones in time). */
  limit?: number;
  signal?: AbortSignal;
  runId?: string;
  /** Called as each request finishes (write it out). */
  onRecord?: (record: ResultRecord) => void;
  onProgress?: (p: Progress) => void;
  /** Keep records in the result (default true; a CLI run writes them out instead). */
  keepRecords?: boolean;
  dispatcher?: Dispatcher;
}

export interface Progress {
  total: number;
  done: number;
  inflight: number;
  errors: number;
}

export interface RunResult {
  runId: string;
  /** performance.now() at the run's start: records' *_ms times are relative to it. */
  clockOrigin: number;
  records: ResultRecord[];
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  total: number;
  sent: number;
  ok: number;
  errors: number;
  cancelled: number;
  notSent: number;
  interrupted: boolean;
}

class Stopped extends Error {}

/** FIFO counting semaphore whose waits end with Stopped when the run stops. */
class Semaphore {
  private active = 0;
  private readonly waiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  constructor(private readonly limit: number) {}

  acquire(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.reject(new Stopped());
    if (this.active < this.limit) {
      this.active++;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const w = {
        resolve: () => {
          signal.removeEventListener("abort", onAbort);
          resolve();
        },
        reject,
      };
      const onAbort = () => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new Stopped());
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.waiters.push(w);
    });
  }

  release(): void {
    const next = this.waiters.shift();
    if (next) next.resolve();
    else this.active--;
  }
}

/** Resolves at performance.now() ≥ atMs (or rejects with Stopped on abort). */
function sleepUntil(atMs: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(new Stopped());
  const wait = atMs - performance.now();
  if (wait <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(new Stopped());
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      // setTimeout may fire up to ~1 ms early; spin the remainder out on the next ticks.
      const spin = () => (performance.now() >= atMs ? resolve() : setImmediate(spin));
      spin();
    }, Math.max(0, wait - 1));
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

function endpointUrl(baseUrl: string, endpoint: "chat" | "completions"): string {
  const base = baseUrl.replace(/\/+$/, "").replace(/\/v1$/, "");
  return `${base}/v1/${endpoint === "chat" ? "chat/completions" : "completions"}`;
}

function salted(messages: ChatMessage[], salt: string | undefined): ChatMessage[] {
  if (!salt || messages.length === 0) return messages;
  const [first, ...rest] = messages as [ChatMessage, ...ChatMessage[]];
  if (typeof first.content !== "string") return messages;
  return [{ ...first, content: `${salt}\n${first.content}` }, ...rest];
}

interface Unit {
  dueMs: number;
  kind: "single" | "session";
  turns: WorkloadRequest[];
}

/** Resolves each tenant's key; throws BenchUsageError naming tenants that have none. */
export function resolveKeys(requests: readonly WorkloadRequest[], apiKey: string | undefined, tenantKeys: Record<string, string> = {}): (tenant: string | undefined) => string | undefined {
  const anyKey = apiKey !== undefined || Object.keys(tenantKeys).length > 0;
  if (anyKey) {
    const missing = new Set<string>();
    for (const r of requests) if (r.tenant !== undefined && tenantKeys[r.tenant] === undefined && apiKey === undefined) missing.add(r.tenant);
    if (missing.size > 0) {
      throw new BenchUsageError(`no API key for tenant(s) ${[...missing].sort().join(", ")}: give --tenant-key <tenant>=<key>, api_key_env in the workload's tenant table, or --api-key for all`);
    }
  }
  return (tenant) => (tenant !== undefined ? (tenantKeys[tenant] ?? apiKey) : apiKey);
}

export async function runWorkload(workload: Workload, opts: RunOptions): Promise<RunResult> {
  const endpoint = opts.endpoint ?? "chat";
  const stream = opts.stream ?? true;
  const timeScale = opts.timeScale ?? 1;
  if (!(timeScale > 0)) throw new BenchUsageError("--time-scale must be > 0");
  const maxConcurrency = opts.maxConcurrency ?? 256;
  const runId = opts.runId ?? randomBytes(4).toString("hex");
  const url = endpointUrl(opts.baseUrl, endpoint);
  const requests = opts.limit !== undefined ? workload.requests.slice(0, opts.limit) : workload.requests;
  if (endpoint === "completions") {
    const bad = requests.find((r) => r.messages !== undefined || r.sessionId !== undefined);
    if (bad) throw new BenchUsageError(`${workload.file}:${bad.line}: ${bad.messages ? "'messages'" : "sessions"} need the chat endpoint (--endpoint chat)`);
  }
  const keyFor = resolveKeys(requests, opts.apiKey, opts.tenantKeys);
  const recordText = opts.recordText ?? false;
  const keep = opts.keepRecords ?? true;
  const sessionHeader = opts.sessionHeader ?? true;
  const timeoutMs = opts.timeoutMs ?? 600_000;

  // Units of scheduling: single requests, and sessions (their turns in order).
  const sessions = new Map<string, WorkloadRequest[]>();
  const units: Unit[] = [];
  for (const r of requests) {
    if (r.sessionId === undefined) {
      units.push({ dueMs: r.timestampMs / timeScale, kind: "single", turns: [r] });
      continue;
    }
    const key = `${r.tenant ?? ""}\u0000${r.sessionId}`;
    let turns = sessions.get(key);
    if (!turns) {
      sessions.set(key, (turns = []));
      units.push({ dueMs: r.timestampMs / timeScale, kind: "session", turns });
    }
    turns.push(r);
  }
  for (const turns of sessions.values()) turns.sort((a, b) => (a.turn !== undefined && b.turn !== undefined ? a.turn - b.turn : a.index - b.index));
  units.sort((a, b) => a.dueMs - b.dueMs);

  const ownDispatcher = opts.dispatcher === undefined;
  const dispatcher = opts.dispatcher ?? new Agent({ connections: maxConcurrency, pipelining: 1, keepAliveTimeout: 30_000, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  const stop = new AbortController();
  // Every session in its think time and every request waiting for a slot listens for the stop: as
  // many listeners as sessions in progress, not a leak (Node warns past 10).
  setMaxListeners(0, stop.signal);
  const onOuterAbort = () => stop.abort();
  opts.signal?.addEventListener("abort", onOuterAbort, { once: true });
  if (opts.signal?.aborted) stop.abort();
  const slots = new Semaphore(maxConcurrency);
  const sessionSlots = new Semaphore(opts.maxSessions ?? Number.MAX_SAFE_INTEGER);

  const records: ResultRecord[] = [];
  const progress: Progress = { total: requests.length, done: 0, inflight: 0, errors: 0 };
  let sent = 0;
  let ok = 0;
  let errors = 0;
  let cancelled = 0;
  const startedAtIso = new Date().toISOString();
  const startedEpoch = Date.now();
  const t0 = performance.now();
  const report = () => opts.onProgress?.({ ...progress });

  /** Sends one request (after a concurrency slot) and records it; returns the answer text or undefined on failure. */
  const fire = async (req: WorkloadRequest, scheduledMs: number, messages: ChatMessage[] | undefined, thinkMs: number | null): Promise<{ ok: boolean; text: string; endMs: number }> => {
    await slots.acquire(stop.signal);
    progress.inflight++;
    report();
    const key = keyFor(req.tenant);
    const headers: Record<string, string> = {
      "content-type": "application/json",
      accept: stream ? "text/event-stream" : "application/json",
      "x-request-id": `${runId}-${req.index}`,
      ...(key !== undefined ? { authorization: `Bearer ${key}` } : {}),
      ...(opts.routingStrategy ? { "routing-strategy": opts.routingStrategy } : {}),
      ...(req.sessionId !== undefined && sessionHeader ? { "x-session-key": `${req.tenant ?? "-"}/${req.sessionId}` } : {}),
      ...(opts.headers ?? {}),
    };
    const maxTokens = req.outputLength ?? opts.defaultMaxTokens;
    const promptText = endpoint === "completions" ? `${opts.salt ? `${opts.salt}\n` : ""}${req.prompt ?? ""}` : undefined;
    const body: Record<string, unknown> = {
      model: opts.model,
      ...(endpoint === "chat" ? { messages } : { prompt: promptText }),
      ...(maxTokens !== undefined ? { max_tokens: maxTokens } : {}),
      stream,
      ...(stream ? { stream_options: { include_usage: true } } : {}),
      temperature: opts.temperature ?? 0,
      ...(opts.ignoreEos ? { ignore_eos: true } : {}),
    };
    sent++;
    const res = await sendRequest({ url, headers, body: JSON.stringify(body), stream, endpoint, dispatcher, cancel: stop.signal, timeoutMs, collectText: recordText || req.sessionId !== undefined });
    slots.release();
    progress.inflight--;
    progress.done++;
    if (res.status === "ok") ok++;
    else if (res.status === "cancelled") cancelled++;
    else {
      errors++;
      progress.errors++;
    }
    const r3 = (v: number) => Math.round(v * 1000) / 1000;
    const completion = res.completionTokens;
    const record: ResultRecord = {
      request_id: res.headers.requestId ?? `${runId}-${req.index}`,
      index: req.index,
      status: res.status,
      tenant: req.tenant ?? null,
      session_id: req.sessionId ?? null,
      turn: req.sessionId !== undefined ? (req.turn ?? null) : null,
      think_time_ms: thinkMs,
      timestamp_ms: req.timestampMs,
      scheduled_ms: r3(scheduledMs),
      sent_ms: r3(res.sentAt - t0),
      sent_at: new Date(startedEpoch + (res.sentAt - t0)).toISOString(),
      ttft_ms: res.firstTokenAt !== null ? r3(res.firstTokenAt - res.sentAt) : null,
      tpot_ms: res.firstTokenAt !== null && completion !== null && completion > 1 && res.status === "ok" ? r3((res.endAt - res.firstTokenAt) / (completion - 1)) : null,
      itl_ms: res.itl.map((x) => Math.round(x * 100) / 100),
      e2e_ms: r3(res.endAt - res.sentAt),
      prompt_tokens: res.promptTokens,
      completion_tokens: completion,
      cached_tokens: res.cachedTokens,
      expected_prompt_tokens: req.promptLength ?? null,
      expected_output_tokens: maxTokens ?? null,
      http_status: res.httpStatus,
      error_type: res.errorType,
      error_code: res.errorCode,
      error_message: res.errorMessage,
      node: res.headers.node,
      region: res.headers.region,
      routing_strategy: res.headers.strategy,
      prefix_blocks: res.headers.prefixBlocks,
      finish_reason: res.finishReason,
      stream,
      ...(recordText ? { prompt: req.prompt ?? lastUser(messages ?? []) ?? "", ...(messages ? { messages } : {}), output: res.text } : {}),
    };
    if (keep) records.push(record);
    opts.onRecord?.(record);
    report();
    return { ok: res.status === "ok", text: res.text, endMs: res.endAt - t0 };
  };

  const messagesOf = (req: WorkloadRequest): ChatMessage[] | undefined =>
    endpoint !== "chat" ? undefined : salted(req.messages ?? [{ role: "user", content: req.prompt ?? "" }], opts.salt);

  const runSingle = async (u: Unit) => {
    const req = u.turns[0] as WorkloadRequest;
    await fire(req, u.dueMs, messagesOf(req), null);
  };

  const runSession = async (u: Unit) => {
    await sessionSlots.acquire(stop.signal);
    const history: ChatMessage[] = [];
    try {
      let due = u.dueMs;
      let prevEnd = -Infinity;
      for (let k = 0; k < u.turns.length; k++) {
        const req = u.turns[k] as WorkloadRequest;
        const think = k === 0 ? 0 : (req.thinkTimeMs ?? 0);
        due = k === 0 ? u.dueMs : Math.max(req.timestampMs / timeScale, prevEnd + think / timeScale);
        await sleepUntil(t0 + due, stop.signal);
        const user: ChatMessage = { role: "user", content: k === 0 && opts.salt ? `${opts.salt}\n${req.prompt ?? ""}` : (req.prompt ?? "") };
        const messages = req.messages ? salted(req.messages, k === 0 ? opts.salt : undefined) : [...history, user];
        const res = await fire(req, due, messages, k === 0 ? null : think);
        if (!res.ok) break; // the rest of the session is not sent
        history.push(...(req.messages ? [] : [user]), { role: "assistant", content: res.text });
        prevEnd = res.endMs;
      }
    } finally {
      sessionSlots.release();
    }
  };

  const tasks: Array<Promise<void>> = [];
  const swallowStop = (p: Promise<void>) =>
    p.catch((err: unknown) => {
      if (!(err instanceof Stopped)) throw err;
    });
  try {
    for (const u of units) {
      try {
        await sleepUntil(t0 + u.dueMs, stop.signal);
      } catch (err) {
        if (err instanceof Stopped) break;
        throw err;
      }
      tasks.push(swallowStop(u.kind === "single" ? runSingle(u) : runSession(u)));
    }
    await Promise.all(tasks);
  } finally {
    opts.signal?.removeEventListener("abort", onOuterAbort);
    if (ownDispatcher) await (dispatcher as Agent).close().catch(() => {});
  }
  const finished = performance.now();
  const notSent = requests.length - sent;
  return {
    runId,
    clockOrigin: t0,
    records,
    startedAt: startedAtIso,
    finishedAt: new Date(startedEpoch + (finished - t0)).toISOString(),
    durationMs: finished - t0,
    total: requests.length,
    sent,
    ok,
    errors,
    cancelled,
    notSent,
    interrupted: stop.signal.aborted,
  };
}

function lastUser(messages: readonly ChatMessage[]): string | undefined {
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i] as ChatMessage;
    if (m.role === "user" && typeof m.content === "string") return m.content;
  }
  return undefined;
}
