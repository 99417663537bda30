/**
 * Launch mode of the `openai` engine: the agent starts vLLM itself (`vllm serve`) instead of talking
 * to a server someone else runs, turns on vLLM's native CPU KV offloading sized from the config
 * (reference/kvcache.md §1.3), keeps it running (restarts with backoff after a crash, a failed start
 * or a long stretch of failed health checks) and stops it with the agent.
 *
 * Flags by installed vLLM version (asked with `<command> --version` unless `launch.version` says):
 * - ≥ 0.14 (the reference's version, PR #24498): `--kv-offloading-size <GiB> --kv-offloading-backend
 *   native`. The backend is passed explicitly: some builds require it.
 * - 0.12–0.13, or any version when `offloadBlockSize` is set (the shortcut has no block size): the
 *   explicit form `--kv-transfer-config {"kv_connector":"OffloadingConnector","kv_role":"kv_both",
 *   "kv_connector_extra_config":{"cpu_bytes_to_use":N[,"block_size":B]}}`.
 * - ≤ 0.11: refused. 0.11.0 sized the CPU buffer in blocks (`num_cpu_blocks`), which depends on the
 *   model's KV bytes per block; pass that `--kv-transfer-config` in `launch.args` yourself.
 *
 * Always: `serve <model> --host <url host> --port <url port> --served-model-name <servedModelName ??
 * model> --enable-prefix-caching`; the API key goes in `VLLM_API_KEY` (not argv, which `ps` shows);
 * with `kvEvents`, `--kv-events-config` publishing on ZMQ where the agent subscribes (vLLM binds only
 * endpoints with `*`, so it binds `tcp://*:<port>` and the agent connects to the configured host).
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { z } from "zod";
import type { Logger } from "../../lib/log";

const GiB = 2 ** 30;

export const vllmLaunchSchema = z
  .strictObject({
    /**
     * The executable, or an argv prefix that ends where `serve` goes: "vllm" (default),
     * ["uv", "run", "vllm"], ["/opt/venv/bin/python", "-m", "vllm.entrypoints.cli.main"].
     */
    command: z.union([z.string().min(1), z.array(z.string().min(1)).min(1).max(64)]).default("vllm"),
    /** What `vllm serve` loads: a Hugging Face id or a local path. */
    model: z.string().min(1).max(1024),
    /** The installed vLLM version (e.g. "0.14.1"); default: asked with `<command> --version` at start. */
    version: z.string().regex(/^\d+\.\d+(\.\d+)?/, "must start with major.minor, e.g. 0.14.1").optional(),
    /** Host memory for vLLM's native CPU KV offloading, in GiB (total across tensor-parallel ranks). 0 or absent: off. */
    cpuOffloadGiB: z.number().min(0).max(2 ** 20).optional(),
    /** The same in bytes; give at most one of the two. */
    cpuOffloadBytes: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
    /** Offloaded block size in tokens (a multiple of the GPU block size); selects the explicit `--kv-transfer-config` form. */
    offloadBlockSize: z.number().int().min(1).max(1 << 20).optional(),
    /** `--prefix-caching-hash-algo` (e.g. "sha256_cbor", with `env.PYTHONHASHSEED`, for hashes another process can reproduce; kvcache.md §1.2). Default: vLLM's. */
    prefixCachingHashAlgo: z.string().regex(/^[a-z0-9_]+$/).optional(),
    /** More `vllm serve` arguments, after the agent's (e.g. ["--tensor-parallel-size", "2", "--max-model-len", "16384"]). */
    args: z.array(z.string()).max(256).default([]),
    /** Environment for vLLM, over the agent's own (e.g. CUDA_VISIBLE_DEVICES, HF_HOME). */
    env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.string()).default({}),
    /** How long vLLM may take to answer /health with 200 (model download and load). */
    startupTimeoutMs: z.number().int().min(1_000).max(24 * 3_600_000).default(1_200_000),
    /** /health polling while starting and while running. */
    healthIntervalMs: z.number().int().min(50).max(60_000).default(1_000),
    /** A running vLLM whose /health fails this long is restarted (a hung or dead engine core). */
    unhealthyRestartMs: z.number().int().min(1_000).max(3_600_000).default(60_000),
    /** First delay before a restart; doubles per consecutive failure up to `maxRestartDelayMs`, back to this once vLLM is healthy. */
    restartDelayMs: z.number().int().min(0).max(600_000).default(1_000),
    maxRestartDelayMs: z.number().int().min(0).max(3_600_000).default(60_000),
    /** SIGTERM, then SIGKILL after this long (vLLM frees GPU memory on a clean exit). */
    stopTimeoutMs: z.number().int().min(100).max(600_000).default(30_000),
    /** vLLM's stdout and stderr: into the agent's (default) or discarded. */
    output: z.enum(["inherit", "ignore"]).default("inherit"),
  })
  .superRefine((l, ctx) => {
    if (l.cpuOffloadGiB !== undefined && l.cpuOffloadBytes !== undefined) ctx.addIssue({ code: "custom", path: ["cpuOffloadBytes"], message: "give at most one of cpuOffloadGiB and cpuOffloadBytes" });
  });

