/**
 * The emulated engine: vLLM V1's engine-core loop over a Clock. Each iteration the scheduler picks a
 * batch, the cost model says how long its forward pass takes, and when that time has passed every
 * sequence that finished its prompt gets one token. Works the same on a RealClock (HTTP server,
 * agent adapter) and on a VirtualClock (discrete-event studies with many engines on one clock).
 *
 * On a RealClock a timer may fire late; the engine keeps its own timeline (the next step starts when
 * the previous one was due to end, not when its timer fired), so throughput and every reported time
 * stay exact in model time, and requests that arrived after a step's planned start wait for the next.
 *
 * @example
 * ```ts
 * const clock = new VirtualClock();
 * const core = new EngineCore({ clock, kvCapacityTokens: 400_000 });
 * core.submit({ promptTokens: simTokenizer.encode("Hello"), maxTokens: 16, observer: { onFinish: (r) => console.log(r.finishedMs) } });
 * clock.run();
 * ```
 */
import { h100Llama3Calibration, type Calibration } from "./calibration";
import type { Clock, Timer } from "./clock";
import { CostModel } from "./cost-model";
import { blockHashes, hashBlock, KvCache, namespaceSeed, type KvEventBatch, type KvLowerTier } from "./kv-cache";
import { SimMetrics } from "./metrics";
import { FINISHED, LOADING, RUNNING, Scheduler, SimRequest, StepBatch, WAITING, type FinishReason, type PriorityPrefill, type SchedulerLimits, type SchedulingPolicy, type SimRequestObserver } from "./scheduler";
import { OutputTextGenerator, randomOf, type TextStyle } from "./text-generator";
import { EOT_TOKEN } from "./tokenizer";

/** How long the model's answers are when nothing else stops them (EOS position, EOS included). */
export type EosDistribution =
  | { kind: "lognormal"; median: number; sigma: number }
  | { kind: "exponential"; mean: number }
  | { kind: "fixed"; tokens: number }
  /** Never samples EOS: every request runs to max_tokens. */
  | { kind: "never" };

export const DEFAULT_EOS: EosDistribution = { kind: "lognormal", median: 180, sigma: 0.9 };

export interface EngineCoreOptions {
  clock: Clock;
  /** Model name (metrics label). */
  modelName?: string;
  /** Measured costs; default the bundled H100 / Llama-3-8B calibration. */
  calibration?: Calibration;
  /** KV memory in tokens; rounded down to whole blocks. */
  kvCapacityTokens: number;
  blockSize?: number;
  maxNumSeqs?: number;
  maxNumBatchedTokens?: number;
  /** vLLM's `--scheduling-policy` (default fcfs). */
  schedulingPolicy?: SchedulingPolicy;
  /** vLLM's `--long-prefill-token-threshold` (0: off). */
  longPrefillTokenThreshold?: number;
  /** Switchyard's prioritised-prefill extension (scheduler.ts). */
  priorityPrefill?: PriorityPrefill;
  /** Longest prompt + completion (capped by the KV capacity). Default 8192 (Llama-3-8B). */
  maxModelLen?: number;
  enablePrefixCaching?: boolean;
  /** KV bytes per token (lower-tier transfer sizes). Default 131072 (Llama-3-8B, bf16). */
  kvBytesPerToken?: number;
  seed?: number;
  eos?: EosDistribution;
  lowerTier?: KvLowerTier;
  /** Host time added to every step (scheduling, sampling); default 0: the calibration is GPU time. */
  stepOverheadMs?: number;
  /** Wall-clock ms at model time 0, for KV event timestamps. Default 0. */
  epochMs?: number;
  /** For vllm:cache_config_info only. */
  gpuMemoryUtilization?: number;
}

