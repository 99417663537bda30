/**
 * The engine emulator as an agent engine (`kind: "sim"`): an EngineCore on a RealClock, answering
 * through `renderGeneration` exactly as the llama.cpp engine does, so the agent cannot tell it from a
 * real in-process engine. Load, KV capacity and KV events come straight from the core. The request's
 * `cacheNamespace` salts its prefix-cache hashes (as vLLM's `cache_salt`): no cross-namespace hits.
 * Its `priority` (the agent's, from the edge's signed mark) is vLLM's; the core's scheduler uses it
 * under the priority policy and ignores it under fcfs.
 *
 * @example
 * ```ts
 * const engine = createSimEngine({ kind: "sim", model: "llama-3-8b", timeScale: 10 });
 * await engine.start();
 * const stopEvents = engine.onKvEvents((batch) => console.log(batch.events.length));
 * const res = await engine.handle({ requestId, endpoint: "chat", body, rawBody, signal });
 * ```
 */
import type { Logger } from "../../lib/log";
import type { EngineAdapter, EngineLoad, EngineRequest } from "../engine";
import { generationParams, renderGeneration, type GenerationEvent, type GenerationParams } from "../generation";
import { requestedMaxTokens } from "../../../protocol/openai-request";
import { ApiError } from "../../../protocol/openai-error";
import { StopMatcher } from "../llamacpp/text-stream";
import { RealClock } from "./clock";
import { coreOptions, maxConcurrency, simEngineConfigSchema, type SimEngineConfig, type SimEngineConfigInput } from "./config";
import { EngineCore, SimRequestError, type KvEventListener } from "./engine-core";
import { blockHashes, type KvLowerTier, namespaceSeed } from "./kv-cache";
import { promptTokens } from "./prompt";
import type { FinishReason, SimRequest } from "./scheduler";