export type VllmLaunchConfig = z.output<typeof vllmLaunchSchema>;

/** What the launcher needs from the engine's config besides `launch`. */
export interface LaunchTarget {
  model: string;
  url: string;
  servedModelName?: string;
  apiKey?: string;
  healthPath: string;
  kvEvents?: { endpoint: string; topic: string };
  /** vLLM's `--scheduling-policy`; fcfs (vLLM's default) adds no flag. */
  schedulingPolicy?: "fcfs" | "priority";
  launch: VllmLaunchConfig;
}

/** Hosts the agent can reach a locally launched vLLM on, for config validation. */
export const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "::1", "[::1]"]);

/** major.minor.patch of a `vllm --version` output ("0.14.1", "0.11.0rc2", "vllm 0.10.2+cu128"). */
export function parseVllmVersion(text: string): [number, number, number] | undefined {
  const m = /(\d+)\.(\d+)(?:\.(\d+))?/.exec(text);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : undefined;
}

const atLeast = (v: readonly number[], major: number, minor: number) => (v[0] as number) > major || ((v[0] as number) === major && (v[1] as number) >= minor);

/** Bytes of host memory for CPU offloading the config asks for (0: off). */
export function offloadBytes(launch: VllmLaunchConfig): number {
  if (launch.cpuOffloadBytes !== undefined) return launch.cpuOffloadBytes;
  return launch.cpuOffloadGiB !== undefined ? Math.floor(launch.cpuOffloadGiB * GiB) : 0;
}

/** The native CPU offloading flags for `bytes` on vLLM `version` (see the file comment). */
export function offloadArgs(bytes: number, version: string | undefined, blockSize?: number): string[] {
  if (bytes <= 0) return [];
  const v = version === undefined ? undefined : parseVllmVersion(version);
  if (!v) throw new Error(`native CPU offloading needs the vLLM version to choose its flags; got ${JSON.stringify(version)} (set launch.version)`);
  if (!atLeast(v, 0, 12)) {
    throw new Error(`vLLM ${version} sizes native CPU offloading in blocks (num_cpu_blocks); launch mode supports ≥ 0.12. Pass --kv-transfer-config in launch.args instead of cpuOffloadGiB.`);
  }
  if (atLeast(v, 0, 14) && blockSize === undefined) {
    // The shortcut takes GiB as a number; print it without float noise (64, 0.5, 1.25).
    return ["--kv-offloading-size", String(Number((bytes / GiB).toFixed(6))), "--kv-offloading-backend", "native"];
  }
  const extra: Record<string, number> = { cpu_bytes_to_use: bytes };
  if (blockSize !== undefined) extra.block_size = blockSize;
  return ["--kv-transfer-config", JSON.stringify({ kv_connector: "OffloadingConnector", kv_role: "kv_both", kv_connector_extra_config: extra })];
}

/** `tcp://*:<port>` for an agent-side endpoint `tcp://host:port`: vLLM binds only wildcard endpoints. */
export function kvEventsPublishEndpoint(endpoint: string): string {
  const port = /:(\d{1,5})$/.exec(endpoint)?.[1];
  if (!port) throw new Error(`kvEvents.endpoint ${endpoint} has no port`);
  return `tcp://*:${port}`;
}

/** The command line (executable and arguments) that starts vLLM for `target`, given its version. */
export function vllmCommandLine(target: LaunchTarget, version: string | undefined): { file: string; args: string[] } {
  const l = target.launch;
  const command = typeof l.command === "string" ? [l.command] : l.command;
  const url = new URL(target.url);
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const args = [...command.slice(1), "serve", l.model, "--host", host, "--port", url.port, "--served-model-name", target.servedModelName ?? target.model, "--enable-prefix-caching"];
  if (l.prefixCachingHashAlgo) args.push("--prefix-caching-hash-algo", l.prefixCachingHashAlgo);
  if (target.schedulingPolicy === "priority") args.push("--scheduling-policy", "priority");
  if (target.kvEvents) {
    // Same topic as the agent's subscription: a SUB socket drops messages of any other topic.
    const config = { enable_kv_cache_events: true, publisher: "zmq", endpoint: kvEventsPublishEndpoint(target.kvEvents.endpoint), topic: target.kvEvents.topic };
    args.push("--kv-events-config", JSON.stringify(config));
  }
  args.push(...offloadArgs(offloadBytes(l), version, l.offloadBlockSize), ...l.args);
  return { file: command[0] as string, args };
}

