/**
 * Node agent configuration: a JSON file plus environment overrides (for values that come from a
 * secret store or an orchestrator). Validated at start-up; a bad value stops the agent with a
 * message naming the field.
 */
import { readFileSync } from "node:fs";
import { z } from "zod";
import { cacheServerAddressSchema, DEFAULT_HEARTBEAT_INTERVAL_MS } from "../../protocol/heartbeat";
import { ConfigError, parseConfig } from "../lib/config-error";
import { engineConfigSchema } from "../engines/registry";
import { agentKvCacheConfigSchema } from "../kvcache/agent-tiers";

const slug = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, "must be a lowercase slug (a-z, 0-9, '.', '_', '-'; at most 63)");
const nodeSecret = z.string().regex(/^sy_ns_\d{1,9}_[A-Za-z0-9_-]{20,}$/, "must be a node secret issued by the edge (sy_ns_<version>_...)");

export const agentConfigSchema = z
  .strictObject({
    nodeId: slug,
    region: slug,
    listen: z.strictObject({
      host: z.string().min(1).default("127.0.0.1"),
      port: z.number().int().min(0).max(65_535).default(8801),
    }).default({ host: "127.0.0.1", port: 8801 }),
    /** URL the edge should use to reach this agent, advertised in heartbeats. */
    advertiseUrl: z.url({ protocol: /^https?$/ }).optional(),
    /**
     * `host:port` of the L2 cache server this agent runs or sits beside, advertised in heartbeats:
     * the edge hands the region's advertised servers to its agents as their L2 membership.
     */
    advertiseCacheServer: cacheServerAddressSchema.optional(),
    edge: z.strictObject({
      url: z.url({ protocol: /^https?$/ }),
      /** The node's signing secret as issued by `switchyard nodes register` / rotate. */
      nodeSecret,
      /** The secret being replaced during a rotation; accepted on inbound requests until removed. */
      previousNodeSecret: nodeSecret.optional(),
      heartbeatIntervalMs: z.number().int().min(200).max(60_000).default(DEFAULT_HEARTBEAT_INTERVAL_MS),
    }),
    engines: z.array(engineConfigSchema).min(1).max(64),
    queue: z.strictObject({
      /** Requests waiting per engine beyond its concurrency before the agent answers 503. */
      maxWaiting: z.number().int().min(0).max(1_000_000).default(1024),
    }).default({ maxWaiting: 1024 }),
    /** How far a signed request's timestamp may be from this clock. */
    signatureWindowMs: z.number().int().min(1_000).max(600_000).default(30_000),
    logLevel: z.enum(["debug", "info", "warn", "error"]).default("info"),
    /** KV tiers for the agent's engines (docs/kv-cache.md "The agent's tiers"); absent: none. */
    kvCache: agentKvCacheConfigSchema.optional(),
  })
  .superRefine((cfg, ctx) => {
    // Inbound secrets are looked up by version: a previous secret sharing the current one's version
    // would replace it, and every request the edge signs with the current secret would be refused.
    const prev = cfg.edge.previousNodeSecret;
    const version = (secret: string) => Number(secret.slice("sy_ns_".length).split("_")[0]);
    if (prev !== undefined && prev !== cfg.edge.nodeSecret && version(prev) === version(cfg.edge.nodeSecret)) {
      ctx.addIssue({ code: "custom", path: ["edge", "previousNodeSecret"], message: `must have another version than edge.nodeSecret (both are version ${version(prev)})` });
    }
    const seen = new Set<string>();
    cfg.engines.forEach((e, i) => {
      if (seen.has(e.model)) ctx.addIssue({ code: "custom", path: ["engines", i, "model"], message: `model '${e.model}' is served by two engines` });
      seen.add(e.model);
    });
    for (const model of Object.keys(cfg.kvCache?.modelIdentity ?? {})) {
      if (!seen.has(model)) ctx.addIssue({ code: "custom", path: ["kvCache", "modelIdentity", model], message: `no engine serves the model '${model}'` });
    }
  });

export type AgentConfig = z.infer<typeof agentConfigSchema>;
export type AgentConfigInput = z.input<typeof agentConfigSchema>;

/** Environment variables that override the file (secrets from a secret store, orchestrator ports). */
export const ENV_OVERRIDES = {
  SWITCHYARD_NODE_ID: "nodeId",
  SWITCHYARD_REGION: "region",
  SWITCHYARD_EDGE_URL: "edge.url",
  SWITCHYARD_NODE_SECRET: "edge.nodeSecret",
  SWITCHYARD_PREVIOUS_NODE_SECRET: "edge.previousNodeSecret",
  SWITCHYARD_LISTEN_HOST: "listen.host",
  SWITCHYARD_LISTEN_PORT: "listen.port",
  SWITCHYARD_ADVERTISE_URL: "advertiseUrl",
  SWITCHYARD_ADVERTISE_CACHE_SERVER: "advertiseCacheServer",
  SWITCHYARD_KV_CHUNK_TOKENS: "kvCache.chunkTokens",
  SWITCHYARD_KV_L1_BYTES: "kvCache.l1.bytes",
  SWITCHYARD_KV_L1_POLICY: "kvCache.l1.policy",
  SWITCHYARD_KV_L2_SERVERS: "kvCache.l2.servers",
  SWITCHYARD_KV_L2_REPLICAS: "kvCache.l2.replicas",
} as const;

/**
 * How an override's text becomes a value: all-digit text for a numeric field becomes a number
 * (anything else stays a string, so validation names the field instead of turning " " into 0),
 * a size may also carry a unit (`4GiB`), and a server list is comma-separated.
 */
const ENV_KINDS: Partial<Record<string, "int" | "size" | "list">> = {
  "listen.port": "int",
  "kvCache.chunkTokens": "int",
  "kvCache.l1.bytes": "size",
  "kvCache.l2.servers": "list",
  "kvCache.l2.replicas": "int",
};

function envValue(path: string, text: string): unknown {
  const kind = ENV_KINDS[path];
  if ((kind === "int" || kind === "size") && /^\d+$/.test(text)) return Number(text);
  if (kind === "list") return text.split(",").map((s) => s.trim()).filter((s) => s.length > 0);
  return text;
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split(".");
  let node = target;
  for (const p of parts.slice(0, -1)) {
    if (typeof node[p] !== "object" || node[p] === null) node[p] = {};
    node = node[p] as Record<string, unknown>;
  }
  node[parts[parts.length - 1] as string] = value;
}

export function applyEnvOverrides(raw: Record<string, unknown>, env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out = structuredClone(raw);
  for (const [name, path] of Object.entries(ENV_OVERRIDES)) {
    const value = env[name];
    if (value === undefined || value === "") continue;
    setPath(out, path, envValue(path, value.trim()));
  }
  return out;
}

export function parseAgentConfig(raw: unknown, source: string, env: NodeJS.ProcessEnv = {}): AgentConfig {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new ConfigError(`invalid configuration in ${source}: expected a JSON object`);
  return parseConfig(agentConfigSchema, applyEnvOverrides(raw as Record<string, unknown>, env), source);
}

export function loadAgentConfig(path: string, env: NodeJS.ProcessEnv = process.env): AgentConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError(`cannot read agent config ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`agent config ${path} is not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  return parseAgentConfig(raw, path, env);
}