/** A push-driven async iterable of events (one consumer). */
class EventChannel<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private waiter: ((r: IteratorResult<T>) => void) | undefined;
  private closed = false;

  constructor(private readonly onReturn: () => void) {}

  push(item: T): void {
    if (this.closed) return;
    const w = this.waiter;
    if (w) {
      this.waiter = undefined;
      w({ value: item, done: false });
    } else this.items.push(item);
  }

  close(): void {
    this.closed = true;
    const w = this.waiter;
    if (w && this.items.length === 0) {
      this.waiter = undefined;
      w({ value: undefined, done: true });
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => {
        const item = this.items.shift();
        if (item !== undefined) return Promise.resolve({ value: item, done: false });
        if (this.closed) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => {
          this.waiter = resolve;
        });
      },
      return: () => {
        this.closed = true;
        this.items.length = 0;
        this.onReturn();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}

/** FNV-1a over token ids: greedy requests without a seed answer the same prompt the same way. */
function promptSeed(tokens: readonly number[]): number {
  let h = 0x811c9dc5;
  for (const t of tokens) h = Math.imul(h ^ t, 0x01000193);
  return h | 0;
}

export interface SimEngineOptions {
  /** A lower KV tier for the core (issue 6). */
  lowerTier?: KvLowerTier;
  /** The engine's log (one `generation_done` line per request); none when absent. */
  log?: Logger;
}

export class SimEngine implements EngineAdapter {
  readonly kind = "sim";
  readonly model: string;
  readonly maxConcurrency: number;
  readonly config: SimEngineConfig;
  readonly clock: RealClock;
  readonly core: EngineCore;
  private started = false;
  private stopped = false;
  private readonly log: Logger | undefined;
  private readonly lowerTier: KvLowerTier | undefined;

  constructor(config: SimEngineConfigInput, opts: SimEngineOptions = {}) {
    this.log = opts.log;
    this.lowerTier = opts.lowerTier;
    this.config = simEngineConfigSchema.parse(config);
    this.model = this.config.model;
    this.maxConcurrency = maxConcurrency(this.config);
    this.clock = new RealClock(this.config.timeScale);
    this.core = new EngineCore(coreOptions(this.config, this.clock, { lowerTier: opts.lowerTier, epochMs: Date.now() }));
  }

  start(): Promise<void> {
    if (this.stopped) return Promise.reject(new Error("the sim engine was stopped"));
    this.started = true;
    return Promise.resolve();
  }

  stop(): Promise<void> {
    this.stopped = true;
    this.core.stop();
    return Promise.resolve();
  }

  load(): EngineLoad {
    const load = this.core.load();
    return { healthy: this.started && !this.stopped, ...load };
  }

  /** KV events of the core (vLLM EventBatch content); returns an unsubscribe function. */
  onKvEvents(listener: KvEventListener): () => void {
    return this.core.onKvEvents(listener);
  }

  /** vLLM's /metrics text. */
  metricsText(): string {
    return this.core.renderMetrics();
  }

  async handle(req: EngineRequest): Promise<Response> {
    try {
      if (!this.started || this.stopped) throw new ApiError(503, "The sim engine is not running.", { code: "engine_unavailable" });
      const tokens = promptTokens(req.endpoint, req.body);
      const params = this.resolveParams(req, tokens.length);
      const hashes = await this.prefetch(req, tokens);
      const events = this.generate(req, tokens, params, hashes);
      return await renderGeneration({ endpoint: req.endpoint, model: this.model, requestId: req.requestId, params, events, ...(this.log ? { log: this.log } : {}) });
    } catch (err) {
      if (err instanceof ApiError) return err.toResponse();
      if (err instanceof SimRequestError) return new ApiError(400, err.message, { code: err.code, param: err.param }).toResponse();
      return new ApiError(500, err instanceof Error ? err.message : String(err), { code: "engine_error" }).toResponse();
    }
  }

  /** Normalised sampling settings; max_tokens defaults to what the context leaves, as in vLLM. */
  private resolveParams(req: EngineRequest, promptLength: number): GenerationParams {
    const maxModelLen = this.core.maxModelLen;
    const param = req.endpoint === "chat" ? "messages" : "prompt";
    if (promptLength >= maxModelLen) {
      throw new ApiError(400, `This model's maximum context length is ${maxModelLen} tokens. However, your ${param} resulted in ${promptLength} tokens. Please reduce the length of the ${param}.`, {
        param,
        code: "context_length_exceeded",
      });
    }
    const params = generationParams(req.body, maxModelLen - promptLength);
    const requested = requestedMaxTokens(req.body);
    if (requested != null && promptLength + requested > maxModelLen) {
      throw new ApiError(
        400,
        `This model's maximum context length is ${maxModelLen} tokens. However, you requested ${promptLength + requested} tokens (${promptLength} in the ${param}, ${requested} in the completion). Please reduce the length of the ${param} or completion.`,
        { param, code: "context_length_exceeded" },
      );
    }
    return params;
  }

  /**
   * Lets a lower tier with a remote part bring the blocks the GPU lacks up to where the scheduler
   * looks (sim-tier.ts), before the request is queued. Returns the prompt's block hashes, so the
   * core does not compute them again.
   */
  private async prefetch(req: EngineRequest, tokens: number[]): Promise<Float64Array | undefined> {
    const tier = this.lowerTier;
    if (!tier?.prefetch || !this.config.enablePrefixCaching) return undefined;
    const bs = this.config.blockSize;
    const hashes = blockHashes(tokens, bs, undefined, 0, namespaceSeed(req.cacheNamespace));
    // As the scheduler does: the last prompt token is always computed (it gives the first token's logits).
    const usable = Math.min(hashes.length, Math.floor((tokens.length - 1) / bs));
    const onGpu = this.core.cachedPrefixTokens(tokens, hashes) / bs;
    if (onGpu < usable) await tier.prefetch(hashes, onGpu, usable, req.signal);
    return hashes;
  }

  /** Submits to the core and turns its callbacks into GenerationEvents; the request ends however the stream does. */
  private generate(req: EngineRequest, tokens: number[], params: GenerationParams, hashes?: Float64Array): AsyncIterable<GenerationEvent> {
    const core = this.core;
    let simReq: SimRequest | undefined;
    const abort = () => {
      if (simReq) core.cancel(simReq, "abort");
    };
    const channel = new EventChannel<GenerationEvent>(() => {
      req.signal.removeEventListener("abort", abort);
      abort(); // body cancelled or client gone: stop generating, free the blocks
    });
    const stops = params.stop.length > 0 ? new StopMatcher(params.stop) : undefined;
    let started = false;
    let stoppedByString = false;
    let uncounted = 0;
    const start = (r: SimRequest) => {
      if (started) return;
      started = true;
      channel.push({ type: "start", promptTokens: r.promptTokens, cachedTokens: Math.max(0, r.cachedTokens) });
    };
    simReq = core.submit({
      id: req.requestId,
      promptTokens: tokens,
      ...(hashes ? { blockHashes: hashes } : {}),
      ...(req.cacheNamespace ? { cacheNamespace: req.cacheNamespace } : {}),
      ...(req.priority !== undefined ? { priority: req.priority } : {}),
      maxTokens: params.maxTokens,
      minTokens: params.minTokens,
      ignoreEos: params.ignoreEos,
      seed: params.seed ?? (params.temperature === 0 ? promptSeed(tokens) : undefined),
      textStyle: req.endpoint === "chat" ? "chat" : "completion",
      observer: {
        onToken: (r, text) => {
          start(r);
          uncounted++;
          if (!stops) {
            channel.push({ type: "delta", text, tokens: uncounted });
            uncounted = 0;
            return;
          }
          const scan = stops.push(text, r.output >= params.minTokens);
          if (scan.text || scan.stopped) {
            channel.push({ type: "delta", text: scan.text, tokens: uncounted });
            uncounted = 0;
          }
          if (scan.stopped) {
            stoppedByString = true;
            core.cancel(r, "stop");
          }
        },
        onFinish: (r, reason: FinishReason) => {
          req.signal.removeEventListener("abort", abort);
          if (reason !== "abort") start(r);
          const tail = stops && !stoppedByString ? stops.flush() : "";
          if (tail || uncounted > 0) channel.push({ type: "delta", text: tail, tokens: uncounted });
          channel.push({ type: "end", finishReason: reason });
          channel.close();
        },
      },
    });
    if (req.signal.aborted) abort();
    else req.signal.addEventListener("abort", abort, { once: true });
    return channel;
  }
}

export function createSimEngine(config: SimEngineConfigInput, opts: SimEngineOptions = {}): SimEngine {
  return new SimEngine(config, opts);
}
