/**
 * The agent's HTTP surface. `/v1/*` accepts only requests the edge signed for this node; each is
 * validated, admitted to its engine's queue and streamed back as the engine produces it. The slot
 * is released when the body ends, breaks, or the client goes away. `/healthz` and `/metrics` are
 * unauthenticated and reveal no tenant data.
 */
import { Hono } from "hono";
import { HeaderNames } from "../../protocol/headers";
import { ApiError } from "../../protocol/openai-error";
import { type Endpoint, type GenerationRequest, validateGenerationRequest } from "../../protocol/openai-request";
import { enginePriority, REQUEST_PRIORITIES, type RequestPriority } from "../../protocol/priority";
import type { EngineAdapter } from "../engines/engine";
import type { Logger } from "../lib/log";
import type { Admission, Release } from "./admission";
import type { InboundVerifier } from "./inbound-auth";
import { readBoundedBody } from "../../protocol/bounded-body";
import type { AgentMetrics } from "./metrics";
import { ResponseMeter } from "./response-meter";

const MAX_INBOUND_BYTES = 8 * 1024 * 1024;

export interface EngineSlot {
  engine: EngineAdapter;
  admission: Admission;
}

export interface AgentAppDeps {
  nodeId: string;
  engines: ReadonlyMap<string, EngineSlot>;
  verifier: InboundVerifier;
  metrics: AgentMetrics;
  log: Logger;
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * The engine priority for the edge's signed mark (the signature covers the header, so it is the
 * edge's, never a client's). No mark (direct calls) and a mark this agent does not know (a newer
 * edge) leave the engine's default: an unknown mark never puts a request ahead of others.
 */
function priorityOf(header: string | null): number | undefined {
  return header !== null && (REQUEST_PRIORITIES as readonly string[]).includes(header) ? enginePriority(header as RequestPriority) : undefined;
}

function parseBody(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(strictUtf8.decode(bytes));
  } catch {
    throw new ApiError(400, "The request body is not valid UTF-8 JSON.", { code: "invalid_json" });
  }
}

/** Wraps a response body so `onEnd` runs exactly once however it ends, and every chunk is seen as it passes. */
function watchBody(
  body: ReadableStream<Uint8Array>,
  onChunk: (chunk: Uint8Array, first: boolean) => void,
  onEnd: (outcome: "completed" | "cancelled" | "failed") => void,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  let first = true;
  let ended = false;
  const end = (o: "completed" | "cancelled" | "failed") => {
    if (!ended) {
      ended = true;
      onEnd(o);
    }
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (done) {
          controller.close();
          end("completed");
          return;
        }
        onChunk(value, first);
        first = false;
        controller.enqueue(value);
      } catch (err) {
        controller.error(err);
        end("failed");
      }
    },
    async cancel(reason) {
      end("cancelled");
      await reader.cancel(reason).catch(() => {});
    },
  });
}

