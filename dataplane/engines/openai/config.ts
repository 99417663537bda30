import { z } from "zod";

/** An OpenAI-compatible engine reached over HTTP: vLLM, SGLang, llama-server, or the emulator. */
export const openAIEngineConfigSchema = z.strictObject({
  kind: z.literal("openai"),
  /** Model name clients and the edge use. */
  model: z.string().min(1).max(256),
  /** Base URL of the engine server, e.g. http://127.0.0.1:8000 (no /v1). */
  url: z.url({ protocol: /^https?$/ }),
  /** The engine's own name for the model (vLLM's --served-model-name) when it differs. */
  servedModelName: z.string().min(1).max(256).optional(),
  /** Bearer token the engine expects (vLLM --api-key), if any. */
  apiKey: z.string().min(1).optional(),
  /** Requests the agent sends at once; the engine batches and queues them itself. */
  maxConcurrency: z.number().int().min(1).max(100_000).default(256),
  /** Keep-alive connections kept open to the engine. */
  connections: z.number().int().min(1).max(1024).default(64),
  metricsPath: z.string().startsWith("/").default("/metrics"),
  healthPath: z.string().startsWith("/").default("/health"),
  /** How often load and health are read from the engine. */
  pollIntervalMs: z.number().int().min(100).max(60_000).default(1_000),
  /** KV capacity in tokens when the engine's metrics do not say (vLLM's cache_config_info does). */
  kvCapacityTokens: z.number().int().min(0).optional(),
  /**
   * Set vLLM's `cache_salt` from the request's cache namespace, so the engine's prefix cache never
   * serves one tenant's KV to another (vLLM ≥ 0.9). Off for engines that reject unknown fields.
   */
  cacheSalt: z.boolean().default(false),
  /**
   * Where the engine publishes KV-cache events (vLLM `--kv-events-config` with a zmq publisher,
   * e.g. tcp://127.0.0.1:5557): the agent reports evictions from them so the edge forgets prefixes
   * this node no longer holds.
   */
  kvEvents: z
    .strictObject({
      endpoint: z.string().regex(/^tcp:\/\/(\[[^\]]+\]|[^:]+):\d{1,5}$/, "must be tcp://host:port"),
      topic: z.string().max(256).default(""),
    })
    .optional(),
});

export type OpenAIEngineConfig = z.infer<typeof openAIEngineConfigSchema>;
