/**
 * The request path's side of the tenant ledger: open a reservation when a request arrives, release
 * it when the request never reaches a node, record real usage when it ends.
 *
 * A tenant with limits waits for its reservation (that is the admission check). A tenant without
 * limits still opens one, in parallel with routing so it costs no latency: if this isolate dies
 * mid-stream, the ledger's expiry of the reservation records the request as lost usage instead of
 * forgetting it.
 */
import { ApiError } from "../../protocol/openai-error";
import type { Env } from "../env";
import { log } from "../lib/log";
import { hasLimits, type LimitKind, NO_LIMITS, type TenantLimits } from "./limits";
import type { ReserveResult, UsageRecord } from "./tenant-ledger";

/** Completion tokens reserved (and capped) when a limited request sets no max_tokens. */
export const DEFAULT_COMPLETION_RESERVATION = 1024;

/** Special tokens a chat template adds per message, and once per prompt, at most. */
const TEMPLATE_TOKENS_PER_MESSAGE = 8;
const TEMPLATE_TOKENS_PER_PROMPT = 8;

const encoder = new TextEncoder();

/**
 * An upper bound on the prompt's tokens: byte-level BPE tokenizers (Llama 3, GPT, Qwen, Mistral's
 * Tekken) never produce more tokens than UTF-8 bytes, plus the template's special tokens. Reserving
 * a bound rather than a guess is what keeps the overshoot within one reservation.
 */
export function promptTokenBound(renderedPrompt: string, messages: number): number {
  return encoder.encode(renderedPrompt).byteLength + TEMPLATE_TOKENS_PER_MESSAGE * messages + TEMPLATE_TOKENS_PER_PROMPT;
}

/** The completion cap applied to a request that sets none, when its tenant's tokens are limited. */
export function completionCap(limits: TenantLimits, defaultMaxTokens: number | null, requested: number | undefined): number | undefined {
  if (requested !== undefined) return undefined;
  if (limits.tpm === null && limits.tokenBudget === null && defaultMaxTokens === null) return undefined;
  return defaultMaxTokens ?? DEFAULT_COMPLETION_RESERVATION;
}

const LIMIT_MESSAGES: Record<LimitKind, (limits: TenantLimits) => string> = {
  requests: (l) => `Rate limit reached for requests per minute (limit ${l.rpm}). Retry after the time in the Retry-After header.`,
  tokens: (l) => `Rate limit reached for tokens per minute (limit ${l.tpm}). Retry after the time in the Retry-After header.`,
  budget: (l) => `Your tenant has used its token budget for this ${l.budgetPeriod} (${l.tokenBudget} tokens).`,
};

/** 429 in OpenAI's shape: type `requests`/`tokens` for per-minute limits, `insufficient_quota` for a spent budget. */
export function limitError(result: Extract<ReserveResult, { ok: false }>, limits: TenantLimits): ApiError {
  const quota = result.kind === "budget";
  return new ApiError(429, LIMIT_MESSAGES[result.kind](limits), {
    type: result.kind === "budget" ? "insufficient_quota" : result.kind,
    code: quota ? "insufficient_quota" : "rate_limit_exceeded",
    headers: { ...result.headers, "retry-after": String(result.retryAfterSeconds) },
  });
}

export interface Reservation {
  /** x-ratelimit-* headers for the response (empty for tenants without limits). */
  headers: Record<string, string>;
  /** Gives the reservation back: the request never reached a node. */
  release(): Promise<void>;
  /** Records the request's usage, exactly once; resolves when the ledger has it. */
  record(usage: Omit<UsageRecord, "requestId" | "model">): Promise<void>;
}

const RECORD_ATTEMPTS = 4;

async function withRetries<T>(what: string, requestId: string, fn: () => Promise<T>): Promise<T> {
  let delay = 25;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (attempt >= RECORD_ATTEMPTS) {
        log("error", `${what}_failed`, { requestId, attempts: attempt, error: err instanceof Error ? err.message : String(err) });
        throw err;
      }
      await new Promise((r) => setTimeout(r, delay));
      delay *= 4;
    }
  }
}

export async function openReservation(
  env: Env,
  input: { tenantId: string; requestId: string; model: string; limits: TenantLimits; promptTokens: number; completionTokens: number },
): Promise<Reservation> {
  const ledger = env.LEDGER.getByName(input.tenantId);
  const limited = hasLimits(input.limits);
  const reserved = ledger.reserve({
    tenantId: input.tenantId,
    requestId: input.requestId,
    model: input.model,
    promptTokens: input.promptTokens,
    completionTokens: input.completionTokens,
    limits: limited ? input.limits : NO_LIMITS,
  });
  let headers: Record<string, string> = {};
  if (limited) {
    let result: ReserveResult;
    try {
      result = await reserved;
    } catch (err) {
      log("error", "ledger_unavailable", { requestId: input.requestId, tenant: input.tenantId, error: err instanceof Error ? err.message : String(err) });
      throw new ApiError(503, "Rate limiting is briefly unavailable; retry shortly.", { code: "ledger_unavailable", headers: { "retry-after": "1" } });
    }
    if (!result.ok) throw limitError(result, input.limits);
    headers = result.headers;
  } else {
    // Not awaited now; a failure here only means the request has no crash net, never a refusal.
    reserved.catch((err: unknown) => log("warn", "reservation_failed", { requestId: input.requestId, error: err instanceof Error ? err.message : String(err) }));
  }
  const settled = () => reserved.then(() => undefined, () => undefined);
  return {
    headers,
    release: async () => {
      await settled();
      await withRetries("reservation_release", input.requestId, () => ledger.release(input.requestId)).catch(() => undefined);
    },
    record: async (usage) => {
      // The reservation must exist before the record settles it, or the two would count twice.
      await settled();
      await withRetries("usage_record", input.requestId, () => ledger.record(input.tenantId, { ...usage, requestId: input.requestId, model: input.model }));
    },
  };
}
