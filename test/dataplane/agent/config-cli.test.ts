/**
 * `switchyard agent --config <file>` with bad configuration, as an operator runs it (a child process
 * through bin/switchyard.mjs): every case exits non-zero with one message naming the file and the
 * field, and no stack trace.
 */
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir } from "../../support/tmp";

const BIN = fileURLToPath(new URL("../../../bin/switchyard.mjs", import.meta.url));
const SECRET = "sy_ns_1_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const dir = tempDir("agent-config-cli");
let taken: Server;
let takenPort: number;

beforeAll(async () => {
  taken = createServer();
  await new Promise<void>((r) => taken.listen(0, "127.0.0.1", r));
  takenPort = (taken.address() as { port: number }).port;
});
afterAll(async () => {
  await new Promise<void>((r) => taken.close(() => r()));
  dir.cleanup();
});

function config(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    nodeId: "gpu-1",
    region: "eu-west",
    listen: { host: "127.0.0.1", port: 0 },
    edge: { url: "http://127.0.0.1:9", nodeSecret: SECRET },
    engines: [{ kind: "sim", model: "sim-model", timeScale: 1000 }],
    ...over,
  };
}

function runAgent(name: string, content: string | null): Promise<{ code: number | null; stderr: string; path: string }> {
  const path = join(dir.path, name);
  if (content !== null) writeFileSync(path, content);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, "agent", "--config", path], { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, SWITCHYARD_NODE_SECRET: "" } });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stderr, path });
    });
  });
}

describe("switchyard agent with a bad config", () => {
  it.each<[string, string | null, RegExp]>([
    ["missing.json", null, /cannot read agent config/],
    ["not-json.json", '{"nodeId": "gpu-1",', /is not valid JSON/],
    ["wrong-type.json", JSON.stringify(config({ listen: { port: "8801" } })), /^ {2}listen\.port: /m],
    ["bad-secret.json", JSON.stringify(config({ edge: { url: "http://127.0.0.1:9", nodeSecret: "hunter2" } })), /^ {2}edge\.nodeSecret: /m],
    ["bad-engine.json", JSON.stringify(config({ engines: [{ kind: "sim", model: "m", timeScale: -1 }] })), /^ {2}engines\[0\]\.timeScale: /m],
    ["unknown-field.json", JSON.stringify(config({ secrets: {} })), /^ {2}\(root\): /m],
    ["no-model-file.json", JSON.stringify(config({ engines: [{ kind: "llamacpp", model: "m", modelPath: "/nonexistent/model.gguf" }] })), /^ {2}engines\[0\]\.modelPath: '\/nonexistent\/model\.gguf' does not exist/m],
  ])("%s: exit 2, names the field, no stack trace", async (name, content, message) => {
    const r = await runAgent(name, content);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^switchyard: /);
    expect(r.stderr).toContain(r.path);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(/^\s+at /m);
    expect(r.stderr).not.toContain("hunter2");
  });

  it("a port in use: exit 2 with one line saying so, no stack trace", async () => {
    const r = await runAgent("port-taken.json", JSON.stringify(config({ listen: { host: "127.0.0.1", port: takenPort } })));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^switchyard: the agent did not start: .*EADDRINUSE/m);
    expect(r.stderr).not.toMatch(/^\s+at /m);
  });
});
