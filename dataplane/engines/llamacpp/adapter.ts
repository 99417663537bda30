/**
 * The embedded llama.cpp engine: node-llama-cpp in-process, one context with `sequences` parallel
 * slots whose decode steps node-llama-cpp batches together, and prefix KV reuse across requests.
 *
 * @example
 * ```ts
 * const engine = createLlamaCppEngine({ kind: "llamacpp", model: "tiny" }); // generates a tiny model
 * await engine.start();
 * const res = await engine.handle({ requestId, endpoint: "chat", body, rawBody, signal });
 * ```
 */
import { resolve } from "node:path";
import { randomInt } from "node:crypto";
import { TokenBias, type LlamaContext, type LlamaModel, type Token } from "node-llama-cpp";
import type { EngineAdapter, EngineLoad, EngineRequest } from "../engine";
import { generationParams, renderGeneration, type FinishReason, type GenerationEvent, type GenerationParams } from "../generation";
import type { ChatCompletionRequest, CompletionRequest } from "../../../protocol/openai-request";
import { requestedMaxTokens } from "../../../protocol/openai-request";
import { ApiError } from "../../../protocol/openai-error";
import { llamaCppEngineConfigSchema, type LlamaCppEngineConfig, type LlamaCppEngineConfigInput } from "./config";
import { endOfGenerationTokens, modelVocabSize, PromptRenderer, type RenderedPrompt } from "./prompt";
import { getLlamaRuntime } from "./runtime";
import { PoolClosedError, SequencePool, type PoolSlot } from "./sequence-pool";
import { IncrementalDetokenizer, StopMatcher } from "./text-stream";
import { ensureTinyModel } from "./tiny-llama";
import type { EngineKvTiers } from "../../kvcache/agent-tiers";
import type { Logger } from "../../lib/log";
import { LlamaCppKvTiers } from "./kv-tiers";

interface Loaded {
  model: LlamaModel;
  context: LlamaContext;
  pool: SequencePool;
  renderer: PromptRenderer;
  /** Model end-of-generation tokens. */
  eogTokens: ReadonlySet<Token>;
  /** Bias that forbids every end-of-turn token (ignore_eos, min_tokens). */
  suppressEndBias: TokenBias;
  noBias: TokenBias;
}

/** A generation job: what `generate` needs once the request has been validated. */
interface Job {
  prompt: RenderedPrompt;
  params: GenerationParams;
  signal: AbortSignal;
  /** Cache namespace (tenant) of the prompt: slots are reused only within one. */
  namespace: string;
}

export interface LlamaCppEngineOptions {
  /** The agent's KV tiers: sequences are saved to them and prompts restored from them (kv-tiers.ts). */
  kvTiers?: EngineKvTiers;
  /** The engine's log (one `generation_done` line per request); none when absent. */
  log?: Logger;
}

export class LlamaCppEngine implements EngineAdapter {
  readonly kind = "llamacpp";
  readonly model: string;
  readonly maxConcurrency: number;
  readonly config: LlamaCppEngineConfig;
  /** Changes every time the engine starts: its cache starts empty. */
  private epoch = "";
  private loaded: Loaded | undefined;
  private starting: Promise<void> | undefined;
  private stopping = false;
  private failed = false;
  private readonly kv: LlamaCppKvTiers | undefined;
  private readonly log: Logger | undefined;

  constructor(config: LlamaCppEngineConfigInput, opts: LlamaCppEngineOptions = {}) {
    this.log = opts.log;
    this.config = llamaCppEngineConfigSchema.parse(config);
    this.model = this.config.model;
    this.maxConcurrency = this.config.sequences;
    this.kv = opts.kvTiers ? new LlamaCppKvTiers(opts.kvTiers) : undefined;
  }

  /** The KV-tier bridge when the agent gave tiers and they work with this model (after `start()`). */
  get kvTiers(): LlamaCppKvTiers | undefined {
    return this.kv?.enabled ? this.kv : undefined;
  }

  /** Path of the GGUF being served (after `start()`). */
  get modelPath(): string | undefined {
    return this.loaded?.model.filename;
  }

  /** Name of the chat format in use (e.g. "General", "Llama 3.1", "JinjaTemplate"). */
  get chatFormat(): string | undefined {
    return this.loaded?.renderer.chatFormat;
  }

  /** The sequence pool (for KV-tier hooks and tests); undefined before `start()`. */
  get pool(): SequencePool | undefined {
    return this.loaded?.pool;
  }

  /** Tokenizes text the way a completions prompt is (no BOS); for tools and tests. */
  tokenize(text: string): Token[] {
    if (!this.loaded) throw new Error("engine not started");
    return this.loaded.model.tokenize(text, true);
  }

  start(): Promise<void> {
    this.starting ??= this.loadModel().catch((err) => {
      this.failed = true;
      throw err;
    });
    return this.starting;
  }

