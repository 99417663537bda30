/**
 * Node agent configuration: a JSON file plus environment overrides (for values that come from a
 * secret store or an orchestrator). Validated at start-up; a bad value stops the agent with a
 * message naming the field.
 */
import { readFileSync } from "node:fs";
import { z } from "zod";
import { DEFAULT_HEARTBEAT_INTERVAL_MS } from "../../protocol/heartbeat";
import { ConfigError, parseConfig } from "../lib/config-error";
import { engineConfigSchema } from "../engines/registry";

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
} as const;

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
    const text = value.trim();
    // A port that is not all digits stays a string, so validation names the field instead of
    // silently turning " " into 0 (any free port).
    setPath(out, path, path === "listen.port" && /^\d+$/.test(text) ? Number(text) : text);
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
