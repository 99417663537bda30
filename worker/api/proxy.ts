/**
 * The generation path: validate → model and permission → routing decision in the pool object
 * (which counts the request against the node at once) → signed request to the node agent → the
 * agent's stream back to the client untouched, metered on the side → release in waitUntil.
 * An attempt that fails before any byte comes back is retried on another node.
 */
import type { Context } from "hono";
import { HeaderNames } from "../../protocol/headers";
import { ApiError } from "../../protocol/openai-error";
import { type ChatCompletionRequest, type CompletionRequest, type Endpoint, type GenerationRequest, requestedMaxTokens, validateGenerationRequest } from "../../protocol/openai-request";
import { estimateTokens, namespaceSeed, prefixBlockHashes, renderChat, renderCompletionPrompt } from "../../protocol/prefix-hash";
import { openDb } from "../db/client";
import { type AppEnv, numberVar } from "../env";
import { log } from "../lib/log";
import { cacheNamespace, getModel, type ModelConfig, tenantMayUse } from "../models/catalog";
import { callerLocation, listRegions, regionOrder } from "../regions/region-order";
import type { PromptInfo } from "../routing/strategy";
import { nodeFetch } from "../nodes/node-transport";
import { signForNode } from "../nodes/node-signer";
import { type ProgressSink, reportProgress } from "../pool/progress-reporter";
import type { ReleaseInput, RouteResult } from "../pool/types";
import { requireStrategySpec } from "../routing/spec";
import type { WeightedStrategy } from "../routing/strategy";
import { completionCap, DEFAULT_COMPLETION_RESERVATION, openReservation, promptTokenBound, type Reservation } from "../tenants/ledger-client";
import { parseJsonBody, readBodyLimited } from "./body";
import { type MeterResult, meterBody } from "./stream-meter";

const MAX_ATTEMPTS = 3;
const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
const DEFAULT_UPSTREAM_HEADERS_TIMEOUT_MS = 120_000;

export const ENDPOINT_PATHS: Record<Endpoint, string> = {
  chat: "/v1/chat/completions",
  completions: "/v1/completions",
};

/**
 * The body sent upstream, byte for byte as the client sent it unless something must change:
 * - streams always ask the engine for usage, so the edge meters without tokenizing (the meter
 *   drops the usage chunk again when the client did not ask for it);
 * - a client-set `cache_salt` is removed: the cache namespace is the edge's to decide (agents set
 *   the engine's salt from the signed namespace header), or a tenant could name another's salt;
 * - so is a client-set `priority` (vLLM's scheduling field): priority is the edge's fairness
 *   decision, signed to the agent in its own header, or any tenant could put itself ahead;
 * - a request without a completion cap gets one when its tenant's tokens are limited, so the
 *   reservation made for it bounds what it can use.
 */
function upstreamBody(req: GenerationRequest, raw: Uint8Array, maxTokensCap: number | undefined): { body: Uint8Array; stripUsageChunk: boolean } {
  const wantsUsageAdded = req.stream === true && req.stream_options?.include_usage !== true;
  const edgeOnly = Object.hasOwn(req, "cache_salt") || Object.hasOwn(req, "priority");
  if (!wantsUsageAdded && !edgeOnly && maxTokensCap === undefined) return { body: raw, stripUsageChunk: false };
  const { cache_salt: _salt, priority: _priority, ...rest } = req as GenerationRequest & { cache_salt?: unknown; priority?: unknown };
  const rewritten = {
    ...rest,
    ...(wantsUsageAdded ? { stream_options: { ...(req.stream_options ?? {}), include_usage: true } } : {}),
    ...(maxTokensCap !== undefined ? { max_tokens: maxTokensCap } : {}),
  };
  return { body: new TextEncoder().encode(JSON.stringify(rewritten)), stripUsageChunk: wantsUsageAdded };
}

/** Default completion length assumed for cost estimates when the request sets no max_tokens. */
const DEFAULT_MAX_TOKENS_ESTIMATE = 256;

/** The prompt as the edge sees it: its canonical text and how many messages it has. */
function promptText(endpoint: Endpoint, req: GenerationRequest): { text: string; messages: number } {
  return endpoint === "chat"
    ? { text: renderChat((req as ChatCompletionRequest).messages), messages: (req as ChatCompletionRequest).messages.length }
    : { text: renderCompletionPrompt((req as CompletionRequest).prompt), messages: 1 };
}

