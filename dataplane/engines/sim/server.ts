/**
 * A standalone vLLM-compatible server around the emulator: the OpenAI routes vLLM serves
 * (`/v1/chat/completions`, `/v1/completions`, `/v1/models`), `/health`, `/metrics` (vLLM's names),
 * `/tokenize`, `/version`, `/reset_prefix_cache`, and the KV events vLLM publishes: over ZMQ exactly
 * as vLLM does (`kvEvents` option: msgpack batches on a PUB socket) and, for easy inspection, as
 * Server-Sent Events on `/kv-events` (one `data:` line per EventBatch). Point an `openai` engine of the agent at it and
 * the agent scrapes and proxies it as it would a real vLLM. A request's `cache_salt` (vLLM's field) is
 * its cache namespace: requests with different salts never share prefix blocks. Its `priority`
 * (vLLM's field, smaller first) orders the scheduler's queue under the priority policy.
 *
 * @example
 * ```ts
 * const server = await startSimServer({ port: 0, config: { kind: "sim", model: "llama-3-8b", timeScale: 10 } });
 * await fetch(`${server.url}/v1/models`);
 * await server.close();
 * ```
 */
import { randomUUID } from "node:crypto";
import type { AddressInfo } from "node:net";
import { serve, type ServerType } from "@hono/node-server";
import { Hono } from "hono";
import { ApiError } from "../../../protocol/openai-error";
import { type ChatMessage, type Endpoint, validateGenerationRequest } from "../../../protocol/openai-request";
import type { Logger } from "../../lib/log";
import { createSimEngine, type SimEngine } from "./adapter";
import type { SimEngineConfigInput } from "./config";
import { KvEventPublisher } from "./kv-events-zmq";
import { promptTokens } from "./prompt";

export const SIM_VERSION = "0.1.0-sim";
const KV_EVENTS_HEARTBEAT_MS = 15_000;
const encoder = new TextEncoder();

export interface SimAppOptions {
  /** Bearer token required on /v1/* and /tokenize (vLLM's --api-key). */
  apiKey?: string;
  /**
   * JSON-lines log: requests refused here, with their `X-Request-Id` as `requestId` (the engine
   * itself logs `generation_done` under the same id when it was created with this log).
   */
  log?: Logger;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError(400, "The request body is not valid JSON.", { code: "invalid_json" });
  }
}

/**
 * vLLM's `cache_salt`: absent or null for none; otherwise a non-empty string (vLLM's validator
 * rejects anything else with 400), used as the request's cache namespace.
 */
function cacheSalt(body: object): string | undefined {
  const salt = (body as { cache_salt?: unknown }).cache_salt;
  if (salt === undefined || salt === null) return undefined;
  if (typeof salt !== "string" || salt.length === 0) {
    throw new ApiError(400, "Parameter 'cache_salt' must be a non-empty string if provided.", { param: "cache_salt", code: "invalid_value" });
  }
  return salt;
}

/**
 * vLLM's request `priority`: an integer, default 0 (pydantic refuses null, fractions and other
 * types with 400). Any other value than 0 needs the priority scheduling policy, as in vLLM, which
 * refuses it otherwise ("Got priority 1 but Priority scheduling is not enabled.").
 */
function priorityOf(body: object, engine: SimEngine): number | undefined {
  if (!Object.hasOwn(body, "priority")) return undefined;
  const priority = (body as { priority?: unknown }).priority;
  if (typeof priority !== "number" || !Number.isSafeInteger(priority)) {
    throw new ApiError(400, "Parameter 'priority' must be an integer.", { param: "priority", code: "invalid_value" });
  }
  if (priority !== 0 && engine.core.scheduler.limits.policy !== "priority") {
    throw new ApiError(400, `Got priority ${priority} but Priority scheduling is not enabled.`, { param: "priority", code: "invalid_value" });
  }
  return priority;
}

