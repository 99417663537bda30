/**
 * The `openai` engine: any OpenAI-compatible server (vLLM, SGLang, llama-server, the emulator)
 * reached over a keep-alive undici pool. Requests are forwarded byte for byte (the model name is
 * rewritten only when the engine calls it something else) and streamed back as they arrive; a
 * client that goes away aborts the engine request, which frees the engine's batch slot. Load and
 * health are polled from the engine's /metrics and /health in the background. With `launch` the
 * adapter also starts vLLM itself and keeps it running (launch.ts); the engine is unhealthy whenever
 * that process is not ready (loading, crashed, being restarted).
 */
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { Pool } from "undici";
import { ApiError } from "../../../protocol/openai-error";
import { HeaderNames } from "../../../protocol/headers";
import type { Logger } from "../../lib/log";
import type { EngineAdapter, EngineLoad, EngineRequest } from "../engine";
import type { OpenAIEngineConfig } from "./config";
import { loadFromMetrics, type ScrapedLoad } from "./engine-load";
import { KvEventTracker } from "./kv-events";
import { VllmLauncher } from "./launch";
import { parsePrometheusText } from "./prometheus-text";

const PATHS = { chat: "/v1/chat/completions", completions: "/v1/completions" } as const;

export class OpenAIEngine implements EngineAdapter {
  readonly kind = "openai";
  readonly model: string;
  readonly maxConcurrency: number;
  private readonly pool: Pool;
  private readonly base: URL;
  private timer: NodeJS.Timeout | undefined;
  private healthy = false;
  private scraped: ScrapedLoad = {};
  private inflight = 0;
  private started = false;
  /** Present when the engine publishes KV events. */
  readonly kvEvents: KvEventTracker | undefined;
  /** Present in launch mode: the vLLM process the agent runs. */
  readonly launcher: VllmLauncher | undefined;

  constructor(
    private readonly config: OpenAIEngineConfig,
    private readonly log: Logger,
  ) {
    this.model = config.model;
    this.maxConcurrency = config.maxConcurrency;
    this.base = new URL(config.url);
    this.pool = new Pool(this.base.origin, { connections: config.connections, keepAliveTimeout: 30_000, pipelining: 1 });
    this.kvEvents = config.kvEvents ? new KvEventTracker() : undefined;
    this.launcher = config.launch
      ? new VllmLauncher({ ...config, launch: config.launch }, log, {
          onState: (state) => {
            // Not ready means not routable now, without waiting for the next poll to notice.
            if (state !== "ready" && this.healthy) {
              this.healthy = false;
              this.log.warn("engine_unhealthy", { launcher: state });
            } else if (state === "ready") {
              if (this.started) this.kvEvents?.resubscribe();
              void this.poll();
            }
          },
        })
      : undefined;
  }

