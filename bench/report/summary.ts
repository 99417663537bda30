/**
 * Run summaries: latency statistics (mean, p50, p90, p99 of TTFT, TPOT, ITL, E2E), throughput,
 * error rate, cache hit rate (cached / prompt tokens), per tenant and per node, the send lag (how far
 * the open loop fell behind its schedule), a TTFT CDF and per-tenant service over time.
 *
 * Times are the client's wall clock unless the run says its engines ran `model_time_scale` times
 * faster than real time (the emulator's timeScale): then latencies are multiplied and rates divided
 * by it, so figures read in model time ("what an H100 would have taken"). Everything measured by
 * the client scales, including loopback and edge overhead; see docs/benchmarks.md.
 */
import type { LoadedRun, ResultRecord } from "../client/records";
import { cdfPoints, type Stats, summarizeValues } from "../lib/stats";

export const SUMMARY_SCHEMA = "switchyard.bench.summary.v1";

export interface TenantSummary {
  tenant: string;
  requests: number;
  ok: number;
  errors: number;
  cancelled: number;
  error_rate: number | null;
  ttft_ms: Stats;
  tpot_ms: Stats;
  e2e_ms: Stats;
  output_tokens_per_s: number | null;
  prompt_tokens_per_s: number | null;
  /** This tenant's share of all output tokens served. */
  output_share: number | null;
  cache_hit_rate: number | null;
}

export interface RunSummary {
  /** Unique name of the run in a report: `system @ qps`, or the run file's name. */
  label: string;
  run_id: string;
  system: string;
  workload: string | null;
  /** Nominal QPS from the run (workload rate), else the measured send rate. */
  qps: number | null;
  measured_qps: number | null;
  file: string;
  started_at: string | null;
  interrupted: boolean;
  /** `model`: latencies × model_time_scale, rates ÷ it. */
  time_basis: "wall" | "model";
  model_time_scale: number;
  time_scale: number;
  counts: { total: number; ok: number; error: number; cancelled: number; not_sent: number };
  error_rate: number | null;
  errors_by_type: Record<string, number>;
  duration_s: number | null;
  throughput: { requests_per_s: number | null; output_tokens_per_s: number | null; prompt_tokens_per_s: number | null };
  ttft_ms: Stats;
  tpot_ms: Stats;
  itl_ms: Stats;
  e2e_ms: Stats;
  send_lag_ms: Stats;
  tokens: { prompt: number; completion: number; cached: number };
  cache_hit_rate: number | null;
  tenants: TenantSummary[];
  nodes: Array<{ node: string; requests: number; share: number }>;
  ttft_cdf: Array<{ value: number; p: number }>;
  timeline: { window_s: number; points: Array<{ tenant: string; t_s: number; output_tokens_per_s: number }> };
  tags: Record<string, string>;
}

export interface SummaryFile {
  schema: typeof SUMMARY_SCHEMA;
  generated_at: string;
  runs: RunSummary[];
}

function ratio(a: number, b: number): number | null {
  return b > 0 ? a / b : null;
}

/** A round window size (1, 2, 5 × 10^k seconds) giving about `target` windows. */
export function niceWindow(durationS: number, target = 50): number {
  const raw = Math.max(durationS / target, 1e-3);
  const exp = Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) {
    const w = m * 10 ** exp;
    if (w >= raw) return Number(w.toPrecision(6));
  }
  return 10 ** (exp + 1);
}

function sum(values: Iterable<number | null | undefined>): number {
  let s = 0;
  for (const v of values) if (typeof v === "number" && Number.isFinite(v)) s += v;
  return s;
}

interface Window {
  startMs: number;
  endMs: number;
}

function span(records: readonly ResultRecord[]): Window | null {
  let start = Infinity;
  let end = -Infinity;
  for (const r of records) {
    start = Math.min(start, r.sent_ms);
    end = Math.max(end, r.sent_ms + (r.e2e_ms ?? 0));
  }
  return Number.isFinite(start) && end > start ? { startMs: start, endMs: end } : null;
}