/** Runs `<command> --version` and returns its output's version, or throws. */
export async function probeVllmVersion(launch: VllmLaunchConfig, timeoutMs = 60_000): Promise<string> {
  const command = typeof launch.command === "string" ? [launch.command] : launch.command;
  const out = await new Promise<string>((resolve, reject) => {
    execFile(command[0] as string, [...command.slice(1), "--version"], { timeout: timeoutMs, env: { ...process.env, ...launch.env } }, (err, stdout, stderr) => {
      if (err) reject(new Error(`could not run ${command.join(" ")} --version: ${err.message}`));
      else resolve(`${stdout}\n${stderr}`);
    });
  });
  const v = parseVllmVersion(out);
  if (!v) throw new Error(`${command.join(" ")} --version printed no version: ${JSON.stringify(out.trim().slice(0, 200))}`);
  return v.join(".");
}

export type LauncherState = "idle" | "starting" | "ready" | "backoff" | "stopped";

export interface LauncherEvents {
  /** Health as the launcher sees it changed (the engine reports unhealthy unless "ready"). */
  onState?(state: LauncherState): void;
}

/**
 * Supervises one vLLM process: start, wait for /health, watch it, restart it with backoff, stop it.
 * The process runs in its own process group (vLLM forks engine-core and worker processes), which
 * stop() signals as a whole; if the agent exits without stop(), the group gets SIGKILL from the
 * agent's exit handler. A SIGKILLed agent cannot do that: run the agent under a supervisor that
 * kills its whole cgroup (systemd's default KillMode=control-group) so a GPU is never left held.
 */
export class VllmLauncher {
  state: LauncherState = "idle";
  /** The version the flags were chosen for. */
  version: string | undefined;
  /** Processes started so far (1 + restarts). */
  starts = 0;
  /** The command line of the last start. */
  commandLine: { file: string; args: string[] } | undefined;
  private child: ChildProcess | undefined;
  private failures = 0;
  private timer: NodeJS.Timeout | undefined;
  private unhealthySince: number | undefined;
  private stopping: Promise<void> | undefined;
  private readyWaiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  private readonly healthUrl: URL;
  private readonly killOnExit = () => {
    if (this.child) this.signal(this.child, "SIGKILL");
  };

  constructor(
    private readonly target: LaunchTarget,
    private readonly log: Logger,
    private readonly events: LauncherEvents = {},
  ) {
    const base = new URL(target.url);
    this.healthUrl = new URL(target.healthPath, base);
  }

  /** The running process's id (its process group's id too). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /**
   * Chooses the flags (asking vLLM its version if needed: a failure here is a configuration problem
   * and rejects) and spawns the first process. Resolves once it is spawned, not when it is ready:
   * the agent comes up and reports the engine unhealthy while vLLM loads (see `ready()`).
   */
  async start(): Promise<void> {
    if (this.state !== "idle") throw new Error(`launcher already ${this.state}`);
    const l = this.target.launch;
    this.version = l.version ?? (offloadBytes(l) > 0 ? await probeVllmVersion(l) : undefined);
    this.commandLine = vllmCommandLine(this.target, this.version);
    process.once("exit", this.killOnExit);
    this.spawn();
  }