  async start(): Promise<void> {
    await this.launcher?.start();
    this.started = true;
    if (this.config.kvEvents) this.kvEvents?.subscribe(this.config.kvEvents.endpoint, this.config.kvEvents.topic, this.log);
    await this.poll();
    this.timer = setInterval(() => void this.poll(), this.config.pollIntervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.kvEvents?.close();
    try {
      await this.pool.close();
    } finally {
      await this.launcher?.stop();
    }
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return this.config.apiKey ? { authorization: `Bearer ${this.config.apiKey}`, ...extra } : extra;
  }

  private basePath(): string {
    return this.base.pathname.replace(/\/$/, "");
  }

  /** One health + metrics read; failures mark the engine unhealthy until the next good read. */
  async poll(): Promise<void> {
    try {
      const health = await this.pool.request({ method: "GET", path: this.basePath() + this.config.healthPath, headers: this.headers(), headersTimeout: 5_000, bodyTimeout: 5_000 });
      await health.body.dump();
      const wasHealthy = this.healthy;
      this.healthy = health.statusCode === 200 && (this.launcher === undefined || this.launcher.state === "ready");
      if (wasHealthy !== this.healthy) this.log.info(this.healthy ? "engine_healthy" : "engine_unhealthy", { status: health.statusCode });
    } catch (err) {
      if (this.healthy) this.log.warn("engine_unhealthy", { error: err instanceof Error ? err.message : String(err) });
      this.healthy = false;
      return;
    }
    try {
      const res = await this.pool.request({ method: "GET", path: this.basePath() + this.config.metricsPath, headers: this.headers(), headersTimeout: 5_000, bodyTimeout: 5_000 });
      if (res.statusCode !== 200) {
        await res.body.dump();
        return;
      }
      this.scraped = loadFromMetrics(parsePrometheusText(await res.body.text()));
    } catch (err) {
      this.log.debug("metrics_scrape_failed", { error: err instanceof Error ? err.message : String(err) });
    }
  }

  load(): EngineLoad {
    return {
      healthy: this.healthy,
      running: this.scraped.running ?? this.inflight,
      waiting: this.scraped.waiting ?? 0,
      kvUsage: this.scraped.kvUsage ?? 0,
      kvCapacityTokens: this.config.kvCapacityTokens ?? this.scraped.kvCapacityTokens ?? 0,
      ...(this.kvEvents ? { kvEvictedTokens: this.kvEvents.evictedTokens, kvEpoch: this.kvEvents.epoch } : {}),
    };
  }

  /** Latest scraped counters (prefix-cache hits and queries among them). */
  scrapedLoad(): Readonly<ScrapedLoad> {
    return this.scraped;
  }

  /**
   * The request as the engine should see it: forwarded byte for byte unless a field must change.
   * `priority` is the agent's to set, from the edge's signed mark, and only for an engine that
   * schedules by priority (vLLM refuses a non-zero priority under fcfs); one in the body is dropped
   * otherwise (the edge strips clients' already).
   */
  private requestBody(req: EngineRequest): Uint8Array {
    const served = this.config.servedModelName;
    const rename = served !== undefined && served !== req.body.model;
    const salt = this.config.cacheSalt && req.cacheNamespace ? cacheSalt(req.cacheNamespace) : undefined;
    const priority = this.config.schedulingPolicy === "priority" ? req.priority : undefined;
    const stalePriority = Object.hasOwn(req.body, "priority");
    if (!rename && salt === undefined && priority === undefined && !stalePriority) return req.rawBody;
    const { priority: _dropped, ...body } = req.body as typeof req.body & { priority?: unknown };
    return new TextEncoder().encode(JSON.stringify({ ...body, ...(rename ? { model: served } : {}), ...(salt ? { cache_salt: salt } : {}), ...(priority !== undefined ? { priority } : {}) }));
  }

  async handle(req: EngineRequest): Promise<Response> {
    const body = this.requestBody(req);
    this.inflight++;
    let released = false;
    const release = () => {
      if (!released) {
        released = true;
        this.inflight--;
      }
    };
    let res: Awaited<ReturnType<Pool["request"]>>;
    try {
      res = await this.pool.request({
        method: "POST",
        path: this.basePath() + PATHS[req.endpoint],
        headers: this.headers({ "content-type": "application/json", [HeaderNames.requestId]: req.requestId }),
        body,
        signal: req.signal,
        // The engine may queue a request for long; the edge bounds the total wait.
        headersTimeout: 0,
        bodyTimeout: 0,
      });
    } catch (err) {
      release();
      if (req.signal.aborted) throw new ApiError(499, "The client closed the request.", { code: "client_closed" });
      this.log.warn("engine_request_failed", { requestId: req.requestId, model: this.model, error: err instanceof Error ? err.message : String(err) });
      throw new ApiError(502, `The engine at ${this.base.origin} could not be reached: ${err instanceof Error ? err.message : String(err)}`, { code: "engine_unreachable" });
    }
    // The engine logs its side under the same id (vLLM takes X-Request-Id as its request id).
    if (res.statusCode >= 400) this.log.warn("engine_error_status", { requestId: req.requestId, model: this.model, status: res.statusCode });
    res.body.once("close", release);
    res.body.once("error", release);
    const headers = new Headers({ "content-type": String(res.headers["content-type"] ?? "application/json") });
    const stream = Readable.toWeb(res.body) as ReadableStream<Uint8Array>;
    return new Response(stream, { status: res.statusCode, headers });
  }
}

/** vLLM cache salt for a namespace: stable, and distinct per namespace. */
export function cacheSalt(namespace: string): string {
  return createHash("sha256").update(`switchyard-cache:${namespace}`).digest("hex").slice(0, 32);
}

export function createOpenAIEngine(config: OpenAIEngineConfig, log: Logger): EngineAdapter {
  return new OpenAIEngine(config, log);
}