/** The Hono app serving `engine` (already started). */
export function createSimApp(engine: SimEngine, opts: SimAppOptions = {}): Hono {
  const app = new Hono();
  app.onError((err, c) => {
    const failure = err instanceof ApiError ? err : new ApiError(500, err instanceof Error ? err.message : String(err), { code: "engine_error" });
    opts.log?.[failure.status >= 500 ? "error" : "info"]("request_refused", { requestId: c.req.header("x-request-id"), path: c.req.path, status: failure.status, code: failure.code });
    return failure.toResponse();
  });

  const authorize = (req: Request) => {
    if (opts.apiKey && req.headers.get("authorization") !== `Bearer ${opts.apiKey}`) {
      throw new ApiError(401, "Invalid API key.", { code: "invalid_api_key" });
    }
  };

  const generate = (endpoint: Endpoint) => async (c: { req: { raw: Request } }) => {
    const raw = c.req.raw;
    authorize(raw);
    const text = await raw.text();
    const body = validateGenerationRequest(endpoint, parseJson(text));
    if (body.model !== engine.model) throw new ApiError(404, `The model \`${body.model}\` does not exist.`, { param: "model", code: "model_not_found" });
    const salt = cacheSalt(body);
    const priority = priorityOf(body, engine);
    return engine.handle({
      requestId: raw.headers.get("x-request-id") ?? randomUUID().replaceAll("-", ""),
      endpoint,
      body,
      rawBody: encoder.encode(text),
      ...(salt !== undefined ? { cacheNamespace: salt } : {}),
      ...(priority !== undefined ? { priority } : {}),
      signal: raw.signal,
    });
  };
  app.post("/v1/chat/completions", generate("chat"));
  app.post("/v1/completions", generate("completions"));

  app.get("/v1/models", (c) => {
    authorize(c.req.raw);
    return c.json({
      object: "list",
      data: [{ id: engine.model, object: "model", created: Math.floor(Date.now() / 1000), owned_by: "vllm", root: engine.model, parent: null, max_model_len: engine.core.maxModelLen, permission: [] }],
    });
  });

  app.post("/tokenize", async (c) => {
    authorize(c.req.raw);
    const body = parseJson(await c.req.raw.text()) as { prompt?: unknown; messages?: unknown; model?: string };
    let tokens: number[];
    if (Array.isArray(body.messages)) tokens = promptTokens("chat", { model: engine.model, messages: body.messages as ChatMessage[] });
    else if (typeof body.prompt === "string") tokens = promptTokens("completions", { model: engine.model, prompt: body.prompt });
    else throw new ApiError(400, "'prompt' or 'messages' is required.", { code: "missing_required_parameter" });
    return c.json({ count: tokens.length, max_model_len: engine.core.maxModelLen, tokens });
  });

  // vLLM serves this in dev mode (VLLM_SERVER_DEV_MODE=1); refused while requests hold blocks.
  app.post("/reset_prefix_cache", (c) => {
    authorize(c.req.raw);
    if (!engine.core.resetPrefixCache()) throw new ApiError(409, "Requests are running; the prefix cache was not reset.", { code: "engine_busy" });
    return new Response(null, { status: 200 });
  });
  app.get("/health", () => new Response(null, { status: engine.load().healthy ? 200 : 503 }));
  app.get("/version", (c) => c.json({ version: SIM_VERSION }));
  app.get("/metrics", () => new Response(engine.metricsText(), { headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" } }));

  app.get("/kv-events", () => {
    let unsubscribe: (() => void) | undefined;
    let heartbeat: ReturnType<typeof setInterval> | undefined;
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(encoder.encode(": kv-events\n\n"));
        unsubscribe = engine.onKvEvents((batch) => controller.enqueue(encoder.encode(`data: ${JSON.stringify(batch)}\n\n`)));
        heartbeat = setInterval(() => controller.enqueue(encoder.encode(": ping\n\n")), KV_EVENTS_HEARTBEAT_MS);
        heartbeat.unref();
      },
      cancel() {
        unsubscribe?.();
        clearInterval(heartbeat);
      },
    });
    return new Response(stream, { headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" } });
  });

  return app;
}

export interface SimServerOptions extends SimAppOptions {
  // `log`, when given, is also the engine's: one `generation_done` line per request.
  /** 0 picks a free port. Default 8000 (vLLM's). */
  port?: number;
  host?: string;
  config: SimEngineConfigInput;
  /** Also publish KV events over ZMQ as vLLM does (port 0 picks a free one; vLLM's default is 5557). */
  kvEvents?: { port: number; topic?: string };
}

export interface RunningSimServer {
  url: string;
  engine: SimEngine;
  /** `tcp://host:port` of the ZMQ KV-event publisher, when one was asked for. */
  kvEventsEndpoint: string | undefined;
  close(): Promise<void>;
}

export async function startSimServer(opts: SimServerOptions): Promise<RunningSimServer> {
  const engine = createSimEngine(opts.config, opts.log ? { log: opts.log } : {});
  await engine.start();
  const host = opts.host ?? "127.0.0.1";
  const app = createSimApp(engine, opts);
  const server: ServerType = await new Promise((resolve) => {
    const s = serve({ fetch: app.fetch, hostname: host, port: opts.port ?? 8000 }, () => resolve(s));
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
  const publisher = opts.kvEvents ? await KvEventPublisher.start({ host, port: opts.kvEvents.port, ...(opts.kvEvents.topic !== undefined ? { topic: opts.kvEvents.topic } : {}) }) : undefined;
  const unsubscribe = publisher ? engine.onKvEvents((batch) => publisher.publish(batch)) : undefined;
  let closing: Promise<void> | undefined;
  return {
    url,
    engine,
    kvEventsEndpoint: publisher ? `tcp://${host}:${publisher.port}` : undefined,
    close() {
      closing ??= (async () => {
        unsubscribe?.();
        await publisher?.close();
        await engine.stop();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          const http = server as { closeAllConnections?: () => void };
          http.closeAllConnections?.();
        });
      })();
      return closing;
    },
  };
}