function latencyStats(records: readonly ResultRecord[], k: number) {
  const ok = records.filter((r) => r.status === "ok");
  return {
    ttft: summarizeValues(ok.flatMap((r) => (r.ttft_ms !== null ? [r.ttft_ms] : [])), k),
    tpot: summarizeValues(ok.flatMap((r) => (r.tpot_ms !== null ? [r.tpot_ms] : [])), k),
    e2e: summarizeValues(ok.flatMap((r) => (r.e2e_ms !== null ? [r.e2e_ms] : [])), k),
  };
}

function hitRate(records: readonly ResultRecord[]): number | null {
  const withUsage = records.filter((r) => r.status === "ok" && r.prompt_tokens !== null && r.cached_tokens !== null);
  if (withUsage.length === 0) return null;
  return ratio(sum(withUsage.map((r) => r.cached_tokens)), sum(withUsage.map((r) => r.prompt_tokens)));
}

/** Per-tenant output tokens/s over time: each request's tokens spread evenly from its first token to its end. */
function timeline(records: readonly ResultRecord[], k: number, whole: Window | null): RunSummary["timeline"] {
  if (!whole) return { window_s: 0, points: [] };
  const durationS = ((whole.endMs - whole.startMs) * k) / 1000;
  const windowS = niceWindow(durationS);
  const windowWallMs = (windowS * 1000) / k;
  const n = Math.max(1, Math.ceil((whole.endMs - whole.startMs) / windowWallMs));
  const byTenant = new Map<string, Float64Array>();
  for (const r of records) {
    const tokens = r.completion_tokens ?? 0;
    if (tokens <= 0 || r.e2e_ms === null) continue;
    const tenant = r.tenant ?? "(none)";
    let bins = byTenant.get(tenant);
    if (!bins) byTenant.set(tenant, (bins = new Float64Array(n)));
    const from = r.sent_ms + (r.ttft_ms ?? 0) - whole.startMs;
    const to = r.sent_ms + r.e2e_ms - whole.startMs;
    if (to <= from) {
      const i = Math.min(n - 1, Math.floor(to / windowWallMs));
      bins[i] = (bins[i] as number) + tokens;
      continue;
    }
    const perMs = tokens / (to - from);
    for (let i = Math.floor(from / windowWallMs); i <= Math.min(n - 1, Math.floor(to / windowWallMs)); i++) {
      const a = Math.max(from, i * windowWallMs);
      const b = Math.min(to, (i + 1) * windowWallMs);
      if (b > a) bins[i] = (bins[i] as number) + perMs * (b - a);
    }
  }
  const points: RunSummary["timeline"]["points"] = [];
  for (const [tenant, bins] of [...byTenant.entries()].sort((a, b) => a[0].localeCompare(b[0]))) {
    bins.forEach((tokens, i) => points.push({ tenant, t_s: Number((i * windowS).toPrecision(8)), output_tokens_per_s: tokens / windowS }));
  }
  return { window_s: windowS, points };
}

export interface SummarizeOptions {
  /** Override the run's model_time_scale (1: report wall-clock figures). */
  modelTimeScale?: number;
  label?: string;
}

