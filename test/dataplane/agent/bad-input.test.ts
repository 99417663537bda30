/**
 * Hostile and broken input at the agent's inbound boundary, against a real agent with an emulator
 * engine: each answered with a clear OpenAI-shaped error while the agent keeps serving, and nothing
 * secret in its logs. (Signature failures one by one — unsigned, bad MAC, expired, replayed, foreign
 * node, retired key — are in agent.test.ts; this file covers bodies, sizes and logs.)
 */
import { createServer, request as httpRequest, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { startAgent, type RunningAgent } from "../../../dataplane/agent/agent";
import { parseAgentConfig } from "../../../dataplane/agent/config";
import { signRequest } from "../../../protocol/signing";

const NODE = "gpu-bad-input";
const SECRET = "sy_ns_3_badinputbadinputbadinputbadinput0";
const PREVIOUS = "sy_ns_2_previouspreviouspreviousprevious";
const MODEL = "sim-model";
const enc = new TextEncoder();

let edge: Server;
let agent: RunningAgent;
const logged: string[] = [];

beforeAll(async () => {
  // An edge that accepts every heartbeat: this file is about what reaches the agent.
  edge = createServer((req, res) => {
    req.resume();
    req.on("end", () => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ ok: true, accepted: [MODEL], ignored: [], draining: false, intervalMs: 1_000 })));
  });
  await new Promise<void>((r) => edge.listen(0, "127.0.0.1", r));
  // Everything the agent writes, at debug level, is kept to look for secrets in it.
  for (const stream of [process.stdout, process.stderr]) {
    const write = stream.write.bind(stream);
    vi.spyOn(stream, "write").mockImplementation((chunk: string | Uint8Array, ...rest: unknown[]) => {
      logged.push(typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8"));
      return (write as (c: string | Uint8Array, ...r: unknown[]) => boolean)(chunk, ...rest);
    });
  }
  const config = parseAgentConfig(
    {
      nodeId: NODE,
      region: "local",
      listen: { host: "127.0.0.1", port: 0 },
      logLevel: "debug",
      edge: { url: `http://127.0.0.1:${(edge.address() as AddressInfo).port}`, nodeSecret: SECRET, previousNodeSecret: PREVIOUS, heartbeatIntervalMs: 1_000 },
      engines: [{ kind: "sim", model: MODEL, timeScale: 1_000, eos: { kind: "fixed", tokens: 4 } }],
    },
    "bad-input.test",
  );
  agent = await startAgent(config);
});

afterAll(async () => {
  await agent?.stop({ leaving: false });
  edge?.closeAllConnections();
  await new Promise<void>((r) => edge?.close(() => r()));
  vi.restoreAllMocks();
});

afterEach(async () => {
  // Whatever came before, the agent still serves a good request.
  const res = await signed("/v1/chat/completions", JSON.stringify({ model: MODEL, max_tokens: 3, messages: [{ role: "user", content: "still there?" }] }));
  expect(res.status).toBe(200);
  expect(((await res.json()) as { object: string }).object).toBe("chat.completion");
});

async function signed(path: string, body: string | Uint8Array, opts: { secret?: string; keyVersion?: number } = {}): Promise<Response> {
  const bytes = typeof body === "string" ? enc.encode(body) : body;
  const headers = await signRequest({ nodeId: NODE, keyVersion: opts.keyVersion ?? 3, secret: opts.secret ?? SECRET, method: "POST", path, body: bytes, tenant: "t1", cacheNamespace: `t:t1:${MODEL}` });
  return fetch(agent.url + path, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: bytes });
}

async function error(res: Response): Promise<{ message: string; type: string; param: string | null; code: string | null }> {
  return ((await res.json()) as { error: { message: string; type: string; param: string | null; code: string | null } }).error;
}

