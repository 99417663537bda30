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
import { cacheNamespace, getModel, tenantMayUse } from "../models/catalog";
import { callerLocation, listRegions, regionOrder } from "../regions/region-order";
import type { PromptInfo } from "../routing/strategy";
import { nodeFetch } from "../nodes/node-transport";
import { signForNode } from "../nodes/node-signer";
import { type ProgressSink, reportProgress } from "../pool/progress-reporter";
import type { ReleaseInput, RouteResult } from "../pool/types";
import { requireStrategySpec } from "../routing/spec";
import { parseJsonBody, readBodyLimited } from "./body";
import { meterBody } from "./stream-meter";

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
 *   the engine's salt from the signed namespace header), or a tenant could name another's salt.
 */
function upstreamBody(req: GenerationRequest, raw: Uint8Array): { body: Uint8Array; stripUsageChunk: boolean } {
  const wantsUsageAdded = req.stream === true && req.stream_options?.include_usage !== true;
  const hasSalt = Object.hasOwn(req, "cache_salt");
  if (!wantsUsageAdded && !hasSalt) return { body: raw, stripUsageChunk: false };
  const { cache_salt: _dropped, ...rest } = req as GenerationRequest & { cache_salt?: unknown };
  const rewritten = wantsUsageAdded ? { ...rest, stream_options: { ...(req.stream_options ?? {}), include_usage: true } } : rest;
  return { body: new TextEncoder().encode(JSON.stringify(rewritten)), stripUsageChunk: wantsUsageAdded };
}

/** Default completion length assumed for cost estimates when the request sets no max_tokens. */
const DEFAULT_MAX_TOKENS_ESTIMATE = 256;

/** Prompt blocks in the request's cache namespace, hashed here so the pool object spends no CPU on it. */
function promptInfo(endpoint: Endpoint, req: GenerationRequest, namespace: string): PromptInfo {
  const text = endpoint === "chat" ? renderChat((req as ChatCompletionRequest).messages) : renderCompletionPrompt((req as CompletionRequest).prompt);
  return {
    blocks: prefixBlockHashes(text, namespaceSeed(namespace)),
    tokens: estimateTokens(text),
    maxTokens: requestedMaxTokens(req) ?? DEFAULT_MAX_TOKENS_ESTIMATE,
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
  const { body, stripUsageChunk } = upstreamBody(req, raw);
  const namespace = cacheNamespace(model, tenant.tenantId);
  const prompt = promptInfo(endpoint, req, namespace);
  const sessionKey = sessionKeyOf(c, req);
  const regions = regionOrder(await listRegions(db), callerLocation((c.req.raw as { cf?: unknown }).cf), env.DEFAULT_REGION);
  const pool = env.POOL.getByName(model.pool);
  const path = ENDPOINT_PATHS[endpoint];
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
        strategies,
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
      const signature = await signForNode(env, db, decision.nodeId, { method: "POST", path, body, tenant: tenant.tenantId, cacheNamespace: namespace });
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
    return respond(c, upstream, decision, { stripUsageChunk, sse: req.stream === true && upstream.ok, startedAt, pool, poolName: model.pool });
  }
  throw new ApiError(503, `No node could serve '${model.name}' after ${MAX_ATTEMPTS} attempts.`, { code: "no_healthy_node", headers: { "retry-after": "1" } });
}

function respond(
  c: Context<AppEnv>,
  upstream: Response,
  decision: Extract<RouteResult, { ok: true }>,
  opts: { stripUsageChunk: boolean; sse: boolean; startedAt: number; pool: { release(input: ReleaseInput): Promise<unknown> } & ProgressSink; poolName: string },
): Response {
  const requestId = c.get("requestId");
  const tenantId = c.get("tenant").tenantId;
  const headers = new Headers({
    "content-type": upstream.headers.get("content-type") ?? "application/json",
    [HeaderNames.requestId]: requestId,
    [HeaderNames.node]: decision.nodeId,
    [HeaderNames.region]: decision.region,
    [HeaderNames.strategy]: decision.strategy,
    [HeaderNames.prefixBlocks]: `${decision.prefixBlocks.matched}/${decision.prefixBlocks.total}`,
  });
  if (opts.sse) headers.set("cache-control", "no-cache");
  const release = (input: ReleaseInput) => {
    c.executionCtx.waitUntil(
      opts.pool.release(input).catch((err: unknown) => log("error", "release_failed", { requestId, error: String(err) })),
    );
  };
  if (!upstream.body) {
    release({ requestId, outcome: upstream.ok ? "completed" : "failed" });
    return new Response(null, { status: upstream.status, headers });
  }
  const body = meterBody(upstream.body, {
    sse: opts.sse,
    stripUsageChunk: opts.stripUsageChunk,
    // Every 32 output tokens is plenty: reports are batched per second anyway.
    onProgress: (tokens) => {
      if (tokens % 32 === 0) reportProgress(c.executionCtx, opts.poolName, opts.pool, requestId, tokens);
    },
    onEnd: (m) => {
      const outcome = upstream.ok ? m.outcome : "failed";
      const usage = m.usage
        ? { ...m.usage, estimated: false }
        : m.contentChunks > 0
          ? { promptTokens: 0, completionTokens: m.contentChunks, cachedTokens: 0, estimated: true }
          : undefined;
      const ttftMs = m.firstTokenAt !== undefined ? m.firstTokenAt - opts.startedAt : undefined;
      release({ requestId, outcome, ...(usage ? { usage } : {}), ...(ttftMs !== undefined ? { ttftMs } : {}) });
      log("info", "request_done", {
        requestId,
        tenant: tenantId,
        node: decision.nodeId,
        status: upstream.status,
        outcome,
        ttftMs,
        totalMs: Date.now() - opts.startedAt,
        promptTokens: usage?.promptTokens,
        completionTokens: usage?.completionTokens,
        estimated: usage?.estimated,
      });
    },
  });
  return new Response(body, { status: upstream.status, headers });
}