  private async loadModel(): Promise<void> {
    const { config } = this;
    const llama = await getLlamaRuntime({ gpu: config.gpu, maxThreads: config.threads });
    const modelPath = config.modelPath
      ? resolve(config.modelPath)
      : await ensureTinyModel(config.generatedModelDir, { nCtx: Math.max(4096, config.contextSize) });
    const model = await llama.loadModel({ modelPath });
    let context: LlamaContext;
    try {
      // contextSize is per sequence: node-llama-cpp allocates contextSize × sequences cells.
      context = await model.createContext({
        contextSize: config.contextSize,
        sequences: config.sequences,
        threads: config.threads,
        failedCreationRemedy: false,
      });
    } catch (err) {
      await model.dispose();
      throw err;
    }
    context.onDispose.createListener(() => {
      if (!this.stopping) this.failed = true;
    });
    const sequences = Array.from({ length: config.sequences }, () => context.getSequence());
    const kv = this.kv;
    if (kv) {
      const probeToken = model.tokens.bos ?? model.tokenize(" ", true)[0] ?? (0 as Token);
      await kv.init(sequences[0] as (typeof sequences)[number], modelPath, probeToken);
    }
    const vocabSize = modelVocabSize(model);
    // The generated model has no template, and its file name would make node-llama-cpp guess Llama 2's format.
    const renderer = new PromptRenderer(model, { chatFormat: config.modelPath ? "auto" : "general" });
    const eog = endOfGenerationTokens(model, vocabSize);
    this.epoch = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
    this.loaded = {
      model,
      context,
      pool: new SequencePool(sequences, kv?.enabled ? { beforeDrop: (slot) => kv.saveSlot(slot) } : {}),
      renderer,
      eogTokens: new Set(eog),
      suppressEndBias: forbidTokens(model, eog),
      noBias: new TokenBias(model.tokenizer),
    };
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const loaded = this.loaded;
    this.loaded = undefined;
    if (!loaded) return;
    loaded.pool.close();
    // Saves in flight read the context: let them land before it goes.
    await this.kv?.close();
    await loaded.context.dispose();
    await loaded.model.dispose();
  }

  load(): EngineLoad {
    const capacity = this.config.contextSize * this.config.sequences;
    const pool = this.loaded?.pool;
    return {
      healthy: this.loaded !== undefined && !this.failed && !this.stopping,
      running: pool?.running ?? 0,
      waiting: pool?.waiting ?? 0,
      kvUsage: pool ? Math.min(1, pool.cachedTokens() / capacity) : 0,
      kvCapacityTokens: capacity,
      kvEvictedTokens: pool?.evictedTokens ?? 0,
      kvEpoch: this.epoch,
    };
  }

  async handle(req: EngineRequest): Promise<Response> {
    try {
      const loaded = this.loaded;
      if (!loaded || this.failed) throw new ApiError(503, "The llama.cpp engine is not running.", { code: "engine_unavailable" });
      const prompt =
        req.endpoint === "chat"
          ? loaded.renderer.chat((req.body as ChatCompletionRequest).messages)
          : loaded.renderer.completion((req.body as CompletionRequest).prompt);
      const params = this.resolveParams(req, prompt.tokens.length);
      const controller = new AbortController();
      const abort = () => controller.abort(req.signal.reason);
      if (req.signal.aborted) abort();
      else req.signal.addEventListener("abort", abort, { once: true });
      return await renderGeneration({
        endpoint: req.endpoint,
        model: this.model,
        requestId: req.requestId,
        params,
        ...(this.log ? { log: this.log } : {}),
        events: this.generate(loaded, { prompt, params, signal: controller.signal, namespace: req.cacheNamespace ?? "" }),
        onClose: () => {
          req.signal.removeEventListener("abort", abort);
          controller.abort(); // client gone or body cancelled: stop generating, free the slot
        },
      });
    } catch (err) {
      if (err instanceof ApiError) return err.toResponse();
      return new ApiError(500, err instanceof Error ? err.message : String(err), { code: "engine_error" }).toResponse();
    }
  }

  /** Normalised sampling settings, with max_tokens fitted to (and checked against) the context. */
  private resolveParams(req: EngineRequest, promptTokens: number): GenerationParams {
    const contextSize = this.config.contextSize;
    const params = generationParams(req.body, this.config.defaultMaxTokens);
    const requested = requestedMaxTokens(req.body);
    if (promptTokens >= contextSize || (requested != null && promptTokens + requested > contextSize)) {
      const param = req.endpoint === "chat" ? "messages" : "prompt";
      const asked =
        requested != null
          ? `you requested ${promptTokens + requested} tokens (${promptTokens} in the ${param}, ${requested} in the completion)`
          : `your ${param} resulted in ${promptTokens} tokens`;
      throw new ApiError(400, `This model's maximum context length is ${contextSize} tokens. However, ${asked}. Please reduce the length of the ${param} or completion.`, {
        param,
        code: "context_length_exceeded",
      });
    }
    const maxTokens = requested ?? Math.min(this.config.defaultMaxTokens, contextSize - promptTokens);
    if (params.minTokens > maxTokens) {
      throw new ApiError(400, `min_tokens (${params.minTokens}) must be less than or equal to max_tokens (${maxTokens}).`, { param: "min_tokens", code: "invalid_value" });
    }
    return { ...params, maxTokens };
  }

