import { z } from "zod";
import { LOOPBACK_HOSTS, vllmLaunchSchema } from "./launch";

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
   * vLLM's `--scheduling-policy` on that server. With `priority` the agent sends vLLM's request
   * `priority` from the edge's signed mark (protocol/priority.ts) and, in launch mode, starts vLLM
   * with `--scheduling-policy priority`. With `fcfs` (vLLM's default) it sends none: vLLM refuses a
   * priority other than 0 then.
   */
  schedulingPolicy: z.enum(["fcfs", "priority"]).default("fcfs"),
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
  /**
   * Start vLLM here instead of reaching one someone else runs (launch.ts): `vllm serve` on `url`'s
   * host and port, native CPU KV offloading sized by `launch.cpuOffloadGiB`, restarted if it dies,
   * stopped with the agent.
   */
  launch: vllmLaunchSchema.optional(),
}).superRefine((c, ctx) => {
  if (!c.launch) return;
  const url = new URL(c.url);
  // vLLM serves at the root of the host and port it is given: there is nothing else to point at.
  if (url.pathname !== "/" || url.search !== "") ctx.addIssue({ code: "custom", path: ["url"], message: "with launch, must be http://host:port with no path (vLLM serves at the root)" });
  if (url.port === "") ctx.addIssue({ code: "custom", path: ["url"], message: "with launch, must name the port vLLM listens on (e.g. http://127.0.0.1:8000)" });
  if (url.protocol !== "http:") ctx.addIssue({ code: "custom", path: ["url"], message: "with launch, must be http (vLLM serves plain HTTP unless given TLS files)" });
  // One place decides the policy: a flag in args would disagree with what the agent sends.
  if (c.launch.args.some((a) => a === "--scheduling-policy" || a.startsWith("--scheduling-policy="))) {
    ctx.addIssue({ code: "custom", path: ["launch", "args"], message: "must not set --scheduling-policy: use the engine's schedulingPolicy" });
  }
  if (c.kvEvents) {
    const host = /^tcp:\/\/(\[[^\]]+\]|[^:]+):/.exec(c.kvEvents.endpoint)?.[1] ?? "";
    // The launched vLLM publishes on this machine; a subscription elsewhere would never see it.
    if (!LOOPBACK_HOSTS.has(host) && host !== url.hostname) ctx.addIssue({ code: "custom", path: ["kvEvents", "endpoint"], message: `with launch, must be on this machine (127.0.0.1, localhost, ::1 or ${url.hostname})` });
  }
});

export type OpenAIEngineConfig = z.infer<typeof openAIEngineConfigSchema>;