export interface SubmitOptions {
  /** Name for `cancel(id)`; also the key of `get(id)`. */
  id?: string;
  promptTokens: ArrayLike<number>;
  /**
   * Cache namespace (vLLM's `cache_salt`; Switchyard's `t:<tenant>:<model>` or `m:<model>`): the
   * request reuses cached blocks only of its own namespace. Absent or "": the shared default one.
   */
  cacheNamespace?: string;
  /**
   * Precomputed `blockHashes(promptTokens, blockSize, undefined, 0, namespaceSeed(cacheNamespace))`,
   * to save hashing a prompt twice. Hashes whose first block does not match the namespace's chain
   * are ignored (the prompt is hashed again), so a stale precomputation cannot cross namespaces.
   */
  blockHashes?: Float64Array;
  maxTokens: number;
  minTokens?: number;
  ignoreEos?: boolean;
  /** The answer length the model "wants" (EOS position, EOS included); default drawn from `eos`. */
  outputTokens?: number;
  /** Seeds this request's answer length and words; default the submission order. */
  seed?: number;
  /** "chat": the answer starts with a capital word; "completion": with a space (continuing a text). */
  textStyle?: TextStyle;
  observer?: SimRequestObserver;
  /** Anything the caller wants back on the request (`req.tag`), e.g. its index in a study. */
  tag?: unknown;
  /**
   * vLLM's request `priority`: with `schedulingPolicy: "priority"` a smaller value is scheduled
   * first (default 0). Switchyard's agents send 0 for the edge's `high` requests and 1 otherwise.
   */
  priority?: number;
}

export interface CoreLoad {
  running: number;
  waiting: number;
  kvUsage: number;
  kvCapacityTokens: number;
  /** Cached tokens evicted from GPU memory since the cache epoch began. */
  kvEvictedTokens: number;
  /** Changes when the prefix cache is emptied (`resetPrefixCache`) or the engine is created anew. */
  kvEpoch: string;
}

let epochCounter = 0;

/** A request the engine cannot take (vLLM answers 400). */
export class SimRequestError extends Error {
  constructor(
    message: string,
    readonly code: "context_length_exceeded" | "invalid_value",
    readonly param: string,
  ) {
    super(message);
    this.name = "SimRequestError";
  }
}

export type KvEventListener = (batch: KvEventBatch) => void;

/** One engine iteration, for traces and tests. */
export interface StepInfo {
  startMs: number;
  durationMs: number;
  /** New tokens computed (prefill chunks + one per decoding sequence). */
  tokens: number;
  prefillSeqs: number;
  decodeSeqs: number;
  /** Running and waiting requests after scheduling. */
  running: number;
  waiting: number;
}
export type StepListener = (step: StepInfo) => void;

function mix32(a: number, b: number): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ b;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  return (h ^ (h >>> 16)) | 0;
}

export class EngineCore {
  readonly clock: Clock;
  readonly modelName: string;
  readonly cost: CostModel;
  readonly kv: KvCache;
  readonly scheduler: Scheduler;
  readonly metrics: SimMetrics;
  readonly blockSize: number;
  readonly maxModelLen: number;
  readonly kvBytesPerToken: number;
  /** Engine iterations run so far. */
  steps = 0;
  /** Model time spent computing steps. */
  busyMs = 0;

  private readonly seed: number;
  private readonly eos: EosDistribution;
  private readonly stepOverheadMs: number;
  private readonly epochMs: number;
  private readonly gpuMemoryUtilization: number;
  private readonly batch = new StepBatch();
  private readonly byId = new Map<string, SimRequest>();
  private readonly listeners = new Set<KvEventListener>();
  private readonly stepListeners = new Set<StepListener>();
  private lastPrefillSeqs = 0;
  private lastDecodeSeqs = 0;
  private readonly newlyScheduled: SimRequest[] = [];
  private seq = 0;
  private busy = false;
  private inStep = false;
  private stopped = false;
  private timeline = Number.NEGATIVE_INFINITY;
  private stepEndMs = 0;
  private stepTimer: Timer | undefined;
  private wakeTimer: Timer | undefined;
  private h2dFreeAt = 0;
  private kvEpoch = "";
  private evictionsAtEpoch = 0;