export function createAgentApp(deps: AgentAppDeps): Hono {
  const app = new Hono();

  app.get("/healthz", (c) => {
    const engines = [...deps.engines.values()].map(({ engine, admission }) => {
      const load = engine.load();
      return { model: engine.model, engine: engine.kind, healthy: load.healthy, running: admission.running, waiting: admission.waiting };
    });
    const healthy = engines.every((e) => e.healthy);
    return c.json({ ok: healthy, node: deps.nodeId, engines }, healthy ? 200 : 503);
  });

  app.get("/metrics", async (c) => {
    c.header("content-type", deps.metrics.registry.contentType);
    return c.body(await deps.metrics.registry.metrics());
  });

  /** Reads and authenticates a signed request; returns its body bytes. */
  async function signedBody(req: Request): Promise<Uint8Array> {
    const bytes = await readBoundedBody(req, MAX_INBOUND_BYTES);
    const url = new URL(req.url);
    const verdict = await deps.verifier.verify(req.method, url.pathname + url.search, bytes, req.headers);
    if (!verdict.ok) {
      deps.metrics.rejectedSignatures.inc({ reason: verdict.reason });
      deps.log.warn("request_rejected", { reason: verdict.reason, path: url.pathname });
      throw new ApiError(401, `Request refused: ${verdict.reason.replace(/_/g, " ")}. Agents accept only requests signed by the edge.`, { code: verdict.reason });
    }
    return bytes;
  }

  const generation = (endpoint: Endpoint) => async (c: import("hono").Context) => {
    const arrived = performance.now();
    const requestId = c.req.header(HeaderNames.requestId) ?? crypto.randomUUID();
    const tenantId = c.req.header(HeaderNames.tenant);
    // Refusals count too (bad requests, a full queue, an unknown model): an operator must see them.
    // The model label is only ever one this node serves, so clients cannot mint new series.
    let served = "";
    try {
      const raw = await signedBody(c.req.raw);
      const parsed = parseBody(raw);
      const named = (parsed as { model?: unknown } | null)?.model;
      if (typeof named === "string" && deps.engines.has(named)) served = named;
      const body = validateGenerationRequest(endpoint, parsed);
      const slot = deps.engines.get(body.model);
      if (!slot) throw new ApiError(404, `This node does not serve the model '${body.model}'.`, { param: "model", code: "model_not_found" });
      return await serve(endpoint, arrived, requestId, tenantId, slot, body, raw, c.req.raw);
    } catch (err) {
      if (err instanceof ApiError) {
        deps.metrics.requests.inc({ model: served, endpoint, status: String(err.status) });
        // A bad signature is logged as request_rejected: its id is not the edge's.
        if (err.status !== 401) deps.log.info("request_refused", { requestId, model: served || undefined, tenant: tenantId, status: err.status, code: err.code });
      }
      throw err;
    }
  };

  async function serve(
    endpoint: Endpoint,
    arrived: number,
    requestId: string,
    tenantId: string | undefined,
    slot: EngineSlot,
    body: GenerationRequest,
    raw: Uint8Array,
    req: Request,
  ): Promise<Response> {
    const cacheNamespace = req.headers.get(HeaderNames.cacheNamespace);
    const priority = priorityOf(req.headers.get(HeaderNames.priority));
    const log = deps.log.child({ requestId, model: body.model });
    const signal = req.signal;
    const release: Release = await slot.admission.acquire(signal, priority);
    let response: Response;
    try {
      response = await slot.engine.handle({ requestId, endpoint, body, rawBody: raw, ...(tenantId ? { tenantId } : {}), ...(cacheNamespace ? { cacheNamespace } : {}), ...(priority !== undefined ? { priority } : {}), signal });
    } catch (err) {
      release();
      throw err;
    }
    const model = { model: body.model };
    const labels = { ...model, endpoint, status: String(response.status) };
    if (!response.body) {
      release();
      deps.metrics.requests.inc(labels);
      return response;
    }
    const meter = new ResponseMeter(response.headers.get("content-type"));
    const watched = watchBody(
      response.body,
      (chunk, first) => {
        const now = performance.now();
        if (first) deps.metrics.ttft.observe(model, (now - arrived) / 1000);
        meter.push(chunk, now);
      },
      (outcome) => {
        release();
        deps.metrics.requests.inc(labels);
        const seconds = (performance.now() - arrived) / 1000;
        deps.metrics.duration.observe(model, seconds);
        const usage = meter.result();
        if (usage.tpotSeconds !== undefined) deps.metrics.tpot.observe(model, usage.tpotSeconds);
        deps.metrics.promptTokens.inc(model, usage.promptTokens);
        deps.metrics.cachedPromptTokens.inc(model, usage.cachedTokens);
        deps.metrics.generationTokens.inc(model, usage.completionTokens);
        log.info("request_done", {
          tenant: tenantId,
          status: response.status,
          outcome,
          ms: Math.round(seconds * 1000),
          ...(usage.hasUsage ? { promptTokens: usage.promptTokens, cachedTokens: usage.cachedTokens, completionTokens: usage.completionTokens } : {}),
          ...(usage.tpotSeconds !== undefined ? { tpotMs: Math.round(usage.tpotSeconds * 10_000) / 10 } : {}),
        });
      },
    );
    const headers = new Headers(response.headers);
    headers.set(HeaderNames.requestId, requestId);
    headers.set(HeaderNames.node, deps.nodeId);
    return new Response(watched, { status: response.status, headers });
  }

  app.post("/v1/chat/completions", generation("chat"));
  app.post("/v1/completions", generation("completions"));
  app.get("/v1/models", async (c) => {
    await signedBody(c.req.raw);
    return c.json({ object: "list", data: [...deps.engines.keys()].map((id) => ({ id, object: "model", created: 0, owned_by: deps.nodeId })) });
  });

  app.notFound((c) => new ApiError(404, `No route for ${c.req.method} ${new URL(c.req.url).pathname}.`, { code: "unknown_route" }).toResponse());
  app.onError((err) => {
    if (err instanceof ApiError) return err.toResponse();
    deps.log.error("unhandled_error", { error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
    return new ApiError(500, "Internal agent error.", { code: "internal_error" }).toResponse();
  });
  return app;
}
