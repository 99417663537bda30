/**
 * The local Switchyard stack, as `npm start` runs it and end-to-end tests drive it: the edge worker
 * under `wrangler dev` (local D1 and Durable Objects, migrations applied), node agents as separate
 * processes in front of their engines, and a seeded demo tenant with a fresh key. Every process it
 * starts is its own process group, so stopping the stack stops wrangler's workerd too.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { AgentConfigInput } from "../dataplane/agent/config";
import type { EngineConfigInput } from "../dataplane/engines/registry";
import type { AgentKvCacheConfigInput } from "../dataplane/kvcache/agent-tiers";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const WRANGLER = join(ROOT, "node_modules", "wrangler", "bin", "wrangler.js");
const CLI = join(ROOT, "bin", "switchyard.mjs");

export interface AgentSpec {
  nodeId: string;
  region: string;
  port?: number;
  engines: EngineConfigInput[];
  /** The agent's KV tiers (L1, and L2 cache servers); absent: none. */
  kvCache?: AgentKvCacheConfigInput;
  /**
   * Where the agent sends its heartbeats, when not straight to the edge (fault tests put a proxy
   * in between to cut them).
   */
  heartbeatUrl?: string;
}

export interface DevStackOptions {
  /** Where state, logs, secrets and generated configs live. */
  stateDir: string;
  edgePort?: number;
  model: string;
  agents: AgentSpec[];
  tenant?: { id: string; name: string };
  /** Extra wrangler vars, e.g. shorter heartbeat intervals in tests. */
  vars?: Record<string, string>;
  heartbeatIntervalMs?: number;
  /** Called with progress lines (npm start prints them). */
  onStatus?: (line: string) => void;
  /**
   * Serve a bundle of the worker made at start-up instead of watching worker/: edits to the source
   * then do not restart the edge (and its Durable Objects) in the middle of a benchmark or a test.
   */
  frozenWorker?: boolean;
  /**
   * wrangler dev's devtools inspector (default on). Its proxy forwards runtime events — about two
   * per streamed chunk of the Worker's fetch to an agent — to wrangler's Node process, one loopback
   * request each: it caps the local edge at a few hundred chunks/s and, at a thousand concurrent
   * streams, exhausts workerd's file descriptors. Benchmarks and load tests turn it off.
   */
  inspector?: boolean;
}

export interface RunningAgentProcess {
  spec: AgentSpec;
  port: number;
  url: string;
  configPath: string;
  process: ChildProcess;
}

export interface DevStack {
  edgeUrl: string;
  adminToken: string;
  apiKey: string;
  apiKeyId: string;
  model: string;
  tenantId: string;
  agents: Map<string, RunningAgentProcess>;
  admin<T = unknown>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }>;
  /**
   * Stops and starts the edge (wrangler dev and its workerd) on the same port and persisted state,
   * as a crash or a redeploy would: Durable Objects and D1 come back from disk. Agents keep running.
   */
  restartEdge(signal?: NodeJS.Signals): Promise<void>;
  /** Stops one agent (SIGTERM by default: it says goodbye; SIGKILL: it just vanishes). */
  stopAgent(nodeId: string, signal?: NodeJS.Signals): Promise<void>;
  startAgent(nodeId: string): Promise<void>;
  waitForNodes(predicate: (nodes: NodeListing[]) => boolean, timeoutMs?: number): Promise<NodeListing[]>;
  stop(): Promise<void>;
}

export interface NodeListing {
  id: string;
  region: string;
  drained: boolean;
  live: Array<{ model: string; status: string; inflight: number; running: number; waiting: number }>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolvePort(port));
    });
  });
}

function secret(bytes = 24): string {
  return randomBytes(bytes).toString("base64url");
}