/** Prompt blocks in the request's cache namespace, hashed here so the pool object spends no CPU on it. */
function promptInfo(text: string, maxTokens: number | undefined, namespace: string): PromptInfo {
  return {
    blocks: prefixBlockHashes(text, namespaceSeed(namespace)),
    tokens: estimateTokens(text),
    maxTokens: maxTokens ?? DEFAULT_MAX_TOKENS_ESTIMATE,
  };
}

/** The client's affinity key: the session header (or AIBrix's), else the OpenAI `user` field. */
function sessionKeyOf(c: Context<AppEnv>, req: GenerationRequest): string | undefined {
  const key = c.req.header(HeaderNames.sessionKey) ?? c.req.header("x-aibrix-session-key") ?? req.user;
  return key && key.length <= 256 ? key : undefined;
}

/** The API error for a request the pool would not route. */
function refusal(decision: Extract<RouteResult, { ok: false }>, model: string, tried: number): ApiError {
  const retry = { "retry-after": String(decision.retryAfterSeconds) };
  switch (decision.reason) {
    case "queue_timeout":
      return new ApiError(429, `Every node serving '${model}' is busy and the request waited as long as it may; retry later.`, { code: "queue_timeout", headers: retry });
    case "cancelled":
      return new ApiError(499, "Client closed the request.", { code: "client_closed" });
    default:
      return new ApiError(503, tried > 0 ? `No healthy node could serve '${model}' (tried ${tried}).` : `No healthy node serves '${model}' right now.`, { code: "no_healthy_node", headers: retry });
  }
}

export async function proxyGeneration(c: Context<AppEnv>, endpoint: Endpoint): Promise<Response> {
  const env = c.env;
  const requestId = c.get("requestId");
  const tenant = c.get("tenant");
  const raw = await readBodyLimited(c.req.raw, numberVar(env.MAX_BODY_BYTES, DEFAULT_MAX_BODY_BYTES));
  const req = validateGenerationRequest(endpoint, parseJsonBody(raw));
  const db = openDb(env.DB);
  const model = await getModel(db, req.model);
  if (!model) throw new ApiError(404, `The model '${req.model}' does not exist.`, { param: "model", code: "model_not_found" });
  if (!tenantMayUse(model, tenant.tenantId)) {
    throw new ApiError(403, `Your tenant may not use the model '${req.model}'.`, { param: "model", code: "model_not_allowed" });
  }
  const header = c.req.header(HeaderNames.routingStrategy);
  const strategies = header !== undefined ? requireStrategySpec(header, HeaderNames.routingStrategy) : requireStrategySpec(model.defaultStrategy, "model.default_strategy");
  const { text, messages } = promptText(endpoint, req);
  const cap = completionCap(tenant.limits, tenant.defaultMaxTokens, requestedMaxTokens(req));
  const maxTokens = requestedMaxTokens(req) ?? cap;
  const { body, stripUsageChunk } = upstreamBody(req, raw, cap);
  const namespace = cacheNamespace(model, tenant.tenantId);
  const prompt = promptInfo(text, maxTokens, namespace);
  // Limits are checked (and the request's tokens reserved) before it may wait for a node.
  const reservation = await openReservation(env, {
    tenantId: tenant.tenantId,
    requestId,
    model: model.name,
    limits: tenant.limits,
    promptTokens: promptTokenBound(text, messages),
    completionTokens: maxTokens ?? DEFAULT_COMPLETION_RESERVATION,
  });
  try {
    return await dispatch(c, { endpoint, req, model, strategies, body, stripUsageChunk, namespace, prompt, reservation });
  } catch (err) {
    // Refused before any node did work: the reservation goes back, nothing is charged.
    c.executionCtx.waitUntil(reservation.release());
    throw err;
  }
}

interface Dispatch {
  endpoint: Endpoint;
  req: GenerationRequest;
  model: ModelConfig;
  strategies: WeightedStrategy[];
  body: Uint8Array;
  stripUsageChunk: boolean;
  namespace: string;
  prompt: PromptInfo;
  reservation: Reservation;
}