  constructor(opts: EngineCoreOptions) {
    this.clock = opts.clock;
    this.modelName = opts.modelName ?? "sim";
    this.cost = new CostModel(opts.calibration ?? h100Llama3Calibration());
    this.blockSize = opts.blockSize ?? 16;
    const numBlocks = Math.floor(opts.kvCapacityTokens / this.blockSize);
    if (numBlocks < 1) throw new RangeError(`kvCapacityTokens (${opts.kvCapacityTokens}) holds no block of ${this.blockSize} tokens`);
    this.kv = new KvCache({ numBlocks, blockSize: this.blockSize, enablePrefixCaching: opts.enablePrefixCaching ?? true, lowerTier: opts.lowerTier });
    this.maxModelLen = Math.min(opts.maxModelLen ?? 8192, numBlocks * this.blockSize);
    this.kvBytesPerToken = opts.kvBytesPerToken ?? 131072;
    this.seed = opts.seed ?? 0;
    this.eos = opts.eos ?? DEFAULT_EOS;
    this.stepOverheadMs = opts.stepOverheadMs ?? 0;
    this.epochMs = opts.epochMs ?? 0;
    this.gpuMemoryUtilization = opts.gpuMemoryUtilization ?? 0.9;
    this.metrics = new SimMetrics(this.modelName, this.maxModelLen);
    this.newEpoch();
    const limits: SchedulerLimits = {
      maxNumSeqs: opts.maxNumSeqs ?? 256,
      maxNumBatchedTokens: opts.maxNumBatchedTokens ?? 8192,
      policy: opts.schedulingPolicy ?? "fcfs",
      longPrefillTokenThreshold: opts.longPrefillTokenThreshold ?? 0,
      ...(opts.priorityPrefill ? { priorityPrefill: opts.priorityPrefill } : {}),
    };
    this.scheduler = new Scheduler(this.kv, limits, {
      preempted: () => {
        this.metrics.preemptions++;
      },
      admitted: (req, hitBlocks, lookedUp, atMs) => {
        if (lookedUp) this.countLookup(req, hitBlocks, 0);
        if (req.firstScheduledMs < 0) {
          req.firstScheduledMs = atMs;
          this.metrics.queueTime.observe((atMs - req.arrivalMs) / 1000);
          if (req.observer?.onScheduled) this.newlyScheduled.push(req);
        }
      },
      startLoad: (req, hitBlocks, tierBlocks, atMs) => this.startLoad(req, hitBlocks, tierBlocks, atMs),
    });
  }

  get kvCapacityTokens(): number {
    return this.kv.numBlocks * this.blockSize;
  }

  get numRunning(): number {
    return this.scheduler.running.length;
  }

  /** Waiting in the queue or loading a prefix from the lower tier. */
  get numWaiting(): number {
    return this.scheduler.numWaiting;
  }

  /** Nothing running, waiting or loading. */
  get idle(): boolean {
    return this.numRunning === 0 && this.numWaiting === 0;
  }

  load(): CoreLoad {
    return {
      running: this.numRunning,
      waiting: this.numWaiting,
      kvUsage: this.kv.usage(),
      kvCapacityTokens: this.kvCapacityTokens,
      kvEvictedTokens: (this.kv.evictions - this.evictionsAtEpoch) * this.blockSize,
      kvEpoch: this.kvEpoch,
    };
  }

  /**
   * Drops every cached prefix (vLLM's reset_prefix_cache: AllBlocksCleared) and starts a new cache
   * epoch; like vLLM, refuses (false) while requests hold blocks.
   */
  resetPrefixCache(): boolean {
    if (!this.kv.reset()) return false;
    this.newEpoch();
    this.flushEvents(Math.max(this.clock.now(), this.timeline));
    return true;
  }

  private newEpoch(): void {
    this.kvEpoch = `${this.modelName}-${Date.now().toString(36)}-${(epochCounter++).toString(36)}-${Math.floor(Math.random() * 2 ** 32).toString(36)}`;
    this.evictionsAtEpoch = this.kv.evictions;
  }

  /** A request by the id it was submitted with, while it is in the engine. */
  get(id: string): SimRequest | undefined {
    return this.byId.get(id);
  }

  /**
   * Prompt tokens a request with these tokens (or block hashes, computed in its namespace) would find
   * in the GPU prefix cache now; `cacheNamespace` is used when the hashes are not given.
   */
  cachedPrefixTokens(tokens: ArrayLike<number>, hashes?: ArrayLike<number>, cacheNamespace?: string): number {
    const h = hashes ?? blockHashes(tokens, this.blockSize, undefined, 0, namespaceSeed(cacheNamespace));
    const max = Math.min(h.length, Math.floor((tokens.length - 1) / this.blockSize));
    return this.kv.lookup(h, max) * this.blockSize;
  }

  /** Subscribes to KV events (one vLLM EventBatch per engine step that changed the cache). */
  onKvEvents(listener: KvEventListener): () => void {
    this.listeners.add(listener);
    this.kv.recordEvents = true;
    return () => {
      this.listeners.delete(listener);
      this.kv.recordEvents = this.listeners.size > 0;
    };
  }

  /** Subscribes to every engine iteration (start, duration, batch shape). */
  onStep(listener: StepListener): () => void {
    this.stepListeners.add(listener);
    return () => this.stepListeners.delete(listener);
  }