  /** Runs one request on a slot and yields its events; the slot is freed however this ends. */
  private async *generate(loaded: Loaded, job: Job): AsyncGenerator<GenerationEvent> {
    const { prompt, params, signal, namespace } = job;
    let slot: PoolSlot;
    try {
      slot = await loaded.pool.acquire(prompt.tokens, signal, namespace);
    } catch (err) {
      if (signal.aborted) {
        yield { type: "end", finishReason: "abort" };
        return;
      }
      if (err instanceof PoolClosedError) throw new ApiError(503, err.message, { code: "engine_unavailable" });
      throw err;
    }
    let tokens: AsyncGenerator<Token, void, void | Token | Token[]> | undefined;
    try {
      let cachedTokens = await loaded.pool.prepare(slot, prompt.tokens, namespace);
      const kv = this.kvTiers;
      if (kv) cachedTokens = await kv.restore(slot, prompt.tokens, namespace, cachedTokens, (file) => loaded.pool.loadState(slot, file), signal);
      yield { type: "start", promptTokens: prompt.tokens.length, cachedTokens };

      const { model } = loaded;
      const endTokens = new Set([...loaded.eogTokens, ...prompt.stopTokens]);
      const suppressEnd = prompt.stopTokens.length > 0 ? forbidTokens(model, [...endTokens]) : loaded.suppressEndBias;
      const stops = new StopMatcher(params.ignoreEos ? params.stop : [...params.stop, ...prompt.stopTexts]);
      const detokenizer = new IncrementalDetokenizer(
        (toks, last) => model.detokenize(toks as Token[], false, last as Token[]),
        prompt.tokens,
      );
      let generated = 0;
      let uncounted = 0; // tokens not yet reported in a delta
      const endAllowed = () => !params.ignoreEos && generated >= params.minTokens;
      tokens = slot.sequence.evaluate(prompt.tokens.slice(cachedTokens), {
        temperature: params.temperature,
        topP: params.topP,
        topK: 0,
        minP: 0,
        seed: samplingSeed(params.seed),
        tokenBias: () => (endAllowed() ? loaded.noBias : suppressEnd),
        yieldEogToken: true,
      });

      let finish: FinishReason = "length";
      let stoppedByString = false;
      while (generated < params.maxTokens) {
        if (signal.aborted) {
          finish = "abort";
          break;
        }
        const next = await tokens.next();
        if (signal.aborted) {
          finish = "abort";
          break;
        }
        if (next.done) {
          finish = "stop";
          break;
        }
        const token = next.value;
        generated++;
        uncounted++;
        if (endTokens.has(token)) {
          // Suppressed end tokens cannot be sampled; should one slip through, end the turn anyway.
          finish = "stop";
          break;
        }
        const piece = detokenizer.push(token);
        if (!piece) continue;
        const scan = stops.push(piece.text, generated >= params.minTokens);
        if (scan.text) {
          yield { type: "delta", text: scan.text, tokens: uncounted };
          uncounted = 0;
        }
        if (scan.stopped) {
          finish = "stop";
          stoppedByString = true;
          break;
        }
      }
      if (finish === "abort") {
        yield { type: "end", finishReason: "abort" };
        return;
      }
      let tail = "";
      if (!stoppedByString) {
        const scan = stops.push(detokenizer.flush()?.text ?? "", generated >= params.minTokens);
        tail = scan.text + (scan.stopped ? "" : stops.flush());
        if (scan.stopped) finish = "stop";
      }
      if (tail || uncounted > 0) yield { type: "delta", text: tail, tokens: uncounted };
      yield { type: "end", finishReason: finish };
    } finally {
      try {
        await tokens?.return();
      } catch {
        // the context may be disposed (engine stopping); nothing left to free
      }
      // With tiers the slot stays held while its new chunks are saved, after the response has ended.
      const kv = this.kvTiers;
      if (kv) kv.saveThen(slot, () => loaded.pool.release(slot));
      else loaded.pool.release(slot);
    }
  }
}

/** A TokenBias that forbids `tokens`. node-llama-cpp's `set()` ignores end-of-generation tokens, so set them directly. */
function forbidTokens(model: LlamaModel, tokens: readonly Token[]): TokenBias {
  const bias = new TokenBias(model.tokenizer);
  const biases = (bias as unknown as { _biases?: unknown })._biases;
  if (!(biases instanceof Map)) throw new Error("Unsupported node-llama-cpp version: TokenBias has no bias map, cannot honour ignore_eos/min_tokens.");
  for (const t of tokens) biases.set(t, -Infinity);
  return bias;
}

/** llama.cpp seeds are u32; without a seed each request gets a fresh one. */
function samplingSeed(seed: number | undefined): number {
  if (seed == null) return randomInt(0, 2 ** 32);
  return ((seed % 2 ** 32) + 2 ** 32) % 2 ** 32;
}

export function createLlamaCppEngine(config: LlamaCppEngineConfigInput, opts: LlamaCppEngineOptions = {}): LlamaCppEngine {
  return new LlamaCppEngine(config, opts);
}
