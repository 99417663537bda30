/**
 * `switchyard bench …` as operators run it (child processes of bin/switchyard.mjs): help with
 * examples, clear errors (exit 2) for bad options and bad input files, the whole offline pipeline
 * (dataset → workload → run against a scripted server → report → compare), and Ctrl-C during a run.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir } from "../../support/tmp";
import { evenChunks, ScriptedServer } from "./scripted-server";

const ROOT = resolve(import.meta.dirname, "..", "..", "..");
const BIN = join(ROOT, "bin", "switchyard.mjs");
const dir = tempDir("bench-cli");
let slow = false;
const server = new ScriptedServer(() =>
  slow ? { chunks: evenChunks(100, 50, 30), usage: { prompt_tokens: 9, completion_tokens: 100 } } : { chunks: evenChunks(4, 20, 5), usage: { prompt_tokens: 9, completion_tokens: 4, cached_tokens: 0 }, headers: { "x-switchyard-node": "n1" } },
);

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function start(args: string[], env: Record<string, string> = {}): { child: ChildProcess; done: Promise<Result> } {
  const base: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("SWITCHYARD_")) base[k] = v;
  const child = spawn(process.execPath, [BIN, ...args], { cwd: dir.path, env: { ...base, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout?.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr?.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const done = new Promise<Result>((ok, fail) => {
    child.on("error", fail);
    child.on("close", (code) => ok({ code, stdout, stderr }));
  });
  return { child, done };
}

const cli = (args: string[], env?: Record<string, string>) => start(args, env).done;

async function all(invocations: string[][], limit = 4): Promise<Result[]> {
  const out: Result[] = new Array(invocations.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < invocations.length) {
        const i = next++;
        out[i] = await cli(invocations[i] as string[]);
      }
    }),
  );
  return out;
}

beforeAll(() => server.start());
afterAll(async () => {
  await server.stop();
  dir.cleanup();
});

describe("help and usage errors", () => {
  it("every subcommand has help with an example", async () => {
    const cmds = [["bench"], ["bench", "dataset"], ["bench", "dataset", "shared-prefix"], ["bench", "dataset", "multi-turn"], ["bench", "dataset", "sharegpt"], ["bench", "dataset", "client-log"], ["bench", "dataset", "inspect"], ["bench", "workload"], ["bench", "run"], ["bench", "report"], ["bench", "compare"], ["bench", "recipe"]];
    const results = await all(cmds.map((c) => [...c, "--help"]));
    results.forEach((r, i) => {
      expect(r.code, (cmds[i] as string[]).join(" ")).toBe(0);
      expect(r.stdout).toContain("Examples:");
      expect(r.stdout).toContain("$ switchyard bench");
    });
  });

  it("bad option values and bad files exit 2 with one clear line", async () => {
    writeFileSync(join(dir.path, "bad.jsonl"), '{"prompt": "ok"}\n{"prompt": 3}\n');
    writeFileSync(join(dir.path, "ok.jsonl"), '{"prompt": "ok"}\n');
    const [dist, rate, missing, badFile, pattern, recipe, bursty, amplitude, azure] = await all([
      ["bench", "dataset", "shared-prefix", "--groups", "2", "--prompts-per-group", "2", "--prefix-length", "normal:500", "--suffix-length", "10", "-o", "x.jsonl"],
      ["bench", "workload", "--pattern", "poisson", "--rate", "0", "--duration", "5s", "--dataset", "d.jsonl", "-o", "w.jsonl"],
      ["bench", "run", "-w", "nowhere.jsonl", "-m", "m", "-o", "r.jsonl"],
      ["bench", "workload", "--pattern", "poisson", "--rate", "1", "--duration", "5s", "--dataset", "bad.jsonl", "-o", "w.jsonl"],
      ["bench", "workload", "--pattern", "sinus", "--dataset", "bad.jsonl", "-o", "w.jsonl"],
      ["bench", "recipe", "nope"],
      ["bench", "workload", "--pattern", "bursty", "--rate", "5", "--duration", "5s", "--dataset", "ok.jsonl", "-o", "w.jsonl"],
      ["bench", "workload", "--pattern", "diurnal", "--rate", "2", "--amplitude", "2", "--duration", "5s", "--dataset", "ok.jsonl", "-o", "w.jsonl"],
      ["bench", "workload", "--pattern", "azure", "--duration", "5s", "-o", "w.jsonl"],
    ]);
    expect(dist).toMatchObject({ code: 2 });
    expect(dist?.stderr).toContain("option '--prefix-length <dist>' argument 'normal:500' is invalid. 'normal:500': normal needs sd");
    expect(rate?.code).toBe(2);
    expect(rate?.stderr).toContain("option '--rate <qps>' argument '0' is invalid. must be a positive number");
    expect(missing).toMatchObject({ code: 2, stderr: "switchyard: nowhere.jsonl: no such file\n" });
    expect(badFile).toMatchObject({ code: 2, stderr: "switchyard: bad.jsonl:2: prompt: Invalid input: expected string, received number\n" });
    expect(pattern?.code).toBe(2);
    expect(pattern?.stderr).toContain("Allowed choices are constant, poisson, bursty, ramp, diurnal, azure, replay");
    expect(recipe).toMatchObject({ code: 2, stderr: "switchyard: unknown recipe 'nope': one of routing, kv-offload, multi-turn, fairness\n" });
    // Each pattern's own options: missing or out of range.
    expect(bursty).toMatchObject({ code: 2, stderr: "switchyard: --pattern bursty needs --on <duration>\n" });
    expect(amplitude).toMatchObject({ code: 2, stderr: "switchyard: --amplitude must be between 0 and 1\n" });
    expect(azure).toMatchObject({ code: 2, stderr: "switchyard: --pattern azure needs --trace <file>\n" });
  });
});

describe("the offline pipeline", () => {
  it("dataset → workload (two tenants) → run → report → compare", async () => {
    const p = (f: string) => join(dir.path, f);
    const ds = await cli(["bench", "dataset", "shared-prefix", "--groups", "2", "--prompts-per-group", "3", "--prefix-length", "200", "--suffix-length", "uniform:10,20", "--output-length", "4", "--seed", "3", "-o", "sp.jsonl"]);
    expect(ds).toMatchObject({ code: 0, stderr: "wrote 6 prompts in 2 groups to sp.jsonl\n" });
    const wl = await cli(["bench", "workload", "--dataset", "sp.jsonl", "--pattern", "constant", "--rate", "20", "--duration", "500ms", "--tenant", "heavy:rate=16,key-env=HEAVY_KEY", "--tenant", "light:rate=4,key-env=LIGHT_KEY", "-o", "w.jsonl"]);
    expect(wl.code).toBe(0);
    expect(wl.stderr).toContain("wrote 10 requests");
    const header = JSON.parse(readFileSync(p("w.jsonl"), "utf8").split("\n")[0] as string) as { tenants: unknown };
    expect(header.tenants).toEqual([{ id: "heavy", api_key_env: "HEAVY_KEY", rate: 16 }, { id: "light", api_key_env: "LIGHT_KEY", rate: 4 }]);
    const noKey = await cli(["bench", "run", "-w", "w.jsonl", "--base-url", server.url, "-m", "m", "-o", "r.jsonl"]);
    expect(noKey).toMatchObject({ code: 2, stderr: "switchyard: tenant key variable(s) not set: HEAVY_KEY (tenant heavy), LIGHT_KEY (tenant light)\n" });
    const run = await cli(["bench", "run", "-w", "w.jsonl", "--base-url", server.url, "-m", "m", "--routing-strategy", "prefix-cache", "--qps", "20", "-q", "-o", "runs/r.jsonl"], { HEAVY_KEY: "kh", LIGHT_KEY: "kl" });
    expect(run.code).toBe(0);
    expect(run.stderr).toMatch(/^10 ok, 0 errors, 0 cancelled, 0 not sent in/);
    const keys = server.requests.map((r) => r.headers.authorization).sort();
    expect(keys.filter((k) => k === "Bearer kh")).toHaveLength(8);
    expect(keys.filter((k) => k === "Bearer kl")).toHaveLength(2);
    expect(server.requests.map((r) => r.headers["routing-strategy"])).toEqual(Array(10).fill("prefix-cache"));
    const records = readFileSync(p("runs/r.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { status: string; node: string; prompt?: string; output?: string });
    expect(records).toHaveLength(10);
    for (const r of records) expect(r).toMatchObject({ status: "ok", node: "n1", prompt: expect.any(String), output: " tok0 tok1 tok2 tok3" });
    const rep = await cli(["bench", "report", "runs/r.jsonl", "-d", "report"]);
    expect(rep.code).toBe(0);
    expect(rep.stdout.split("\n")).toContain("report/summary.md");
    expect(existsSync(p("report/charts/tenant-service.png")), "tenant-service.png").toBe(true);
    const md = readFileSync(p("report/summary.md"), "utf8");
    expect(md).toMatch(/\| heavy \| 8 \| 0 \|/);
    expect(md).toMatch(/\| light \| 2 \| 0 \|/);
    const cmp = await cli(["bench", "compare", "report/summary.json", "--unit", "ms"]);
    expect(cmp.code).toBe(0);
    expect(cmp.stdout.split("\n")[0]).toBe("| QPS | prefix-cache mean TTFT (ms) | prefix-cache P99 TTFT (ms) |");
    expect(cmp.stdout.split("\n")[2]).toMatch(/^\| 20 \| \d+(\.\d+)? \| \d+(\.\d+)? \|$/);
    // The client's own output back to a dataset, then a replay workload.
    const back = await cli(["bench", "dataset", "client-log", "-i", "runs/r.jsonl", "-o", "replay.jsonl"]);
    expect(back).toMatchObject({ code: 0, stderr: "wrote 10 records (prompts and sessions, with timestamp_ms) to replay.jsonl\n" });
    const replay = await cli(["bench", "workload", "--pattern", "replay", "--dataset", "replay.jsonl", "-o", "replay-w.jsonl"]);
    expect(replay.code).toBe(0);
    expect(replay.stderr).toContain("wrote 10 requests");
  });

  it("Ctrl-C during a run keeps finished requests, marks in-flight ones cancelled, exits 130", async () => {
    const lines = Array.from({ length: 6 }, (_, i) => JSON.stringify({ timestamp: i * 100, requests: [{ prompt: `p${i}`, output_length: 100 }] }));
    lines.push(JSON.stringify({ timestamp: 60_000, requests: [{ prompt: "late" }] }));
    writeFileSync(join(dir.path, "slow.jsonl"), `${lines.join("\n")}\n`);
    slow = true;
    try {
      const { child, done } = start(["bench", "run", "-w", "slow.jsonl", "--base-url", server.url, "-m", "m", "-o", "slow-results.jsonl"]);
      // Wait until the requests are in flight, then interrupt.
      const t0 = Date.now();
      while (server.inflight < 6 && Date.now() - t0 < 20_000) await new Promise((r) => setTimeout(r, 50));
      expect(server.inflight).toBe(6);
      child.kill("SIGINT");
      const r = await done;
      expect(r.code).toBe(130);
      expect(r.stderr).toContain("stopping: in-flight requests are recorded as cancelled");
      // stderr is a pipe here, not a terminal: no progress bar in the way.
      expect(r.stderr).not.toContain(" requests | ");
      const records = readFileSync(join(dir.path, "slow-results.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { status: string; ttft_ms: number | null });
      expect(records).toHaveLength(6);
      expect(records.every((x) => x.status === "cancelled")).toBe(true);
      expect(records.some((x) => x.ttft_ms !== null)).toBe(true);
      const meta = JSON.parse(readFileSync(join(dir.path, "slow-results.run.json"), "utf8")) as Record<string, unknown>;
      expect(meta).toMatchObject({ interrupted: true, cancelled: 6, not_sent: 1, ok: 0 });
    } finally {
      slow = false;
    }
  });

  it("shows a progress bar on a terminal: requests done, in flight, errors", async () => {
    writeFileSync(join(dir.path, "tty.jsonl"), `${Array.from({ length: 5 }, (_, i) => JSON.stringify({ timestamp: i * 20, requests: [{ prompt: `t${i}`, output_length: 4 }] })).join("\n")}\n`);
    const cmd = [process.execPath, BIN, "bench", "run", "-w", "tty.jsonl", "--base-url", server.url, "-m", "m", "-o", "tty-results.jsonl"].map((a) => `'${a}'`).join(" ");
    // util-linux `script` runs the command on a pseudo-terminal, as an operator's shell would; its
    // output (the terminal's) arrives on our stdout.
    const child = spawn("script", ["-qec", cmd, "/dev/null"], { cwd: dir.path, stdio: ["ignore", "pipe", "pipe"] });
    let screen = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (screen += d));
    const code = await new Promise<number | null>((ok, fail) => {
      child.on("error", fail);
      child.on("close", ok);
    });
    expect(code).toBe(0);
    expect(screen).toMatch(/ 5\/5 requests \| 0 in flight \| 0 errors \| \d+s/);
    expect(screen).toContain("5 ok, 0 errors, 0 cancelled, 0 not sent in");
  });
});