  /** Queues a request; throws SimRequestError for one vLLM would reject. */
  submit(opts: SubmitOptions): SimRequest {
    if (this.stopped) throw new Error("engine stopped");
    const promptLength = opts.promptTokens.length;
    const maxTokens = opts.maxTokens;
    const minTokens = opts.minTokens ?? 0;
    if (promptLength === 0) throw new SimRequestError("The prompt cannot be empty.", "invalid_value", "prompt");
    if (!(maxTokens >= 1)) throw new SimRequestError(`max_tokens must be at least 1, got ${maxTokens}.`, "invalid_value", "max_tokens");
    if (minTokens > maxTokens) throw new SimRequestError(`min_tokens (${minTokens}) must be less than or equal to max_tokens (${maxTokens}).`, "invalid_value", "min_tokens");
    if (promptLength + maxTokens > this.maxModelLen) {
      throw new SimRequestError(
        `This model's maximum context length is ${this.maxModelLen} tokens. However, you requested ${promptLength + maxTokens} tokens (${promptLength} in the messages, ${maxTokens} in the completion). Please reduce the length of the messages or completion.`,
        "context_length_exceeded",
        "messages",
      );
    }
    const hashSeed = namespaceSeed(opts.cacheNamespace);
    let hashes = opts.blockHashes;
    // One block's hash guards against hashes computed for another namespace (or block size).
    if (hashes && hashes.length > 0 && promptLength >= this.blockSize && hashes[0] !== hashBlock(hashSeed, opts.promptTokens, 0, this.blockSize)) hashes = undefined;
    const seq = this.seq++;
    const rng = mix32(this.seed, opts.seed ?? seq);
    const eosAt = opts.ignoreEos ? Number.POSITIVE_INFINITY : Math.max(opts.outputTokens ?? this.sampleLength(rng), minTokens + 1);
    const req = new SimRequest(
      opts.id,
      seq,
      opts.promptTokens,
      hashes,
      this.blockSize,
      hashSeed,
      maxTokens,
      minTokens,
      eosAt,
      this.clock.now(),
      new OutputTextGenerator(mix32(rng, 0x7e47), opts.textStyle ?? "chat"),
      opts.observer,
      opts.tag,
    );
    req.priority = opts.priority ?? 0;
    if (opts.id !== undefined) this.byId.set(opts.id, req);
    this.scheduler.enqueue(req);
    this.kick(req.arrivalMs);
    return req;
  }

  /** Ends a request now ("abort", or "stop" for a stop string the caller found); frees its blocks. */
  cancel(reqOrId: SimRequest | string, reason: Exclude<FinishReason, "length"> = "abort"): boolean {
    const req = typeof reqOrId === "string" ? this.byId.get(reqOrId) : reqOrId;
    if (!req || req.state === FINISHED) return false;
    this.finish(req, reason, Math.max(this.clock.now(), req.lastTokenMs));
    if (reason === "abort") this.kick(this.clock.now()); // freed memory may admit a waiting request
    return true;
  }

  /** Stops the loop and aborts everything in flight. */
  stop(): void {
    if (this.stopped) return;
    const now = this.clock.now();
    for (const req of [...this.scheduler.running]) this.finish(req, "abort", now);
    for (let r = this.scheduler.waiting.shift(); r; r = this.scheduler.waiting.shift()) if (r.state !== FINISHED) this.finish(r, "abort", now);
    for (const req of [...this.byId.values()]) if (req.state !== FINISHED) this.finish(req, "abort", now);
    this.stopped = true;
    if (this.stepTimer) this.clock.cancel(this.stepTimer);
    if (this.wakeTimer) this.clock.cancel(this.wakeTimer);
    this.stepTimer = this.wakeTimer = undefined;
    this.busy = false;
  }

  /** vLLM's /metrics text. */
  renderMetrics(): string {
    return this.metrics.render({
      running: this.numRunning,
      waiting: this.numWaiting,
      kvUsage: this.kv.usage(),
      cacheConfig: {
        block_size: this.blockSize,
        cache_dtype: "auto",
        enable_prefix_caching: this.kv.enablePrefixCaching ? "True" : "False",
        gpu_memory_utilization: this.gpuMemoryUtilization,
        num_gpu_blocks: this.kv.numBlocks,
        num_cpu_blocks: "None",
        prefix_caching_hash_algo: "sim52",
      },
    });
  }

  // --- the loop ---

  private kick(atMs: number): void {
    if (this.busy || this.inStep || this.stopped) return;
    if (this.wakeTimer) {
      this.clock.cancel(this.wakeTimer);
      this.wakeTimer = undefined;
    }
    this.runStep(Math.max(atMs, this.timeline));
  }