/** Reads `KEY=value` lines; creates the file with fresh secrets when missing. */
function ensureEnvFile(path: string): { ADMIN_TOKEN: string; NODE_SECRET_KEY: string } {
  if (!existsSync(path)) {
    writeFileSync(path, `ADMIN_TOKEN=${secret()}\nNODE_SECRET_KEY=${secret(32)}\n`, { mode: 0o600 });
  }
  const out: Record<string, string> = {};
  for (const line of readFileSync(path, "utf8").split("\n")) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m) out[m[1] as string] = m[2] as string;
  }
  if (!out.ADMIN_TOKEN || !out.NODE_SECRET_KEY) throw new Error(`${path} must define ADMIN_TOKEN and NODE_SECRET_KEY`);
  return { ADMIN_TOKEN: out.ADMIN_TOKEN, NODE_SECRET_KEY: out.NODE_SECRET_KEY };
}

function run(cmd: string, args: string[], logPath: string, env: NodeJS.ProcessEnv = {}): ChildProcess {
  const log = createWriteStream(logPath, { flags: "a" });
  const child = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"], detached: true });
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  return child;
}

async function runToEnd(cmd: string, args: string[], logPath: string, env: NodeJS.ProcessEnv = {}): Promise<void> {
  const child = run(cmd, args, logPath, env);
  const code: number = await new Promise((res) => child.on("exit", (c) => res(c ?? 1)));
  if (code !== 0) throw new Error(`${args.slice(0, 3).join(" ")} exited with ${code}; see ${logPath}`);
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}

async function waitExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return true;
  return new Promise((res) => {
    const t = setTimeout(() => res(false), timeoutMs);
    child.once("exit", () => {
      clearTimeout(t);
      res(true);
    });
  });
}

async function stopProcess(child: ChildProcess, signal: NodeJS.Signals = "SIGTERM", graceMs = 8_000): Promise<void> {
  killGroup(child, signal);
  if (!(await waitExit(child, graceMs))) {
    killGroup(child, "SIGKILL");
    await waitExit(child, 3_000);
  }
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number, died?: () => string | undefined): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    const reason = died?.();
    if (reason) throw new Error(`${what}: ${reason}`);
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${last instanceof Error ? last.message : String(last)})` : ""}`);
}

/**
 * Bundles the worker once (`wrangler deploy --dry-run`) and writes a wrangler.toml beside the bundle
 * that serves it as is (`no_bundle`), with every path made absolute. Returns the config's path.
 */
async function frozenWorkerConfig(stateDir: string, logsDir: string, env: Record<string, string>): Promise<string> {
  const outDir = join(stateDir, "frozen-worker");
  mkdirSync(outDir, { recursive: true });
  await runToEnd(process.execPath, [WRANGLER, "deploy", "--dry-run", "--outdir", outDir], join(logsDir, "bundle.log"), env);
  const source = readFileSync(join(ROOT, "wrangler.toml"), "utf8");
  const main = /^main\s*=\s*"[^"]*"/m;
  const migrations = /^migrations_dir\s*=\s*"([^"]*)"/m;
  if (!main.test(source) || !migrations.test(source)) throw new Error("wrangler.toml: expected `main` and `migrations_dir` lines to rewrite");
  const config = source
    .replace(main, `main = ${JSON.stringify(join(outDir, "index.js"))}\nno_bundle = true`)
    .replace(migrations, (_m, dir: string) => `migrations_dir = ${JSON.stringify(resolve(ROOT, dir))}`);
  const path = join(outDir, "wrangler.toml");
  writeFileSync(path, config);
  return path;
}

