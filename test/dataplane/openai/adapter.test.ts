/**
 * The `openai` engine adapter against a fake OpenAI-compatible server (node:http): load and health
 * polled from /metrics and /health, requests forwarded byte for byte, streams passed through as
 * they arrive, and a client that goes away closing the upstream connection.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { startAgent } from "../../../dataplane/agent/agent";
import { parseAgentConfig } from "../../../dataplane/agent/config";
import { OpenAIEngine } from "../../../dataplane/engines/openai/adapter";
import { openAIEngineConfigSchema, type OpenAIEngineConfig } from "../../../dataplane/engines/openai/config";
import type { EngineRequest } from "../../../dataplane/engines/engine";
import type { Logger } from "../../../dataplane/lib/log";
import { ApiError } from "../../../protocol/openai-error";
import { signRequest } from "../../../protocol/signing";
import { validateGenerationRequest, type Endpoint } from "../../../protocol/openai-request";

const silent: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => silent };

interface Received {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
  body: Buffer;
}

/** A fake vLLM: /health, /metrics, and SSE generation that proceeds one chunk per `step()`. */
class FakeEngineServer {
  server!: Server;
  port = 0;
  healthStatus = 200;
  /** "destroy" drops the connection instead of answering. */
  healthMode: "answer" | "destroy" = "answer";
  metricsStatus = 200;
  metrics = "";
  chunks = ["data: one\n\n", "data: two\n\n", "data: three\n\n", "data: [DONE]\n\n"];
  /** When set, generation answers with this status and JSON body instead of streaming. */
  errorReply: { status: number; body: unknown } | undefined;
  received: Received[] = [];
  /** Per generation request: "finished" when the whole stream was written, "closed" when the peer closed first. */
  outcomes: Array<"open" | "finished" | "closed"> = [];
  private waiters: Array<() => void> = [];
  private permits = 0;

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Lets the stream(s) write `n` more chunks. */
  step(n = 1): void {
    for (let i = 0; i < n; i++) {
      const w = this.waiters.shift();
      if (w) w();
      else this.permits++;
    }
  }

  /** Lets every stream run to the end from now on. */
  flood(): void {
    this.permits = Number.POSITIVE_INFINITY;
    for (const w of this.waiters.splice(0)) w();
  }

