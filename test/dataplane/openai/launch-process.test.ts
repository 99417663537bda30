/**
 * Launch mode end to end without vLLM: the `openai` engine starts a fake `vllm` (fixtures/
 * fake-vllm.ts: records its argv, then serves the emulator's vLLM-compatible server) and the tests
 * check the flags it got, that the engine stays unhealthy until /health answers, serves requests and
 * KV events once it does, restarts the process after a crash or a hang (unhealthy meanwhile), and
 * stops it and its forked children on shutdown, with SIGKILL when SIGTERM is ignored.
 */
import { afterEach, describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startAgent } from "../../../dataplane/agent/agent";
import { parseAgentConfig } from "../../../dataplane/agent/config";
import { OpenAIEngine } from "../../../dataplane/engines/openai/adapter";
import { openAIEngineConfigSchema } from "../../../dataplane/engines/openai/config";
import { vllmCommandLine } from "../../../dataplane/engines/openai/launch";
import type { EngineRequest } from "../../../dataplane/engines/engine";
import type { Logger } from "../../../dataplane/lib/log";
import { validateGenerationRequest } from "../../../protocol/openai-request";

const silent: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => silent };
const FAKE = fileURLToPath(new URL("./fixtures/fake-vllm.ts", import.meta.url));
const COMMAND = [process.execPath, "--import", "tsx", FAKE];

interface LogLine {
  event: string;
  pid: number;
  t: number;
  start?: number;
  argv?: string[];
  env?: Record<string, string | null>;
  childPid?: number;
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const dirs: string[] = [];
const engines: OpenAIEngine[] = [];
afterEach(async () => {
  await Promise.allSettled(engines.splice(0).map((e) => e.stop()));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function setup(env: Record<string, string>, launch: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), "fake-vllm-"));
  dirs.push(dir);
  const logFile = path.join(dir, "log.jsonl");
  const port = await freePort();
  const config = openAIEngineConfigSchema.parse({
    kind: "openai",
    model: "llama-3-8b",
    url: `http://127.0.0.1:${port}`,
    pollIntervalMs: 100,
    ...extra,
    launch: { command: COMMAND, model: "meta-llama/Meta-Llama-3-8B-Instruct", healthIntervalMs: 100, restartDelayMs: 300, stopTimeoutMs: 5_000, output: "ignore", ...launch, env: { FAKE_VLLM_LOG: logFile, ...env } },
  });
  const engine = new OpenAIEngine(config, silent);
  engines.push(engine);
  const log = (): LogLine[] => {
    try {
      return readFileSync(logFile, "utf8").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as LogLine);
    } catch {
      return [];
    }
  };
  return { engine, config, log, port };
}

