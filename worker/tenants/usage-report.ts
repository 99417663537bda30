/**
 * A tenant's usage over a period, in the shape of OpenAI's usage API (buckets of results by
 * model), read through the tenant's ledger so that recorded-but-unflushed requests are included
 * and none is counted twice. Served to operators (/admin/tenants/:id/usage) and to the tenant
 * itself (/v1/usage, its own key only).
 */
import { ApiError } from "../../protocol/openai-error";
import type { Env } from "../env";
import { addTotals, type UsageCounts, type UsageTotals } from "./usage-totals";

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
/** Longest period one report covers; longer ones are paged by the caller. */
const MAX_SPAN_MS = 93 * DAY_MS;

export type BucketWidth = "1h" | "1d";

export interface UsageQuery {
  start_time?: string;
  end_time?: string;
  bucket_width?: string;
  model?: string;
}

function unixSeconds(value: string | undefined, param: string, fallback: number): number {
  if (value === undefined || value === "") return fallback;
  if (!/^\d{1,12}$/.test(value)) throw new ApiError(400, `'${param}' must be a Unix time in seconds.`, { param, code: "invalid_value" });
  return Number(value) * 1000;
}

function resultJson(model: string | null, c: UsageCounts) {
  return {
    object: "usage.result",
    model,
    num_model_requests: c.requests,
    input_tokens: c.promptTokens,
    output_tokens: c.completionTokens,
    input_cached_tokens: c.cachedTokens,
    estimated_requests: c.estimatedRequests,
    failed_requests: c.failedRequests,
  };
}

function zero(): UsageCounts {
  return { requests: 0, promptTokens: 0, completionTokens: 0, cachedTokens: 0, estimatedRequests: 0, failedRequests: 0 };
}

/** Usage from the hour containing start_time up to end_time (default: this month so far). */
export async function usageReport(env: Env, tenantId: string, q: UsageQuery, now = Date.now()) {
  const width: BucketWidth = q.bucket_width === undefined || q.bucket_width === "" ? "1d" : (q.bucket_width as BucketWidth);
  if (width !== "1h" && width !== "1d") throw new ApiError(400, "'bucket_width' must be '1h' or '1d'.", { param: "bucket_width", code: "invalid_value" });
  const monthStart = Date.UTC(new Date(now).getUTCFullYear(), new Date(now).getUTCMonth(), 1);
  const step = width === "1h" ? HOUR_MS : DAY_MS;
  const start = unixSeconds(q.start_time, "start_time", monthStart);
  const from = Math.floor(start / step) * step;
  const to = unixSeconds(q.end_time, "end_time", now + 1);
  if (to <= start) throw new ApiError(400, "'end_time' must be after 'start_time'.", { param: "end_time", code: "invalid_value" });
  if (to - from > MAX_SPAN_MS) throw new ApiError(400, "A usage report covers at most 93 days; page with start_time/end_time.", { param: "end_time", code: "invalid_value" });
  const model = q.model === undefined || q.model === "" ? undefined : q.model;
  const rows: UsageTotals[] = await env.LEDGER.getByName(tenantId).usage(from, Math.ceil(to / HOUR_MS) * HOUR_MS, model);

  const buckets = new Map<number, Map<string, UsageCounts>>();
  const total = zero();
  for (const r of rows) {
    const start = Math.floor(r.hour / step) * step;
    const byModel = buckets.get(start) ?? new Map<string, UsageCounts>();
    buckets.set(start, byModel);
    byModel.set(r.model, addTotals(byModel.get(r.model) ?? zero(), r));
    addTotals(total, r);
  }
  return {
    object: "page",
    tenant_id: tenantId,
    start_time: Math.floor(from / 1000),
    end_time: Math.floor(to / 1000),
    bucket_width: width,
    data: [...buckets.entries()]
      .sort(([a], [b]) => a - b)
      .map(([start, byModel]) => ({
        object: "bucket",
        start_time: start / 1000,
        end_time: (start + step) / 1000,
        results: [...byModel.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([m, c]) => resultJson(m, c)),
      })),
    totals: resultJson(model ?? null, total),
  };
}