  /** Resolves when vLLM next answers /health with 200 (at once if it does now); rejects if stopped first. */
  ready(): Promise<void> {
    if (this.state === "ready") return Promise.resolve();
    if (this.state === "stopped") return Promise.reject(new Error("launcher stopped"));
    return new Promise((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
  }

  /** SIGTERM to the process group, SIGKILL after `stopTimeoutMs`; no restart afterwards. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.setState("stopped");
      if (this.timer) clearTimeout(this.timer);
      for (const w of this.readyWaiters.splice(0)) w.reject(new Error("launcher stopped"));
      const child = this.child;
      if (child && child.exitCode === null && child.signalCode === null) {
        const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
        this.signal(child, "SIGTERM");
        const timeout = new Promise<"timeout">((resolve) => {
          const t = setTimeout(() => resolve("timeout"), this.target.launch.stopTimeoutMs);
          t.unref();
        });
        if ((await Promise.race([exited, timeout])) === "timeout") {
          this.log.warn("vllm_stop_timeout", { pid: child.pid, timeoutMs: this.target.launch.stopTimeoutMs });
          this.signal(child, "SIGKILL");
          await exited;
        }
      }
      process.off("exit", this.killOnExit);
      this.log.info("vllm_stopped", { pid: child?.pid });
    })();
    return this.stopping;
  }

  private setState(state: LauncherState): void {
    if (this.state === state) return;
    this.state = state;
    this.events.onState?.(state);
    if (state === "ready") for (const w of this.readyWaiters.splice(0)) w.resolve();
  }

  private signal(child: ChildProcess, sig: NodeJS.Signals): void {
    const pid = child.pid;
    if (pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    try {
      process.kill(-pid, sig); // the whole group: vLLM's engine-core and workers too
    } catch {
      try {
        child.kill(sig);
      } catch {
        // already gone
      }
    }
  }

  private spawn(): void {
    if (this.state === "stopped") return;
    const { file, args } = this.commandLine as { file: string; args: string[] };
    const l = this.target.launch;
    const env: NodeJS.ProcessEnv = { ...process.env, ...l.env };
    if (this.target.apiKey) env.VLLM_API_KEY = this.target.apiKey;
    this.starts++;
    this.setState("starting");
    const startedAt = Date.now();
    const child = spawn(file, args, { env, detached: true, stdio: ["ignore", l.output, l.output] });
    this.child = child;
    this.log.info("vllm_starting", { pid: child.pid, command: [file, ...args].join(" "), start: this.starts });
    let ended = false;
    const end = (code: number | null, signal: NodeJS.Signals | null) => {
      if (ended) return;
      ended = true;
      this.onExit(child, code, signal);
    };
    child.once("error", (err) => {
      // A spawn failure (no such executable) may come without an "exit".
      this.log.error("vllm_spawn_failed", { error: err.message });
      if (child.pid === undefined) end(null, null);
    });
    child.once("exit", end);
    this.schedule(() => void this.checkStartup(child, startedAt), l.healthIntervalMs);
  }

  private schedule(fn: () => void, ms: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(fn, ms);
    this.timer.unref();
  }

  private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (child !== this.child || this.state === "stopped") return;
    this.failures++;
    const l = this.target.launch;
    const delay = Math.min(l.maxRestartDelayMs, l.restartDelayMs * 2 ** (this.failures - 1));
    this.log.error("vllm_exited", { pid: child.pid, code, signal, restartInMs: delay, failures: this.failures });
    this.setState("backoff");
    this.schedule(() => this.spawn(), delay);
  }

  private async healthy(): Promise<boolean> {
    try {
      const res = await fetch(this.healthUrl, { signal: AbortSignal.timeout(5_000) });
      await res.body?.cancel();
      return res.status === 200;
    } catch {
      return false;
    }
  }

  private async checkStartup(child: ChildProcess, startedAt: number): Promise<void> {
    if (child !== this.child || this.state !== "starting") return;
    if (await this.healthy()) {
      if (child !== this.child || this.state !== "starting") return;
      this.failures = 0;
      this.unhealthySince = undefined;
      this.log.info("vllm_ready", { pid: child.pid, startupMs: Date.now() - startedAt });
      this.setState("ready");
      this.schedule(() => void this.watch(child), this.target.launch.healthIntervalMs);
      return;
    }
    if (Date.now() - startedAt >= this.target.launch.startupTimeoutMs) {
      this.log.error("vllm_start_timeout", { pid: child.pid, timeoutMs: this.target.launch.startupTimeoutMs });
      this.restart(child);
      return;
    }
    this.schedule(() => void this.checkStartup(child, startedAt), this.target.launch.healthIntervalMs);
  }

  private async watch(child: ChildProcess): Promise<void> {
    if (child !== this.child || this.state !== "ready") return;
    const ok = await this.healthy();
    if (child !== this.child || this.state !== "ready") return;
    if (ok) this.unhealthySince = undefined;
    else {
      this.unhealthySince ??= Date.now();
      if (Date.now() - this.unhealthySince >= this.target.launch.unhealthyRestartMs) {
        this.log.error("vllm_unhealthy_restart", { pid: child.pid, unhealthyMs: Date.now() - this.unhealthySince });
        this.restart(child);
        return;
      }
    }
    this.schedule(() => void this.watch(child), this.target.launch.healthIntervalMs);
  }

  /** Kills a process that started but never became healthy, or stopped being healthy; its exit restarts it. */
  private restart(child: ChildProcess): void {
    this.setState("backoff");
    this.signal(child, "SIGTERM");
    const t = setTimeout(() => this.signal(child, "SIGKILL"), this.target.launch.stopTimeoutMs);
    t.unref();
  }
}