/** Routes, signs and sends the request, retrying on another node while nothing has come back. */
async function dispatch(c: Context<AppEnv>, d: Dispatch): Promise<Response> {
  const { env } = c;
  const requestId = c.get("requestId");
  const tenant = c.get("tenant");
  const { model, body, namespace, prompt } = d;
  const db = openDb(env.DB);
  const sessionKey = sessionKeyOf(c, d.req);
  const regions = regionOrder(await listRegions(db), callerLocation((c.req.raw as { cf?: unknown }).cf), env.DEFAULT_REGION);
  const pool = env.POOL.getByName(model.pool);
  const path = ENDPOINT_PATHS[d.endpoint];
  const tried: string[] = [];
  const startedAt = Date.now();

  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    let decision: RouteResult;
    // A client that leaves while its request waits for room takes it out of the queue.
    const leaveQueue = () => c.executionCtx.waitUntil(pool.cancelWait(requestId).catch(() => false));
    c.req.raw.signal.addEventListener("abort", leaveQueue, { once: true });
    try {
      decision = await pool.route({
        requestId,
        tenantId: tenant.tenantId,
        model: model.name,
        strategies: d.strategies,
        exclude: tried,
        prompt,
        ...(sessionKey !== undefined ? { sessionKey } : {}),
        regions,
        tenantWeight: tenant.weight,
        admission: {
          policy: model.admission.policy,
          maxWaitMs: model.admission.maxWaitMs,
          ...(model.admission.nodeLimit !== null ? { nodeLimit: model.admission.nodeLimit } : {}),
          inputWeight: model.admission.inputWeight,
          outputWeight: model.admission.outputWeight,
          headroom: model.admission.headroom,
        },
      });
    } catch (err) {
      log("error", "pool_unavailable", { requestId, pool: model.pool, error: err instanceof Error ? err.message : String(err) });
      throw new ApiError(503, "Routing is briefly unavailable; retry shortly.", { code: "pool_unavailable", headers: { "retry-after": "1" } });
    } finally {
      c.req.raw.signal.removeEventListener("abort", leaveQueue);
    }
    if (!decision.ok) throw refusal(decision, model.name, tried.length);
    let upstream: Response;
    // One controller for the attempt: a client that goes away aborts it at any point; the timeout
    // covers only the wait for response headers (queueing at the agent), never the stream itself.
    const abort = new AbortController();
    const onClientGone = () => abort.abort(new Error("client closed the request"));
    c.req.raw.signal.addEventListener("abort", onClientGone, { once: true });
    const headersTimer = setTimeout(() => abort.abort(new Error("timed out waiting for the node's response headers")), numberVar(env.UPSTREAM_HEADERS_TIMEOUT_MS, DEFAULT_UPSTREAM_HEADERS_TIMEOUT_MS));
    try {
      const signature = await signForNode(env, db, decision.nodeId, { method: "POST", path, body, tenant: tenant.tenantId, cacheNamespace: namespace, priority: decision.priority });
      upstream = await nodeFetch(env, decision.region)(decision.url.replace(/\/$/, "") + path, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          [HeaderNames.requestId]: requestId,
          ...signature,
        },
        body,
        signal: abort.signal,
      });
    } catch (err) {
      clearTimeout(headersTimer);
      tried.push(decision.nodeId);
      await pool.reportFailure(requestId, decision.nodeId);
      if (c.req.raw.signal.aborted) throw new ApiError(499, "Client closed the request.", { code: "client_closed" });
      log("warn", "node_attempt_failed", { requestId, node: decision.nodeId, attempt, error: err instanceof Error ? err.message : String(err) });
      continue;
    }
    clearTimeout(headersTimer);
    // The agent refused before doing anything (overloaded, engine down), or refused the edge's
    // signature (a rotation out of step): another node may serve it. A 401 from an agent is never
    // passed on: it is not about the client's key.
    if (upstream.status === 401 || ((upstream.status === 503 || upstream.status === 502) && attempt < MAX_ATTEMPTS)) {
      await upstream.body?.cancel().catch(() => {});
      tried.push(decision.nodeId);
      await pool.reportFailure(requestId, decision.nodeId);
      log(upstream.status === 401 ? "error" : "warn", "node_refused", { requestId, node: decision.nodeId, status: upstream.status, attempt });
      continue;
    }
    return respond(c, upstream, decision, {
      stripUsageChunk: d.stripUsageChunk,
      sse: d.req.stream === true && upstream.ok,
      startedAt,
      pool,
      poolName: model.pool,
      model: model.name,
      promptTokensEstimate: prompt.tokens,
      reservation: d.reservation,
    });
  }
  throw new ApiError(503, `No node could serve '${model.name}' after ${MAX_ATTEMPTS} attempts.`, { code: "no_healthy_node", headers: { "retry-after": "1" } });
}