  private runStep(at: number): void {
    const batch = this.batch;
    batch.clear();
    this.inStep = true;
    let preempted = this.scheduler.schedule(at, batch);
    // Preempting every running request admits nothing in that pass (vLLM's rule); schedule again.
    if (batch.size === 0 && preempted) preempted = this.scheduler.schedule(at, batch);
    this.inStep = false;
    this.flushEvents(at);
    if (this.newlyScheduled.length > 0) {
      for (const req of this.newlyScheduled) req.observer?.onScheduled?.(req, at);
      this.newlyScheduled.length = 0;
    }
    if (batch.size === 0) {
      this.timeline = at;
      this.wakeForArrival(at);
      return;
    }
    const dt = this.stepMs(batch) + this.stepOverheadMs;
    this.metrics.iterationTokens.observe(batch.totalTokens);
    this.steps++;
    this.busyMs += dt;
    this.busy = true;
    this.stepEndMs = at + dt;
    this.stepTimer = this.clock.schedule(this.stepEndMs, this.onStepEnd);
    if (this.stepListeners.size > 0) {
      const info: StepInfo = {
        startMs: at,
        durationMs: dt,
        tokens: batch.totalTokens,
        prefillSeqs: this.lastPrefillSeqs,
        decodeSeqs: this.lastDecodeSeqs,
        running: this.numRunning,
        waiting: this.numWaiting,
      };
      for (const listener of this.stepListeners) listener(info);
    }
  }

  /** On a RealClock a request may be queued with an arrival after the step's planned start. */
  private wakeForArrival(at: number): void {
    const waiting = this.scheduler.waiting;
    let head = waiting.peek();
    while (head && head.state !== WAITING) {
      waiting.shift();
      head = waiting.peek();
    }
    if (!head || head.arrivalMs <= at) return;
    const when = head.arrivalMs;
    this.wakeTimer = this.clock.schedule(when, () => {
      this.wakeTimer = undefined;
      this.kick(when);
    });
  }

  private stepMs(batch: StepBatch): number {
    const cost = this.cost;
    let prefillSeqs = 0;
    let prefillMs = 0;
    let decodeSeqs = 0;
    let decodeContext = 0;
    for (let i = 0; i < batch.size; i++) {
      const req = batch.reqs[i] as SimRequest;
      const n = batch.tokens[i] as number;
      const context = batch.context[i] as number;
      if (n === 1 && req.output > 0 && context === req.numTokens - 1) {
        decodeSeqs++;
        decodeContext += context + 1;
      } else {
        prefillSeqs++;
        prefillMs += cost.prefillSequenceMs(n, context);
      }
    }
    this.lastPrefillSeqs = prefillSeqs;
    this.lastDecodeSeqs = decodeSeqs;
    return cost.stepMs(batch.totalTokens, prefillSeqs, prefillMs, decodeSeqs, decodeContext);
  }

  private readonly onStepEnd = (): void => {
    const at = this.stepEndMs;
    this.stepTimer = undefined;
    this.busy = false;
    this.timeline = at;
    const batch = this.batch;
    this.inStep = true;
    for (let i = 0; i < batch.size; i++) {
      const req = batch.reqs[i] as SimRequest;
      if (req.state !== RUNNING) continue; // aborted during the step
      req.computed += batch.tokens[i] as number;
      if (req.computed >= req.numTokens) this.emitToken(req, at);
    }
    this.inStep = false;
    const running = this.scheduler.running;
    let kept = 0;
    for (let i = 0; i < running.length; i++) {
      const req = running[i] as SimRequest;
      if (req.state === RUNNING) running[kept++] = req;
    }
    running.length = kept;
    if (!this.stopped) this.runStep(at);
  };

  private emitToken(req: SimRequest, at: number): void {
    const m = this.metrics;
    const position = req.output + 1;
    const eos = position >= req.eosAt;
    let text = "";
    if (eos) req.appendToken(EOT_TOKEN);
    else {
      req.appendToken(req.gen.next());
      text = req.gen.text;
    }
    req.output = position;
    m.generationTokens++;
    const observer = req.observer;
    if (req.firstTokenMs < 0) {
      req.firstTokenMs = at;
      m.promptTokens += req.numTokens - position;
      m.timeToFirstToken.observe((at - req.arrivalMs) / 1000);
      observer?.onFirstToken?.(req, at);
    } else m.interTokenLatency.observe((at - req.lastTokenMs) / 1000);
    req.lastTokenMs = at;
    observer?.onToken?.(req, text, at);
    if (req.state !== RUNNING) return; // the observer cancelled it (a stop string)
    if (eos) this.finish(req, "stop", at);
    else if (position >= req.maxTokens) this.finish(req, "length", at);
  }

