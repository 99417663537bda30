/**
 * `switchyard cache-server` as operators run it (a child process through bin/switchyard.mjs):
 * help with an example, flag validation, serving, metrics, and a clean exit on SIGTERM.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { L2Client } from "../../../dataplane/kvcache/l2/l2-client";
import { bytes, key, quietLogger } from "./l2-test-support";

const BIN = fileURLToPath(new URL("../../../bin/switchyard.mjs", import.meta.url));
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
});

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("switchyard cache-server", () => {
  it("prints help with an example", async () => {
    const r = await run(["cache-server", "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("--capacity <size>");
    expect(r.stdout).toContain("--policy <name>");
    expect(r.stdout).toMatch(/Example:\n\s+switchyard cache-server --host 0\.0\.0\.0 --port 7400/);
  });

  it("rejects bad flags with exit status 2 and a message naming the flag", async () => {
    const results = await Promise.all([
      run(["cache-server", "--capacity", "lots"]),
      run(["cache-server", "--policy", "fifo"]),
      run(["cache-server", "--port", "70000", "--metrics-port", "off"]),
      run(["cache-server", "--port", "-3"]),
      run(["cache-server", "--shards", "0", "--metrics-port", "off"]),
    ]);
    expect(results.map((r) => r.code)).toEqual([2, 2, 2, 2, 2]);
    expect(results[4]?.stderr).toMatch(/--shards: Too small/);
    expect(results[0]?.stderr).toMatch(/--capacity: 'lots' is not a size/);
    expect(results[1]?.stderr).toMatch(/--policy must be lru or s3fifo/);
    expect(results[2]?.stderr).toMatch(/--port: Too big/);
    expect(results[3]?.stderr).toMatch(/--port/);
    // One line per problem for the operator, never a stack trace.
    for (const r of results) {
      expect(r.stderr).toMatch(/^switchyard: /);
      expect(r.stderr).not.toMatch(/^\s+at /m);
    }
  });

  it.each([
    ["one thread", []],
    ["--shards 2", ["--shards", "2"]],
  ])("serves until SIGTERM, with metrics, then exits 0 (%s)", async (_name, extra) => {
    const child = spawn(process.execPath, [BIN, "cache-server", "--port", "0", "--metrics-port", "0", "--capacity", "64MiB", "--policy", "s3fifo", ...extra], { stdio: ["ignore", "pipe", "pipe"] });
    children.push(child);
    let out = "";
    const listening = await new Promise<{ endpoint: string; metrics_port: number; policy: string; shard_ports?: number[] }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no listening line: ${out}`)), 15_000);
      child.stdout.on("data", (d) => {
        out += d;
        const line = out.split("\n").find((l) => l.includes('"event":"listening"'));
        if (line) {
          clearTimeout(timer);
          resolve(JSON.parse(line));
        }
      });
    });
    expect(listening.policy).toBe("s3fifo");
    expect(listening.shard_ports?.length ?? 1).toBe(extra.length > 0 ? 2 : 1);
    const c = new L2Client({ servers: [listening.endpoint], logger: quietLogger });
    await c.put(key(1), bytes(100_000));
    expect((await c.get(key(1)))?.length).toBe(100_000);
    const metrics = await (await fetch(`http://127.0.0.1:${listening.metrics_port}/metrics`)).text();
    expect(metrics).toContain("switchyard_kvcache_server_bytes_used 100000");
    await c.close();
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
  });
});