  private gate(): Promise<void> {
    if (this.permits > 0) {
      this.permits--;
      return Promise.resolve();
    }
    return new Promise((r) => this.waiters.push(r));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const parts: Buffer[] = [];
    for await (const p of req) parts.push(p as Buffer);
    const body = Buffer.concat(parts);
    const path = new URL(req.url ?? "/", "http://x").pathname;
    if (req.method === "GET" && path.endsWith("/health")) {
      if (this.healthMode === "destroy") return void req.socket.destroy();
      res.writeHead(this.healthStatus).end();
      return;
    }
    if (req.method === "GET" && path.endsWith("/metrics")) {
      res.writeHead(this.metricsStatus, { "content-type": "text/plain; version=0.0.4" }).end(this.metrics);
      return;
    }
    this.received.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body });
    if (this.errorReply) {
      res.writeHead(this.errorReply.status, { "content-type": "application/json" }).end(JSON.stringify(this.errorReply.body));
      return;
    }
    const wantsStream = (JSON.parse(body.toString()) as { stream?: boolean }).stream === true;
    if (!wantsStream) {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ object: "chat.completion", echo: JSON.parse(body.toString()) }));
      return;
    }
    const index = this.outcomes.push("open") - 1;
    res.on("close", () => {
      if (this.outcomes[index] === "open") this.outcomes[index] = "closed";
    });
    res.writeHead(200, { "content-type": "text/event-stream", "x-upstream-secret": "not forwarded" });
    res.flushHeaders();
    for (const chunk of this.chunks) {
      await this.gate();
      if (res.destroyed) return;
      res.write(chunk);
    }
    this.outcomes[index] = "finished";
    res.end();
  }

  reset(): void {
    this.received = [];
    this.outcomes = [];
    this.healthStatus = 200;
    this.healthMode = "answer";
    this.metricsStatus = 200;
    this.metrics = "";
    this.errorReply = undefined;
    this.permits = 0;
    this.waiters = [];
  }

  async close(): Promise<void> {
    this.flood();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

const VLLM_METRICS = (running: number, usage: number) => `# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="served-name"} ${running}.0
vllm:num_requests_waiting{engine="0",model_name="served-name"} 4.0
vllm:kv_cache_usage_perc{engine="0",model_name="served-name"} ${usage}
vllm:cache_config_info{block_size="16",engine="0",num_gpu_blocks="2048"} 1.0
`;

function config(url: string, over: Partial<OpenAIEngineConfig> = {}): OpenAIEngineConfig {
  return openAIEngineConfigSchema.parse({ kind: "openai", model: "llama", url, pollIntervalMs: 100, connections: 4, ...over });
}

function engineRequest(endpoint: Endpoint, raw: string, signal = new AbortController().signal): EngineRequest {
  const bytes = new TextEncoder().encode(raw);
  return { requestId: "req-123", endpoint, body: validateGenerationRequest(endpoint, JSON.parse(raw)), rawBody: bytes, signal };
}

async function waitFor(cond: () => boolean, what: string, timeoutMs = 3_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const decoder = new TextDecoder();

let fake: FakeEngineServer;
const engines: OpenAIEngine[] = [];

async function startEngine(over: Partial<OpenAIEngineConfig> = {}, base = fake.url): Promise<OpenAIEngine> {
  const e = new OpenAIEngine(config(base, over), silent);
  engines.push(e);
  await e.start();
  return e;
}

beforeAll(async () => {
  fake = new FakeEngineServer();
  await fake.start();
});

afterEach(async () => {
  fake.flood();
  await Promise.all(engines.splice(0).map((e) => e.stop()));
  fake.reset();
});

afterAll(async () => {
  await fake.close();
});

describe("OpenAIEngine load and health", () => {
  it("is unhealthy before start and reflects the scraped metrics after", async () => {
    fake.metrics = VLLM_METRICS(5, 0.375);
    const e = new OpenAIEngine(config(fake.url), silent);
    engines.push(e);
    expect(e.load()).toEqual({ healthy: false, running: 0, waiting: 0, kvUsage: 0, kvCapacityTokens: 0 });
    await e.start();
    expect(e.load()).toEqual({ healthy: true, running: 5, waiting: 4, kvUsage: 0.375, kvCapacityTokens: 32_768 });
    // The background poll picks up changes.
    fake.metrics = VLLM_METRICS(9, 0.5);
    await waitFor(() => e.load().running === 9, "the next scrape");
    expect(e.load().kvUsage).toBe(0.5);
  });

  it("configured kvCapacityTokens wins over the scraped capacity", async () => {
    fake.metrics = VLLM_METRICS(0, 0);
    const e = await startEngine({ kvCapacityTokens: 1000 });
    expect(e.load().kvCapacityTokens).toBe(1000);
  });

  it("goes unhealthy when /health fails or drops, and back when it recovers", async () => {
    const e = await startEngine();
    expect(e.load().healthy).toBe(true);
    fake.healthStatus = 503;
    await waitFor(() => !e.load().healthy, "unhealthy on 503");
    fake.healthStatus = 200;
    await waitFor(() => e.load().healthy, "healthy again");
    fake.healthMode = "destroy";
    await waitFor(() => !e.load().healthy, "unhealthy on a dropped connection");
    fake.healthMode = "answer";
    await waitFor(() => e.load().healthy, "healthy after the drop");
  });

  it("an engine with no usable /metrics reports its own in-flight count", async () => {
    fake.metricsStatus = 404;
    const e = await startEngine();
    expect(e.load()).toMatchObject({ healthy: true, running: 0, waiting: 0 });
    const res = await e.handle(engineRequest("chat", '{"model":"llama","stream":true,"messages":[{"role":"user","content":"x"}]}'));
    expect(e.load().running).toBe(1);
    fake.flood();
    await res.text();
    await waitFor(() => e.load().running === 0, "in-flight back to 0");
  });

  it("polls /health and /metrics under the base URL's path, with the API key", async () => {
    const paths: string[] = [];
    const auth: Array<string | undefined> = [];
    const proxy = createServer((req, res) => {
      paths.push(req.url ?? "");
      auth.push(req.headers.authorization);
      res.writeHead(200).end(req.url?.endsWith("/metrics") ? VLLM_METRICS(1, 0.1) : "");
    });
    await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
    try {
      const e = await startEngine({ apiKey: "sk-engine", healthPath: "/ping" }, `http://127.0.0.1:${(proxy.address() as AddressInfo).port}/engine-a/`);
      expect(paths.slice(0, 2)).toEqual(["/engine-a/ping", "/engine-a/metrics"]);
      expect(auth.slice(0, 2)).toEqual(["Bearer sk-engine", "Bearer sk-engine"]);
      expect(e.load().running).toBe(1);
    } finally {
      proxy.closeAllConnections();
      await new Promise<void>((r) => proxy.close(() => r()));
    }
  });
});

describe("OpenAIEngine forwarding", () => {
  it("forwards the body byte for byte with the request id, and returns the engine's answer", async () => {
    const e = await startEngine();
    // Odd spacing, key order, unicode, and fields Switchyard does not know: all must arrive untouched.
    const raw = '{ "messages":[{"role":"user","content":"h\\u00e9llo ✓"}],\n  "model" : "llama", "vendor_x": {"k": [1, 2.50]}, "max_tokens":3 }';
    const res = await e.handle(engineRequest("chat", raw));
    expect(res.status).toBe(200);
    const json = (await res.json()) as { echo: unknown };
    expect(json.echo).toEqual(JSON.parse(raw));
    expect(fake.received).toHaveLength(1);
    const got = fake.received[0]!;
    expect(got.method).toBe("POST");
    expect(got.url).toBe("/v1/chat/completions");
    expect(got.body.equals(Buffer.from(raw))).toBe(true);
    expect(got.headers["x-request-id"]).toBe("req-123");
    expect(got.headers["content-type"]).toBe("application/json");
    expect(got.headers.authorization).toBeUndefined();
  });

  it("uses /v1/completions for completions", async () => {
    const e = await startEngine();
    await (await e.handle(engineRequest("completions", '{"model":"llama","prompt":"x"}'))).text();
    expect(fake.received[0]?.url).toBe("/v1/completions");
  });

  it("renames the model to servedModelName (keeping every other field) and sends the API key", async () => {
    const e = await startEngine({ servedModelName: "meta-llama/Llama-3.1-8B-Instruct", apiKey: "sk-engine" });
    const raw = '{"model":"llama","messages":[{"role":"user","content":"x","name":"bob"}],"min_tokens":2,"cache_salt":"s1"}';
    await (await e.handle(engineRequest("chat", raw))).text();
    const got = fake.received[0]!;
    expect(JSON.parse(got.body.toString())).toEqual({ ...JSON.parse(raw), model: "meta-llama/Llama-3.1-8B-Instruct" });
    expect(got.headers.authorization).toBe("Bearer sk-engine");
  });

  it("sets vLLM's cache_salt from the request's cache namespace, distinct per namespace, when configured", async () => {
    const e = await startEngine({ cacheSalt: true });
    const raw = '{"model":"llama","messages":[{"role":"user","content":"x"}],"cache_salt":"client-chosen"}';
    for (const ns of ["t:acme:llama", "t:globex:llama", "t:acme:llama"]) {
      await (await e.handle({ ...engineRequest("chat", raw), cacheNamespace: ns })).text();
    }
    const salts = fake.received.map((r) => JSON.parse(r.body.toString()).cache_salt as string);
    expect(salts[0]).toMatch(/^[0-9a-f]{32}$/);
    expect(salts[0]).not.toBe(salts[1]);
    expect(salts[2]).toBe(salts[0]);
    expect(salts).not.toContain("client-chosen");
    // Without the option the body goes through untouched.
    const plain = await startEngine();
    await (await plain.handle({ ...engineRequest("chat", raw), cacheNamespace: "t:acme:llama" })).text();
    expect(fake.received.at(-1)?.body.toString()).toBe(raw);
  });

  it("passes engine errors through with their status and body", async () => {
    const e = await startEngine();
    fake.errorReply = { status: 400, body: { error: { message: "context too long", type: "BadRequestError", param: null, code: 400 } } };
    const res = await e.handle(engineRequest("chat", '{"model":"llama","messages":[{"role":"user","content":"x"}]}'));
    expect(res.status).toBe(400);
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(await res.json()).toEqual(fake.errorReply.body);
  });

  it("streams chunk by chunk as the engine produces them", async () => {
    const e = await startEngine();
    const res = await e.handle(engineRequest("chat", '{"model":"llama","stream":true,"messages":[{"role":"user","content":"x"}]}'));
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    // Upstream headers other than content-type stay upstream.
    expect(res.headers.get("x-upstream-secret")).toBeNull();
    const reader = res.body!.getReader();
    let seen = "";
    for (const expected of fake.chunks) {
      fake.step();
      while (!seen.endsWith(expected)) {
        const { value, done } = await reader.read();
        expect(done).toBe(false);
        seen += decoder.decode(value);
      }
      // Nothing beyond what the engine has written so far.
      expect(seen).toBe(fake.chunks.slice(0, fake.chunks.indexOf(expected) + 1).join(""));
    }
    expect((await reader.read()).done).toBe(true);
    expect(fake.outcomes).toEqual(["finished"]);
  });

  it("aborting the request signal mid-stream closes the upstream connection", async () => {
    fake.metricsStatus = 404;
    const e = await startEngine();
    const ac = new AbortController();
    const res = await e.handle(engineRequest("chat", '{"model":"llama","stream":true,"messages":[{"role":"user","content":"x"}]}', ac.signal));
    const reader = res.body!.getReader();
    fake.step();
    expect(decoder.decode((await reader.read()).value)).toBe("data: one\n\n");
    expect(e.load().running).toBe(1);
    ac.abort();
    await waitFor(() => fake.outcomes[0] === "closed", "the engine to see the connection close");
    await expect(reader.read()).rejects.toThrow();
    await waitFor(() => e.load().running === 0, "in-flight back to 0");
  });

  it("cancelling the response body mid-stream closes the upstream connection", async () => {
    const e = await startEngine();
    const res = await e.handle(engineRequest("completions", '{"model":"llama","stream":true,"prompt":"x"}'));
    const reader = res.body!.getReader();
    fake.step();
    await reader.read();
    await reader.cancel();
    await waitFor(() => fake.outcomes[0] === "closed", "the engine to see the connection close");
  });

  it("a signal aborted before sending → 499 client_closed, nothing forwarded", async () => {
    const e = await startEngine();
    const ac = new AbortController();
    ac.abort();
    const err = await e.handle(engineRequest("chat", '{"model":"llama","messages":[{"role":"user","content":"x"}]}', ac.signal)).catch((x: unknown) => x);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(499);
    expect(fake.received).toHaveLength(0);
  });

  it("an unreachable engine → ApiError 502 engine_unreachable, and the engine is unhealthy", async () => {
    const dead = createServer();
    await new Promise<void>((r) => dead.listen(0, "127.0.0.1", r));
    const port = (dead.address() as AddressInfo).port;
    await new Promise<void>((r) => dead.close(() => r()));
    const e = await startEngine({}, `http://127.0.0.1:${port}`);
    expect(e.load().healthy).toBe(false);
    const err = await e.handle(engineRequest("chat", '{"model":"llama","messages":[{"role":"user","content":"x"}]}')).catch((x: unknown) => x);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(502);
    expect((err as ApiError).code).toBe("engine_unreachable");
    expect((err as ApiError).type).toBe("server_error");
    expect(e.load().running).toBe(0);
  });
});

describe("OpenAIEngine behind a real agent", () => {
  const SECRET = "sy_ns_1_abcdefghijklmnopqrstuvwxyz0123";

  async function startBehindAgent() {
    // The edge URL points nowhere: heartbeats fail quietly, which is all this test needs.
    const config = parseAgentConfig(
      {
        nodeId: "gpu-1",
        region: "eu-west",
        listen: { host: "127.0.0.1", port: 0 },
        edge: { url: "http://127.0.0.1:9", nodeSecret: SECRET, heartbeatIntervalMs: 60_000 },
        engines: [{ kind: "openai", model: "llama", url: fake.url }],
        logLevel: "error",
      },
      "adapter.test",
    );
    const e = new OpenAIEngine(config.engines[0] as OpenAIEngineConfig, silent);
    const agent = await startAgent(config, { engines: [e], log: silent });
    const post = async (body: string, signal?: AbortSignal) => {
      const bytes = new TextEncoder().encode(body);
      const headers = await signRequest({ nodeId: "gpu-1", keyVersion: 1, secret: SECRET, method: "POST", path: "/v1/chat/completions", body: bytes });
      return fetch(`${agent.url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: bytes, signal });
    };
    return { agent, engine: e, post };
  }

  it("a client leaving the agent mid-stream closes the engine connection and frees the slot", async () => {
    const { agent, post } = await startBehindAgent();
    try {
      const ac = new AbortController();
      const res = await post('{"model":"llama","stream":true,"messages":[{"role":"user","content":"x"}]}', ac.signal);
      expect(res.status).toBe(200);
      const reader = res.body!.getReader();
      fake.step();
      expect(decoder.decode((await reader.read()).value)).toBe("data: one\n\n");
      ac.abort();
      await waitFor(() => fake.outcomes[0] === "closed", "the engine to see the connection close");
      await waitFor(() => agent.engines.get("llama")!.admission.running === 0, "the agent slot to be released");
    } finally {
      await agent.stop({ leaving: false });
    }
  });

  it("stopping the agent with a stream open ends it and does not hang", async () => {
    const { agent, post } = await startBehindAgent();
    const res = await post('{"model":"llama","stream":true,"messages":[{"role":"user","content":"x"}]}');
    const reader = res.body!.getReader();
    fake.step();
    await reader.read();
    const outcome = await Promise.race([agent.stop({ leaving: false }).then(() => "stopped"), new Promise((r) => setTimeout(() => r("hung"), 3_000))]);
    expect(outcome).toBe("stopped");
    expect(fake.outcomes[0]).toBe("closed");
    await expect(reader.read()).rejects.toThrow();
  });
});
