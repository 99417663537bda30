/**
 * Per-tenant limits and the headers that describe them. Requests per minute and tokens per minute
 * are sliding 60-second windows of per-second buckets; the token budget is a calendar period (UTC).
 * A request is admitted while the tenant is under every limit, and its reservation (prompt
 * estimate + completion allowance) is counted at once: concurrent requests can overshoot a limit
 * by at most one request's reservation, never more.
 */

export interface TenantLimits {
  rpm: number | null;
  tpm: number | null;
  tokenBudget: number | null;
  budgetPeriod: "day" | "month";
}

export const NO_LIMITS: TenantLimits = { rpm: null, tpm: null, tokenBudget: null, budgetPeriod: "month" };

export function hasLimits(l: TenantLimits): boolean {
  return l.rpm !== null || l.tpm !== null || l.tokenBudget !== null;
}

export const WINDOW_MS = 60_000;

/** Start of the budget period containing `now` (UTC). */
export function periodStart(period: "day" | "month", now: number): number {
  const d = new Date(now);
  return period === "day" ? Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()) : Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
}

export function periodEnd(period: "day" | "month", now: number): number {
  const d = new Date(periodStart(period, now));
  return period === "day" ? d.getTime() + 86_400_000 : Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
}

export type LimitKind = "requests" | "tokens" | "budget";

export interface LimitState {
  requestsInWindow: number;
  tokensInWindow: number;
  budgetUsed: number;
  /** Epoch ms when the oldest counted request / token leaves the window. */
  requestsResetAt: number;
  tokensResetAt: number;
  budgetResetAt: number;
}

/** OpenAI's `x-ratelimit-*` headers (and a budget pair of our own). */
export function rateLimitHeaders(limits: TenantLimits, s: LimitState, now: number): Record<string, string> {
  const out: Record<string, string> = {};
  const reset = (at: number) => `${Math.max(0, Math.ceil((at - now) / 1000))}s`;
  if (limits.rpm !== null) {
    out["x-ratelimit-limit-requests"] = String(limits.rpm);
    out["x-ratelimit-remaining-requests"] = String(Math.max(0, limits.rpm - s.requestsInWindow));
    out["x-ratelimit-reset-requests"] = reset(s.requestsResetAt);
  }
  if (limits.tpm !== null) {
    out["x-ratelimit-limit-tokens"] = String(limits.tpm);
    out["x-ratelimit-remaining-tokens"] = String(Math.max(0, limits.tpm - s.tokensInWindow));
    out["x-ratelimit-reset-tokens"] = reset(s.tokensResetAt);
  }
  if (limits.tokenBudget !== null) {
    out["x-ratelimit-limit-budget-tokens"] = String(limits.tokenBudget);
    out["x-ratelimit-remaining-budget-tokens"] = String(Math.max(0, limits.tokenBudget - s.budgetUsed));
    out["x-ratelimit-reset-budget"] = reset(s.budgetResetAt);
  }
  return out;
}

/** The first limit the tenant is at or over, or undefined. */
export function exceeded(limits: TenantLimits, s: LimitState): LimitKind | undefined {
  if (limits.rpm !== null && s.requestsInWindow >= limits.rpm) return "requests";
  if (limits.tpm !== null && s.tokensInWindow >= limits.tpm) return "tokens";
  if (limits.tokenBudget !== null && s.budgetUsed >= limits.tokenBudget) return "budget";
  return undefined;
}