export async function startDevStack(opts: DevStackOptions): Promise<DevStack> {
  const status = opts.onStatus ?? (() => {});
  const stateDir = resolve(opts.stateDir);
  const logsDir = join(stateDir, "logs");
  const agentsDir = join(stateDir, "agents");
  for (const d of [stateDir, logsDir, agentsDir]) mkdirSync(d, { recursive: true });
  const envPath = join(stateDir, "edge.env");
  const secrets = ensureEnvFile(envPath);
  const persist = join(stateDir, "wrangler");
  const edgePort = opts.edgePort ?? (await freePort());
  const edgeUrl = `http://127.0.0.1:${edgePort}`;
  // wrangler has no flag for it; it leaves the inspector off when it runs under VS Code's debugger.
  const wranglerEnv: Record<string, string> = { WRANGLER_SEND_METRICS: "false", CI: "1", ...(opts.inspector === false ? { VSCODE_INSPECTOR_OPTIONS: "{}" } : {}) };
  const children: ChildProcess[] = [];
  let edge: ChildProcess | undefined;
  const agents = new Map<string, RunningAgentProcess>();

  const stopAll = async () => {
    await Promise.all([...agents.values()].map((a) => stopProcess(a.process)));
    await Promise.all(children.map((c) => stopProcess(c)));
  };

  try {
    status("applying D1 migrations");
    await runToEnd(process.execPath, [WRANGLER, "d1", "migrations", "apply", "switchyard", "--local", "--persist-to", persist], join(logsDir, "migrations.log"), wranglerEnv);

    const configArgs = opts.frozenWorker ? ["--config", await frozenWorkerConfig(stateDir, logsDir, wranglerEnv)] : [];
    const vars = { ...(opts.heartbeatIntervalMs ? { HEARTBEAT_INTERVAL_MS: String(opts.heartbeatIntervalMs) } : {}), ...(opts.vars ?? {}) };
    const startEdge = async (): Promise<void> => {
      status(`starting the edge worker on ${edgeUrl}`);
      const inspectorPort = await freePort();
      const wrangler = run(
        process.execPath,
        [
          WRANGLER, "dev", ...configArgs, "--local", "--ip", "127.0.0.1", "--port", String(edgePort), "--inspector-port", String(inspectorPort),
          "--persist-to", persist, "--env-file", envPath, "--show-interactive-dev-session=false",
          ...Object.entries(vars).flatMap(([k, v]) => ["--var", `${k}:${v}`]),
        ],
        join(logsDir, "edge.log"),
        wranglerEnv,
      );
      edge = wrangler;
      children.push(wrangler);
      await waitFor(
        "the edge worker",
        async () => ((await fetch(`${edgeUrl}/healthz`)).ok ? true : undefined),
        90_000,
        () => (wrangler.exitCode !== null ? `wrangler exited (${wrangler.exitCode}); see ${join(logsDir, "edge.log")}` : undefined),
      );
    };
    await startEdge();

    const admin = async <T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> => {
      const res = await fetch(`${edgeUrl}/admin${path}`, {
        method,
        headers: { authorization: `Bearer ${secrets.ADMIN_TOKEN}`, "content-type": "application/json" },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      return { status: res.status, body: (await res.json()) as T };
    };
    const must = async <T>(method: string, path: string, body?: unknown, ok = [200, 201]): Promise<T> => {
      const r = await admin<T>(method, path, body);
      if (!ok.includes(r.status)) throw new Error(`${method} /admin${path} → ${r.status}: ${JSON.stringify(r.body)}`);
      return r.body;
    };

    status("seeding the demo tenant, model and nodes");
    const tenant = opts.tenant ?? { id: "demo", name: "Demo tenant" };
    // Every model an agent serves must exist before its node can be registered for it.
    const models = new Set([opts.model, ...opts.agents.flatMap((a) => a.engines.map((e) => e.model))]);
    for (const m of models) await must("PUT", `/models/${encodeURIComponent(m)}`, {});
    if ((await admin("GET", `/tenants/${tenant.id}`)).status === 404) await must("POST", "/tenants", { id: tenant.id, name: tenant.name });
    const key = await must<{ id: string; key: string }>("POST", `/tenants/${tenant.id}/keys`, { name: `dev-${new Date().toISOString()}` });

    const agentStarts: Array<() => Promise<void>> = [];
    for (const spec of opts.agents) {
      const port = spec.port ?? (await freePort());
      const url = `http://127.0.0.1:${port}`;
      const existing = await admin<{ url: string | null }>("GET", `/nodes/${spec.nodeId}`);
      let nodeSecret: string;
      if (existing.status === 404) {
        nodeSecret = (await must<{ secret: string }>("POST", "/nodes", { id: spec.nodeId, region: spec.region, url, models: spec.engines.map((e) => e.model) })).secret;
      } else {
        // A restarted dev stack owns its agents: it re-keys them rather than keeping secrets on disk.
        await must("PATCH", `/nodes/${spec.nodeId}`, { region: spec.region, url, models: spec.engines.map((e) => e.model) });
        nodeSecret = (await must<{ secret: string }>("POST", `/nodes/${spec.nodeId}/rotate-secret`, { immediate: true })).secret;
      }
      const config: AgentConfigInput = {
        nodeId: spec.nodeId,
        region: spec.region,
        listen: { host: "127.0.0.1", port },
        edge: { url: spec.heartbeatUrl ?? edgeUrl, nodeSecret, ...(opts.heartbeatIntervalMs ? { heartbeatIntervalMs: opts.heartbeatIntervalMs } : {}) },
        engines: spec.engines,
        ...(spec.kvCache ? { kvCache: spec.kvCache } : {}),
      };
      const configPath = join(agentsDir, `${spec.nodeId}.json`);
      writeFileSync(configPath, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
      const start = async () => {
        const child = run(process.execPath, [CLI, "agent", "--config", configPath], join(logsDir, `${spec.nodeId}.log`));
        agents.set(spec.nodeId, { spec, port, url, configPath, process: child });
        await waitFor(
          `agent ${spec.nodeId}`,
          async () => ((await fetch(`${url}/healthz`)).ok ? true : undefined),
          120_000,
          () => (child.exitCode !== null ? `agent exited (${child.exitCode}); see ${join(logsDir, `${spec.nodeId}.log`)}` : undefined),
        );
      };
      agentStarts.push(start);
    }
    status(`starting ${opts.agents.length} node agent(s)`);
    await Promise.all(agentStarts.map((s) => s()));

    const listNodes = async () => (await must<{ data: NodeListing[] }>("GET", "/nodes")).data;
    const waitForNodes = (predicate: (nodes: NodeListing[]) => boolean, timeoutMs = 30_000) =>
      waitFor("the node registry", async () => {
        const nodes = await listNodes();
        return predicate(nodes) ? nodes : undefined;
      }, timeoutMs);
    const allHealthy = (specs: AgentSpec[]) => (nodes: NodeListing[]) =>
      specs.every((a) => a.engines.every((e) => nodes.find((n) => n.id === a.nodeId)?.live.some((l) => l.model === e.model && l.status === "healthy")));
    await waitForNodes(allHealthy(opts.agents), 60_000);
    status("ready");

    return {
      edgeUrl,
      adminToken: secrets.ADMIN_TOKEN,
      apiKey: key.key,
      apiKeyId: key.id,
      model: opts.model,
      tenantId: tenant.id,
      agents,
      admin,
      waitForNodes,
      async restartEdge(signal = "SIGTERM") {
        if (edge) {
          await stopProcess(edge, signal);
          children.splice(children.indexOf(edge), 1);
        }
        await startEdge();
      },
      async stopAgent(nodeId, signal = "SIGTERM") {
        const a = agents.get(nodeId);
        if (a) await stopProcess(a.process, signal);
      },
      async startAgent(nodeId) {
        const a = agents.get(nodeId);
        if (!a) throw new Error(`unknown agent ${nodeId}`);
        const child = run(process.execPath, [CLI, "agent", "--config", a.configPath], join(logsDir, `${nodeId}.log`));
        a.process = child;
        await waitFor(`agent ${nodeId}`, async () => ((await fetch(`${a.url}/healthz`)).ok ? true : undefined), 120_000, () =>
          child.exitCode !== null ? `agent exited (${child.exitCode})` : undefined,
        );
      },
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