async function until(cond: () => boolean, timeoutMs = 30_000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

function chatRequest(): EngineRequest {
  const body = { model: "llama-3-8b", messages: [{ role: "user", content: "Hello there, how are you?" }], max_tokens: 8, stream: false };
  return { requestId: "req-1", endpoint: "chat", body: validateGenerationRequest("chat", body), rawBody: new TextEncoder().encode(JSON.stringify(body)), signal: new AbortController().signal };
}

describe("launch mode with a fake vllm", () => {
  it("passes the configured flags, stays unhealthy until /health answers, then serves requests and KV events", async () => {
    const eventsPort = await freePort();
    const { engine, config, log } = await setup(
      { FAKE_VLLM_STARTUP_MS: "800", FAKE_VLLM_VERSION: "0.14.1" },
      { cpuOffloadGiB: 32 },
      { apiKey: "sk-engine-123", kvEvents: { endpoint: `tcp://127.0.0.1:${eventsPort}`, topic: "kv-events" } },
    );
    await engine.start();
    const launcher = engine.launcher!;
    expect(launcher.version).toBe("0.14.1"); // asked with --version, since offloading depends on it
    expect(launcher.state).toBe("starting");
    expect(engine.load().healthy).toBe(false);

    await launcher.ready();
    await engine.poll();
    expect(engine.load().healthy).toBe(true);
    const start = log().find((l) => l.event === "start")!;
    // What vLLM itself sees: the argv after the command prefix (here node, --import tsx, the fake).
    expect(start.argv).toEqual(vllmCommandLine({ ...config, launch: config.launch! }, "0.14.1").args.slice(COMMAND.length - 1));
    expect(start.argv).toEqual([
      "serve", "meta-llama/Meta-Llama-3-8B-Instruct", "--host", "127.0.0.1", "--port", String(new URL(config.url).port),
      "--served-model-name", "llama-3-8b", "--enable-prefix-caching",
      "--kv-events-config", `{"enable_kv_cache_events":true,"publisher":"zmq","endpoint":"tcp://*:${eventsPort}","topic":"kv-events"}`,
      "--kv-offloading-size", "32", "--kv-offloading-backend", "native",
    ]);
    expect(start.env?.VLLM_API_KEY).toBe("sk-engine-123");
    // The health wait really waited: ready only after the simulated load time.
    const ready = log().find((l) => l.event === "ready")!;
    expect(ready.t - start.t).toBeGreaterThanOrEqual(800);

    // Re-subscribed as vLLM became ready (not after the subscriber's reconnect backoff).
    await until(() => engine.kvEvents?.connected === true, 2_000, "the KV event subscription");
    const res = await engine.handle(chatRequest());
    expect(res.status).toBe(200);
    const body = (await res.json()) as { model: string; choices: Array<{ message: { content: string } }>; usage: { completion_tokens: number } };
    expect(body.model).toBe("llama-3-8b");
    expect(body.usage.completion_tokens).toBeGreaterThan(0);
    // The agent's subscription (same endpoint and topic as the flags) receives the engine's events.
    await until(() => (engine.kvEvents?.batches ?? 0) > 0, 10_000, "a KV event batch");
  });

  it("restarts vLLM after a crash, with backoff, and reports the engine unhealthy meanwhile", async () => {
    const { engine, log } = await setup({ FAKE_VLLM_CRASH_ON_STARTS: "1", FAKE_VLLM_CRASH_AFTER_MS: "300" }, { restartDelayMs: 700 });
    await engine.start();
    const launcher = engine.launcher!;
    await launcher.ready();
    await engine.poll();
    expect(engine.load().healthy).toBe(true);
    await until(() => launcher.state === "backoff", 20_000, "the crash");
    expect(engine.load().healthy).toBe(false); // at once, not at the next poll
    await launcher.ready();
    expect(launcher.starts).toBe(2);
    await engine.poll();
    expect(engine.load().healthy).toBe(true);
    const lines = log();
    expect(lines.map((l) => l.event)).toEqual(["start", "ready", "crash", "start", "ready"]);
    const crash = lines[2]!;
    const restart = lines[3]!;
    expect(restart.t - crash.t).toBeGreaterThanOrEqual(650); // the restart delay, minus timer slack
    expect(restart.pid).not.toBe(crash.pid);
  });

  it("restarts a vLLM that stops answering /health, and one that never becomes healthy", async () => {
    const hung = await setup({ FAKE_VLLM_HANG_ON_STARTS: "1", FAKE_VLLM_CRASH_AFTER_MS: "200" }, { unhealthyRestartMs: 1_000 });
    await hung.engine.start();
    await hung.engine.launcher!.ready();
    const first = hung.engine.launcher!.pid!;
    await until(() => hung.engine.launcher!.starts === 2 && hung.engine.launcher!.state === "ready", 30_000, "the restart of the hung process");
    expect(alive(first)).toBe(false);
    expect(hung.log().map((l) => l.event)).toEqual(["start", "ready", "hang", "sigterm", "start", "ready"]);

    // Never listens; killed at the start-up timeout (long enough for the fake to boot and log), then started again.
    const slow = await setup({ FAKE_VLLM_STARTUP_MS: "60000" }, { startupTimeoutMs: 5_000 });
    await slow.engine.start();
    await until(() => slow.log().filter((l) => l.event === "start").length >= 2, 40_000, "a restart after the start-up timeout");
    const [a, b] = slow.log().filter((l) => l.event === "start");
    expect(b!.t - a!.t).toBeGreaterThanOrEqual(5_000);
    expect(alive(a!.pid)).toBe(false);
    expect(slow.engine.load().healthy).toBe(false);
  });

  it("stops vLLM with the agent: SIGTERM to its process group, forked children included", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "fake-vllm-"));
    dirs.push(dir);
    const logFile = path.join(dir, "log.jsonl");
    const port = await freePort();
    const config = parseAgentConfig(
      {
        nodeId: "gpu-1",
        region: "eu",
        listen: { host: "127.0.0.1", port: 0 },
        edge: { url: "http://127.0.0.1:9", nodeSecret: `sy_ns_1_${"a".repeat(24)}`, heartbeatIntervalMs: 60_000 },
        engines: [{ kind: "openai", model: "llama-3-8b", url: `http://127.0.0.1:${port}`, launch: { command: COMMAND, model: "m", healthIntervalMs: 100, output: "ignore", env: { FAKE_VLLM_LOG: logFile, FAKE_VLLM_CHILD: "1" } } }],
      },
      "test",
    );
    const agent = await startAgent(config, { log: silent });
    const engine = agent.engines.get("llama-3-8b")!.engine as OpenAIEngine;
    await engine.launcher!.ready();
    const lines = () => readFileSync(logFile, "utf8").trim().split("\n").map((l) => JSON.parse(l) as LogLine);
    const pid = lines()[0]!.pid;
    const childPid = lines().find((l) => l.event === "child")!.childPid!;
    expect(alive(pid) && alive(childPid)).toBe(true);
    await agent.stop({ leaving: false });
    expect(engine.launcher!.state).toBe("stopped");
    expect(lines().some((l) => l.event === "sigterm")).toBe(true);
    await until(() => !alive(pid) && !alive(childPid), 5_000, "vllm and its child to exit");
  });

  it("SIGKILLs a vLLM that ignores SIGTERM after stopTimeoutMs", async () => {
    const { engine, log } = await setup({ FAKE_VLLM_IGNORE_SIGTERM: "1" }, { stopTimeoutMs: 500 });
    await engine.start();
    await engine.launcher!.ready();
    const pid = engine.launcher!.pid!;
    const t0 = Date.now();
    await engine.stop();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(450);
    expect(alive(pid)).toBe(false);
    expect(log().map((l) => l.event)).toContain("sigterm_ignored");
    expect(engine.launcher!.starts).toBe(1); // a stop is not a crash: no restart
  });

  it("fails the start when offloading is asked for and the version cannot be read", async () => {
    const { engine } = await setup({}, { command: "/nonexistent/bin/vllm", cpuOffloadGiB: 8 });
    await expect(engine.start()).rejects.toThrow(/--version/);
  });
});
