/**
 * Checks of what a node boots with, against the real code that will read it: the agent config
 * through the agent's own schema and environment overrides, the cache server's flags through the
 * CLI's own command definition and the cache server's config schema.
 */
import { Command } from "commander";
import { expect } from "vitest";
import { registerAgentCommand } from "../../../cli/commands/agent";
import { registerCacheServerCommand } from "../../../cli/commands/cache-server";
import { ENV_OVERRIDES, parseAgentConfig, type AgentConfig } from "../../../dataplane/agent/config";
import { cacheServerConfigSchema, parseByteSize } from "../../../dataplane/kvcache/server/config";

export interface WriteFile {
  path: string;
  content: string;
  permissions: string;
  owner: string;
}
export interface CloudConfig {
  write_files: WriteFile[];
  runcmd: string[][];
}

/** EC2 refuses user data above 16 KiB (before base64). */
export const USER_DATA_LIMIT_BYTES = 16 * 1024;

export function parseCloudInit(text: string): CloudConfig {
  expect(text.startsWith("#cloud-config\n"), "cloud-init user data must start with #cloud-config").toBe(true);
  // JSON is YAML; the module renders the document with jsonencode.
  return JSON.parse(text.slice("#cloud-config\n".length)) as CloudConfig;
}

export function fileAt(cfg: CloudConfig, path: string): WriteFile {
  const f = cfg.write_files.find((w) => w.path === path);
  if (!f) throw new Error(`cloud-init writes no ${path} (it writes ${cfg.write_files.map((w) => w.path).join(", ")})`);
  return f;
}

/** `Key=value` lines of a systemd unit's [Service] section, all values per key. */
export function unitDirectives(unit: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of unit.split("\n")) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (!m) continue;
    const [, key, value] = m as unknown as [string, string, string];
    out.set(key, [...(out.get(key) ?? []), value]);
  }
  return out;
}

/** The one ExecStart of a unit, split into words (units here quote with '…' only). */
export function execStart(unit: string): string[] {
  const starts = unitDirectives(unit).get("ExecStart") ?? [];
  expect(starts, "a unit has exactly one ExecStart").toHaveLength(1);
  const words: string[] = [];
  const re = /'([^']*)'|(\S+)/g;
  for (let m = re.exec(starts[0] as string); m; m = re.exec(starts[0] as string)) words.push(m[1] ?? (m[2] as string));
  return words;
}

/**
 * Environment variables fetch-secrets.sh writes for one service, with what they hold on a node: the
 * names come from the script, the values are stand-ins of the right shape.
 */
export function secretEnvFor(script: string, service: "agent" | "tunnel" | "engine", privateIp: string): Record<string, string> {
  const start = script.indexOf(`\n  ${service})\n`);
  expect(start, `fetch-secrets.sh has a "${service}" case`).toBeGreaterThan(0);
  const block = script.slice(start, script.indexOf(";;", start));
  const env: Record<string, string> = {};
  for (const m of block.matchAll(/([A-Z][A-Z0-9_]+)=("?)([^"'\\\n]*)/g)) {
    const [, name, , raw] = m as unknown as [string, string, string, string];
    env[name] = STAND_INS[name] ?? raw.replace(/\$ip\b/g, privateIp);
  }
  return env;
}

const STAND_INS: Record<string, string> = {
  SWITCHYARD_NODE_SECRET: `sy_ns_2_${"A".repeat(43)}`,
  SWITCHYARD_PREVIOUS_NODE_SECRET: `sy_ns_1_${"B".repeat(43)}`,
  TUNNEL_TOKEN: "eyJhIjoidHVubmVsLXRva2VuIn0",
  HF_TOKEN: "hf_standin",
};

/**
 * The agent config a node ends up with: agent.json from cloud-init plus the environment its unit
 * loads, through the agent's own parser (which throws naming the field on anything it refuses).
 */
export function bootedAgentConfig(cfg: CloudConfig, privateIp = "10.40.1.17"): { config: AgentConfig; env: Record<string, string> } {
  const agentUnit = fileAt(cfg, "/etc/systemd/system/switchyard-agent.service").content;
  const argv = execStart(agentUnit);
  const configFlag = argv.indexOf("--config");
  expect(argv, "the agent unit runs `switchyard agent --config <file>`").toContain("agent");
  expect(configFlag).toBeGreaterThan(0);
  const configPath = argv[configFlag + 1] as string;
  const raw = JSON.parse(fileAt(cfg, configPath).content) as Record<string, unknown>;

  const env = secretEnvFor(fileAt(cfg, "/usr/local/lib/switchyard/fetch-secrets.sh").content, "agent", privateIp);
  for (const name of Object.keys(env)) expect(Object.keys(ENV_OVERRIDES), `fetch-secrets.sh writes ${name}, which the agent does not read`).toContain(name);
  const loads = unitDirectives(agentUnit).get("EnvironmentFile") ?? [];
  expect(loads.map((l) => l.replace(/^-/, ""))).toContain("/run/switchyard/agent.env");
  return { config: parseAgentConfig(raw, configPath, env), env };
}

/** The CLI's own `agent` command accepts the flags the unit passes. */
export async function agentCommandAccepts(args: string[]): Promise<Record<string, unknown>> {
  return parseCommand(registerAgentCommand, args);
}

/**
 * The cache server's unit arguments, parsed by the real `switchyard cache-server` definition and
 * validated the way the command does (sizes, then the server's config schema).
 */
export async function cacheServerFromUnit(unit: string): Promise<ReturnType<typeof cacheServerConfigSchema.parse>> {
  const argv = execStart(unit);
  const at = argv.indexOf("cache-server");
  expect(at, "the unit runs `switchyard cache-server`").toBeGreaterThan(0);
  const flags = (await parseCommand(registerCacheServerCommand, argv.slice(at))) as Record<string, string>;
  const int = (s: string | undefined) => {
    expect(s, "a whole number").toMatch(/^\d+$/);
    return Number(s);
  };
  return cacheServerConfigSchema.parse({
    host: flags.host,
    port: int(flags.port),
    capacityBytes: parseByteSize(flags.capacity as string),
    policy: flags.policy,
    metricsPort: flags.metricsPort === "off" ? null : int(flags.metricsPort),
    metricsHost: flags.metricsHost,
    maxValueBytes: parseByteSize(flags.maxValue as string),
    maxConnections: int(flags.maxConnections),
    shards: int(flags.shards),
  });
}

class Parsed extends Error {
  constructor(readonly opts: Record<string, unknown>) {
    super("parsed");
  }
}

/** Parses argv with a real command definition, stopping before its action would run. */
async function parseCommand(register: (program: Command) => void, args: string[]): Promise<Record<string, unknown>> {
  const program = new Command().exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
  register(program);
  for (const c of program.commands) c.exitOverride();
  program.hook("preAction", (_root, action) => {
    throw new Parsed(action.opts());
  });
  try {
    await program.parseAsync(["node", "switchyard", ...args]);
  } catch (err) {
    if (err instanceof Parsed) return err.opts;
    throw err;
  }
  throw new Error(`${args.join(" ")}: the command ran no action`);
}
