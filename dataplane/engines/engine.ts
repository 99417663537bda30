/**
 * The engine adapter contract: everything the node agent needs from an inference engine.
 * A new engine is one folder implementing EngineAdapter plus one line in registry.ts.
 */
import type { Endpoint, GenerationRequest } from "../../protocol/openai-request";

export interface EngineRequest {
  requestId: string;
  endpoint: Endpoint;
  /** Validated body (unknown fields kept). */
  body: GenerationRequest;
  /** The body bytes exactly as the edge sent them; proxies forward these. */
  rawBody: Uint8Array;
  /** Tenant the edge authenticated (for logs); absent on direct calls. */
  tenantId?: string;
  /**
   * Cache namespace of the prompt (signed by the edge): engines reuse cached KV only within it, so
   * no tenant can see, or time, another tenant's cached prompts. Absent on direct calls.
   */
  cacheNamespace?: string;
  /**
   * vLLM's request priority, smaller first: `enginePriority` of the edge's signed mark
   * (protocol/priority.ts). Absent on direct calls. Engines that cannot schedule by priority ignore
   * it; the body never carries a client's own.
   */
  priority?: number;
  /** Aborts when the client goes away; adapters must stop work and free the slot. */
  signal: AbortSignal;
}

export interface EngineLoad {
  healthy: boolean;
  /** Requests executing in the engine. */
  running: number;
  /** Requests queued inside the engine (the agent adds its own queue on top). */
  waiting: number;
  /** Fraction of KV cache in use, 0..1. */
  kvUsage: number;
  /** KV capacity in tokens. */
  kvCapacityTokens: number;
  /** Cached KV tokens evicted since the cache epoch began (running total), when the engine knows. */
  kvEvictedTokens?: number;
  /** Identifies the engine's cache lifetime; changes when the cache is emptied or the engine restarts. */
  kvEpoch?: string;
}

export interface EngineAdapter {
  /** Adapter kind, e.g. "llamacpp", "openai", "sim". */
  readonly kind: string;
  /** Model name as clients and the edge call it. */
  readonly model: string;
  /** Requests the engine runs at once; the agent queues beyond this. */
  readonly maxConcurrency: number;
  start(): Promise<void>;
  stop(): Promise<void>;
  /**
   * Serves one request. Resolves with the response to stream back (SSE for `stream: true`, JSON
   * otherwise, an OpenAI error body on failure); must honour `req.signal` until the body ends.
   */
  handle(req: EngineRequest): Promise<Response>;
  /** Current load; cheap (no I/O): adapters refresh it in the background. */
  load(): EngineLoad;
}