/** A POST whose chunked body never ends: resolves with the status, or "hung" if none comes in `ms`. */
function endlessUpload(path: string, ms: number): Promise<number | "hung"> {
  const url = new URL(agent.url + path);
  return new Promise((resolve) => {
    const req = httpRequest({ host: url.hostname, port: url.port, path, method: "POST", headers: { "content-type": "application/json", "transfer-encoding": "chunked" } });
    const chunk = Buffer.alloc(256 * 1024, 0x20);
    let done = false;
    const finish = (v: number | "hung") => {
      if (done) return;
      done = true;
      clearInterval(pump);
      clearTimeout(timer);
      req.destroy();
      resolve(v);
    };
    req.on("response", (res) => {
      res.resume();
      finish(res.statusCode ?? 0);
    });
    req.on("error", () => finish("hung"));
    const pump = setInterval(() => {
      for (let i = 0; i < 8 && req.writableLength < 4 * 1024 * 1024; i++) req.write(chunk);
    }, 5);
    const timer = setTimeout(() => finish("hung"), ms);
  });
}

describe("agent inbound bodies", () => {
  it("answers 413 to an endless chunked upload at the size cap, without waiting for its end", async () => {
    expect(await endlessUpload("/v1/chat/completions", 10_000)).toBe(413);
  });

  it("answers 413 to a declared body over the cap before reading it", async () => {
    const res = await fetch(`${agent.url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: new Uint8Array(9 * 1024 * 1024) });
    expect(res.status).toBe(413);
    expect((await error(res)).code).toBe("request_too_large");
  });

  it("signed but broken bodies get 400 naming the problem", async () => {
    const cases: Array<[string, string | Uint8Array, string | null, string]> = [
      ["malformed JSON", '{"model":', null, "invalid_json"],
      ["invalid UTF-8", new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x7d]), null, "invalid_json"],
      ["empty body", "", null, "invalid_json"],
      ["not an object", "[1,2]", null, "invalid_body"],
      ["wrong type", JSON.stringify({ model: MODEL, max_tokens: "many", messages: [{ role: "user", content: "x" }] }), "max_tokens", "invalid_value"],
      ["absurd max_tokens", JSON.stringify({ model: MODEL, max_tokens: 1e12, messages: [{ role: "user", content: "x" }] }), "max_tokens", "invalid_value"],
      ["empty messages", JSON.stringify({ model: MODEL, messages: [] }), "messages", "invalid_value"],
      ["bad role", JSON.stringify({ model: MODEL, messages: [{ role: "root", content: "x" }] }), "messages[0].role", "invalid_value"],
    ];
    for (const [what, body, param, code] of cases) {
      const res = await signed("/v1/chat/completions", body);
      expect(res.status, what).toBe(400);
      const err = await error(res);
      expect(err, what).toMatchObject({ type: "invalid_request_error", param, code });
    }
    const unknown = await signed("/v1/chat/completions", JSON.stringify({ model: "not-here", messages: [{ role: "user", content: "x" }] }));
    expect(unknown.status).toBe(404);
    expect(await error(unknown)).toMatchObject({ param: "model", code: "model_not_found" });
  });
});

describe("agent logs", () => {
  it("never contain a node secret, whatever was sent", async () => {
    // Good requests with both secrets, forged ones, replays, and a request carrying a secret-looking
    // value in its body: none of it may put a secret in the logs.
    const ok = await signed("/v1/chat/completions", JSON.stringify({ model: MODEL, max_tokens: 2, messages: [{ role: "user", content: "hi" }] }), { secret: PREVIOUS, keyVersion: 2 });
    expect(ok.status).toBe(200);
    await ok.text();
    const forged = await signed("/v1/chat/completions", JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "hi" }] }), { secret: `${SECRET}x` });
    expect(forged.status).toBe(401);
    await forged.text();
    // Let at least one heartbeat go out (they are signed with the secret).
    await new Promise((r) => setTimeout(r, 1_200));
    const text = logged.join("");
    expect(text).toContain(NODE); // the capture works: the agent's lines are in it
    for (const secret of [SECRET, PREVIOUS]) {
      expect(text).not.toContain(secret);
      // Nor the secret's MAC part on its own.
      expect(text).not.toContain(secret.slice("sy_ns_3_".length));
    }
  });
});