interface RespondOptions {
  stripUsageChunk: boolean;
  sse: boolean;
  startedAt: number;
  pool: { release(input: ReleaseInput): Promise<unknown> } & ProgressSink;
  poolName: string;
  model: string;
  /** The edge's prompt estimate, used when the engine's usage never arrives. */
  promptTokensEstimate: number;
  reservation: Reservation;
}

/**
 * Passes the node's response on, metered. The request's usage is in the tenant ledger before the
 * client sees the end of the body: the meter holds back the close until the record is written.
 */
async function respond(c: Context<AppEnv>, upstream: Response, decision: Extract<RouteResult, { ok: true }>, opts: RespondOptions): Promise<Response> {
  const requestId = c.get("requestId");
  const tenantId = c.get("tenant").tenantId;
  const headers = new Headers({
    "content-type": upstream.headers.get("content-type") ?? "application/json",
    [HeaderNames.requestId]: requestId,
    [HeaderNames.node]: decision.nodeId,
    [HeaderNames.region]: decision.region,
    [HeaderNames.strategy]: decision.strategy,
    [HeaderNames.prefixBlocks]: `${decision.prefixBlocks.matched}/${decision.prefixBlocks.total}`,
    ...opts.reservation.headers,
  });
  if (opts.sse) headers.set("cache-control", "no-cache");
  const finish = (m: MeterResult | undefined, status: number): Promise<void> => {
    const outcome = !upstream.ok ? "failed" : (m?.outcome ?? "completed");
    const usage = m?.usage
      ? { ...m.usage, estimated: false }
      : m !== undefined && m.contentChunks > 0
        ? { promptTokens: opts.promptTokensEstimate, completionTokens: m.contentChunks, cachedTokens: 0, estimated: true }
        : undefined;
    const ttftMs = m?.firstTokenAt !== undefined ? m.firstTokenAt - opts.startedAt : undefined;
    c.executionCtx.waitUntil(
      opts.pool
        .release({ requestId, outcome, ...(usage ? { usage } : {}), ...(ttftMs !== undefined ? { ttftMs } : {}) })
        .catch((err: unknown) => log("error", "release_failed", { requestId, error: String(err) })),
    );
    log("info", "request_done", {
      requestId,
      tenant: tenantId,
      node: decision.nodeId,
      status,
      outcome,
      ttftMs,
      totalMs: Date.now() - opts.startedAt,
      promptTokens: usage?.promptTokens,
      completionTokens: usage?.completionTokens,
      estimated: usage?.estimated,
    });
    const recorded = opts.reservation
      .record({
        promptTokens: usage?.promptTokens ?? 0,
        completionTokens: usage?.completionTokens ?? 0,
        cachedTokens: usage?.cachedTokens ?? 0,
        estimated: usage?.estimated ?? false,
        outcome: outcome === "completed" ? "completed" : outcome === "cancelled" ? "cancelled" : "failed",
        at: Date.now(),
      })
      .catch(() => undefined); // logged by the client; the ledger's reservation expiry is the net
    // Kept alive past a client that went away.
    c.executionCtx.waitUntil(recorded);
    return recorded;
  };
  if (!upstream.body) {
    await finish(undefined, upstream.status);
    return new Response(null, { status: upstream.status, headers });
  }
  const body = meterBody(upstream.body, {
    sse: opts.sse,
    stripUsageChunk: opts.stripUsageChunk,
    // Every 32 output tokens is plenty: reports are batched per second anyway.
    onProgress: (tokens) => {
      if (tokens % 32 === 0) reportProgress(c.executionCtx, opts.poolName, opts.pool, requestId, tokens);
    },
    onEnd: (m) => finish(m, upstream.status),
    clientSignal: c.req.raw.signal,
  });
  return new Response(body, { status: upstream.status, headers });
}