  private finish(req: SimRequest, reason: FinishReason, at: number): void {
    const state = req.state;
    if (state === FINISHED) return;
    if (state === RUNNING) {
      if (!this.inStep) {
        const running = this.scheduler.running;
        const i = running.indexOf(req);
        if (i >= 0) running.splice(i, 1);
      }
    } else this.scheduler.numWaiting--; // waiting ones are skipped when the queue reaches them
    req.state = FINISHED;
    req.finishReason = reason;
    req.finishedMs = at;
    this.kv.release(req.blocks);
    req.blocks.length = 0;
    if (req.id !== undefined) this.byId.delete(req.id);
    const m = this.metrics;
    m.success[reason]++;
    m.e2eLatency.observe((at - req.arrivalMs) / 1000);
    m.requestPromptTokens.observe(req.promptTokens);
    m.requestGenerationTokens.observe(req.output);
    if (req.firstScheduledMs >= 0) {
      m.inferenceTime.observe((at - req.firstScheduledMs) / 1000);
      if (req.firstTokenMs >= 0) {
        m.prefillTime.observe((req.firstTokenMs - req.firstScheduledMs) / 1000);
        m.decodeTime.observe((at - req.firstTokenMs) / 1000);
      }
    }
    req.observer?.onFinish?.(req, reason, at);
  }

  // --- lower tier ---

  private countLookup(req: SimRequest, hitBlocks: number, tierBlocks: number): void {
    const m = this.metrics;
    const bs = this.blockSize;
    m.prefixCacheQueries += req.numTokens;
    m.prefixCacheHits += hitBlocks * bs;
    if (this.kv.lowerTier) {
      m.externalPrefixCacheQueries += req.numTokens - hitBlocks * bs;
      m.externalPrefixCacheHits += tierBlocks * bs;
    }
    if (req.cachedTokens < 0) {
      req.cachedTokens = (hitBlocks + tierBlocks) * bs;
      req.tierTokens = tierBlocks * bs;
    }
  }

  private startLoad(req: SimRequest, hitBlocks: number, tierBlocks: number, at: number): void {
    this.countLookup(req, hitBlocks, tierBlocks);
    const fetched = this.kv.lowerTier?.fetch?.(req.hashes, hitBlocks, tierBlocks, at);
    const h2dBlocks = fetched ? Math.max(0, Math.min(tierBlocks, fetched.h2dBlocks)) : tierBlocks;
    let done = fetched ? Math.max(at, fetched.readyMs) : at;
    if (h2dBlocks > 0) {
      const start = Math.max(at, this.h2dFreeAt);
      this.h2dFreeAt = start + this.cost.h2dMs(h2dBlocks * this.blockSize * this.kvBytesPerToken); // one host→GPU link: loads queue behind each other
      done = Math.max(done, this.h2dFreeAt);
    }
    this.clock.schedule(done, () => {
      if (req.state !== LOADING || this.stopped) return; // aborted meanwhile (blocks already freed)
      this.scheduler.loaded(req, hitBlocks + tierBlocks);
      this.flushEvents(done);
      this.kick(done);
    });
  }

  private flushEvents(at: number): void {
    if (this.listeners.size === 0) return;
    const events = this.kv.takeEvents();
    if (events.length === 0) return;
    const batch: KvEventBatch = { ts: (this.epochMs + at) / 1000, events, data_parallel_rank: null };
    for (const listener of this.listeners) listener(batch);
  }

  private sampleLength(rng: number): number {
    const eos = this.eos;
    const u1 = randomOf(rng);
    switch (eos.kind) {
      case "never":
        return Number.POSITIVE_INFINITY;
      case "fixed":
        return Math.max(1, Math.round(eos.tokens));
      case "exponential":
        return Math.max(1, Math.round(-eos.mean * Math.log(1 - u1)));
      case "lognormal": {
        const u2 = randomOf(mix32(rng, 0x51ed));
        const z = Math.sqrt(-2 * Math.log(1 - u1)) * Math.cos(2 * Math.PI * u2);
        return Math.max(1, Math.round(eos.median * Math.exp(eos.sigma * z)));
      }
    }
  }
}