export function summarizeRun(run: LoadedRun, opts: SummarizeOptions = {}): RunSummary {
  const { meta, records } = run;
  const k = opts.modelTimeScale ?? meta.model_time_scale ?? 1;
  const ok = records.filter((r) => r.status === "ok");
  const errs = records.filter((r) => r.status === "error");
  const cancelled = records.filter((r) => r.status === "cancelled");
  const whole = span(records);
  const durationWallS = whole ? (whole.endMs - whole.startMs) / 1000 : null;
  const durationS = durationWallS !== null ? durationWallS * k : null;
  const perS = (v: number) => (durationS ? v / durationS : null);
  const lat = latencyStats(records, k);
  const errorsByType: Record<string, number> = {};
  for (const r of errs) {
    const key = r.error_type === "http" && r.http_status ? `http ${r.http_status}` : (r.error_type ?? "error");
    errorsByType[key] = (errorsByType[key] ?? 0) + 1;
  }
  const sendSpan = records.length > 1 ? (Math.max(...records.map((r) => r.sent_ms)) - Math.min(...records.map((r) => r.sent_ms))) / 1000 : 0;
  const measuredQps = sendSpan > 0 ? (records.length - 1) / (sendSpan * k) : null;
  const totalOutput = sum(records.map((r) => r.completion_tokens));
  const tenantIds = [...new Set(records.map((r) => r.tenant ?? "(none)"))].sort();
  const tenants: TenantSummary[] = tenantIds.map((tenant) => {
    const rs = records.filter((r) => (r.tenant ?? "(none)") === tenant);
    const tl = latencyStats(rs, k);
    const tOk = rs.filter((r) => r.status === "ok").length;
    const tErr = rs.filter((r) => r.status === "error").length;
    const out = sum(rs.map((r) => r.completion_tokens));
    return {
      tenant,
      requests: rs.length,
      ok: tOk,
      errors: tErr,
      cancelled: rs.filter((r) => r.status === "cancelled").length,
      error_rate: ratio(tErr, tOk + tErr),
      ttft_ms: tl.ttft,
      tpot_ms: tl.tpot,
      e2e_ms: tl.e2e,
      output_tokens_per_s: perS(out),
      prompt_tokens_per_s: perS(sum(rs.filter((r) => r.status === "ok").map((r) => r.prompt_tokens))),
      output_share: ratio(out, totalOutput),
      cache_hit_rate: hitRate(rs),
    };
  });
  const nodeCounts = new Map<string, number>();
  for (const r of records) if (r.node) nodeCounts.set(r.node, (nodeCounts.get(r.node) ?? 0) + 1);
  const withNode = sum(nodeCounts.values());
  const label = opts.label ?? (meta.qps !== null ? `${meta.system} @ ${formatQps(meta.qps)}` : meta.system);
  return {
    label,
    run_id: meta.run_id,
    system: meta.system,
    workload: meta.workload,
    qps: meta.qps ?? (measuredQps !== null ? Number(measuredQps.toPrecision(4)) : null),
    measured_qps: measuredQps !== null ? Number(measuredQps.toPrecision(4)) : null,
    file: run.file,
    started_at: meta.started_at || null,
    interrupted: meta.interrupted ?? false,
    time_basis: k === 1 ? "wall" : "model",
    model_time_scale: k,
    time_scale: meta.time_scale ?? 1,
    counts: { total: records.length + (meta.not_sent ?? 0), ok: ok.length, error: errs.length, cancelled: cancelled.length, not_sent: meta.not_sent ?? 0 },
    error_rate: ratio(errs.length, ok.length + errs.length),
    errors_by_type: errorsByType,
    duration_s: durationS,
    throughput: {
      requests_per_s: perS(ok.length),
      output_tokens_per_s: perS(sum(ok.map((r) => r.completion_tokens))),
      prompt_tokens_per_s: perS(sum(ok.map((r) => r.prompt_tokens))),
    },
    ttft_ms: lat.ttft,
    tpot_ms: lat.tpot,
    itl_ms: summarizeValues(
      ok.flatMap((r) => r.itl_ms ?? []),
      k,
    ),
    e2e_ms: lat.e2e,
    send_lag_ms: summarizeValues(records.map((r) => r.sent_ms - r.scheduled_ms)),
    tokens: { prompt: sum(ok.map((r) => r.prompt_tokens)), completion: sum(ok.map((r) => r.completion_tokens)), cached: sum(ok.map((r) => r.cached_tokens)) },
    cache_hit_rate: hitRate(records),
    tenants,
    nodes: [...nodeCounts.entries()].sort((a, b) => a[0].localeCompare(b[0])).map(([node, requests]) => ({ node, requests, share: requests / withNode })),
    ttft_cdf: cdfPoints(
      ok.flatMap((r) => (r.ttft_ms !== null ? [r.ttft_ms * k] : [])),
      200,
    ),
    timeline: timeline(records, k, whole),
    tags: (meta.tags as Record<string, string> | undefined) ?? {},
  };
}

export function formatQps(q: number): string {
  return Number.isInteger(q) ? String(q) : String(Number(q.toPrecision(3)));
}

/** Labels must be unique within a report: repeated ones get #2, #3. */
export function uniqueLabels(summaries: RunSummary[]): RunSummary[] {
  const seen = new Map<string, number>();
  return summaries.map((s) => {
    const n = (seen.get(s.label) ?? 0) + 1;
    seen.set(s.label, n);
    return n === 1 ? s : { ...s, label: `${s.label} #${n}` };
  });
}

export function summaryFile(runs: RunSummary[]): SummaryFile {
  return { schema: SUMMARY_SCHEMA, generated_at: new Date().toISOString(), runs };
}
