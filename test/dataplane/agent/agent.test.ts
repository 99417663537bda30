/**
 * A real node agent (HTTP server, admission, signature checks, heartbeats) around a fake engine
 * that streams through renderGeneration, talking to a fake edge that verifies heartbeat
 * signatures. Everything is observed from outside: HTTP responses, beats, /metrics, /healthz.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { startAgent, type RunningAgent, AGENT_VERSION } from "../../../dataplane/agent/agent";
import { parseAgentConfig, type AgentConfigInput } from "../../../dataplane/agent/config";
import type { EngineAdapter, EngineLoad, EngineRequest } from "../../../dataplane/engines/engine";
import { generationParams, renderGeneration, type GenerationEvent } from "../../../dataplane/engines/generation";
import { parsePrometheusText, sumOf } from "../../../dataplane/engines/openai/prometheus-text";
import type { Logger } from "../../../dataplane/lib/log";
import { HeaderNames } from "../../../protocol/headers";
import { HEARTBEAT_PATH, heartbeatSchema, type Heartbeat } from "../../../protocol/heartbeat";
import { NonceCache, signRequest, verifyRequest, type SignInput, type VerifyResult } from "../../../protocol/signing";
import { parseSseEvent, SseFramer } from "../../../protocol/sse";

const silent: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => silent };
const enc = new TextEncoder();
const dec = new TextDecoder();

const NODE = "gpu-1";
const SECRET = "sy_ns_2_currentcurrentcurrentcurrent00";
const PREVIOUS = "sy_ns_1_previouspreviouspreviousprev00";
const RETIRED = "sy_ns_0_retiredretiredretiredretired0000";
const MODEL = "fake-model";

async function waitFor(cond: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** An engine that streams a fixed text; with `hold`, each token waits for `step()`. */
class FakeEngine implements EngineAdapter {
  readonly kind = "fake";
  readonly model = MODEL;
  healthy = true;
  hold = false;
  text = ["Hel", "lo", ", wor", "ld"];
  calls: EngineRequest[] = [];
  aborted: string[] = [];
  finished: string[] = [];
  active = 0;
  started = false;
  stopped = false;
  private permits = 0;
  private waiters: Array<{ id: string; go: () => void }> = [];
  private readonly free = new Set<string>();

  constructor(readonly maxConcurrency = 2) {}

  async start(): Promise<void> {
    this.started = true;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.flood();
  }

  /** Lets `n` held tokens go, oldest waiter first. */
  step(n = 1): void {
    for (let i = 0; i < n; i++) {
      const w = this.waiters[0];
      if (w) w.go();
      else this.permits++;
    }
  }

  /** Lets one request run to its end. */
  finish(requestId: string): void {
    this.free.add(requestId);
    for (const w of this.waiters.filter((x) => x.id === requestId)) w.go();
  }

  flood(): void {
    this.permits = Number.POSITIVE_INFINITY;
    for (const w of [...this.waiters]) w.go();
  }

  private gate(requestId: string, signal: AbortSignal): Promise<void> {
    if (this.free.has(requestId)) return Promise.resolve();
    if (this.permits > 0) {
      this.permits--;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const w = {
        id: requestId,
        go: () => {
          const i = this.waiters.indexOf(w);
          if (i >= 0) this.waiters.splice(i, 1);
          resolve();
        },
      };
      this.waiters.push(w);
      signal.addEventListener("abort", w.go, { once: true });
    });
  }

  async handle(req: EngineRequest): Promise<Response> {
    this.calls.push(req);
    req.signal.addEventListener("abort", () => this.aborted.push(req.requestId), { once: true });
    this.active++;
    const events = async function* (self: FakeEngine): AsyncGenerator<GenerationEvent> {
      yield { type: "start", promptTokens: 5, cachedTokens: 0 };
      for (const t of self.text) {
        if (self.hold) await self.gate(req.requestId, req.signal);
        if (req.signal.aborted) return;
        yield { type: "delta", text: t, tokens: 1 };
      }
      yield { type: "end", finishReason: "stop" };
      self.finished.push(req.requestId);
    };
    return renderGeneration({
      endpoint: req.endpoint,
      model: this.model,
      requestId: req.requestId,
      params: generationParams(req.body, 16),
      events: events(this),
      onClose: () => this.active--,
    });
  }

  load(): EngineLoad {
    return { healthy: this.healthy, running: this.active, waiting: 0, kvUsage: 0.25, kvCapacityTokens: 4096 };
  }
}

interface Beat {
  verdict: VerifyResult;
  beat: Heartbeat;
}

/** The edge's heartbeat endpoint: verifies each beat's signature like the real edge does. */
class FakeEdge {
  server!: Server;
  beats: Beat[] = [];
  status = 200;
  /** Beats received but not yet applied. */
  pending = 0;
  /** When set, the next beat takes this long to apply (a slow edge write). */
  slowNextMs = 0;
  private readonly nonces = new NonceCache();

  async start(): Promise<void> {
    this.server = createServer(async (req, res) => {
      const parts: Buffer[] = [];
      for await (const p of req) parts.push(p as Buffer);
      const body = new Uint8Array(Buffer.concat(parts));
      if (req.method !== "POST" || req.url !== HEARTBEAT_PATH) return void res.writeHead(404).end();
      this.pending++;
      const delay = this.slowNextMs;
      this.slowNextMs = 0;
      if (delay > 0) await new Promise((r) => setTimeout(r, delay));
      const headers = new Headers();
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string") headers.set(k, v);
      const verdict = await verifyRequest({
        method: req.method,
        path: req.url,
        body,
        headers,
        secretFor: (node, version) => (node === NODE && version === 2 ? SECRET : undefined),
        rememberNonce: (node, nonce, ts) => this.nonces.remember(node, nonce, ts),
      });
      const beat = heartbeatSchema.parse(JSON.parse(dec.decode(body)));
      this.beats.push({ verdict, beat });
      this.pending--;
      if (!verdict.ok) return void res.writeHead(401, { "content-type": "application/json" }).end('{"error":{"message":"bad signature"}}');
      res.writeHead(this.status, { "content-type": "application/json" });
      res.end(JSON.stringify({ ok: true, accepted: beat.engines.map((e) => e.model), ignored: [], draining: false, intervalMs: 200 }));
    });
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

let edge: FakeEdge;
let engine: FakeEngine;
let agent: RunningAgent;
const running: RunningAgent[] = [];

function agentConfig(over: Partial<AgentConfigInput> = {}) {
  return parseAgentConfig(
    {
      nodeId: NODE,
      region: "eu-west",
      listen: { host: "127.0.0.1", port: 0 },
      edge: { url: edge.url, nodeSecret: SECRET, previousNodeSecret: PREVIOUS, heartbeatIntervalMs: 200 },
      engines: [{ kind: "openai", model: MODEL, url: "http://127.0.0.1:9" }],
      queue: { maxWaiting: 1 },
      logLevel: "error",
      ...over,
    },
    "agent.test",
  );
}

async function start(eng: FakeEngine, over: Partial<AgentConfigInput> = {}): Promise<RunningAgent> {
  const a = await startAgent(agentConfig(over), { engines: [eng], log: silent });
  running.push(a);
  return a;
}

interface CallOptions extends Partial<SignInput> {
  headers?: Record<string, string>;
  signal?: AbortSignal;
  unsigned?: boolean;
}

async function signedHeaders(path: string, bytes: Uint8Array, o: CallOptions = {}): Promise<Record<string, string>> {
  if (o.unsigned) return {};
  return signRequest({ nodeId: NODE, keyVersion: 2, secret: SECRET, method: o.method ?? "POST", path, body: bytes, ...o });
}

async function call(path: string, body: unknown, o: CallOptions = {}): Promise<Response> {
  const bytes = enc.encode(typeof body === "string" ? body : JSON.stringify(body));
  const sig = await signedHeaders(path, bytes, o);
  return fetch(agent.url + path, { method: "POST", headers: { "content-type": "application/json", ...sig, ...o.headers }, body: bytes, signal: o.signal });
}

const chat = (over: Record<string, unknown> = {}) => ({ model: MODEL, messages: [{ role: "user", content: "hi" }], ...over });

async function metrics(): Promise<ReturnType<typeof parsePrometheusText>> {
  const res = await fetch(`${agent.url}/metrics`);
  expect(res.status).toBe(200);
  return parsePrometheusText(await res.text());
}

/** Reads an SSE response body event by event. */
function sseReader(res: Response) {
  const reader = res.body!.getReader();
  const framer = new SseFramer();
  const queue: string[] = [];
  return {
    async next(): Promise<string | undefined> {
      while (queue.length === 0) {
        const { value, done } = await reader.read();
        if (done) return undefined;
        queue.push(...framer.push(dec.decode(value, { stream: true })));
      }
      return queue.shift();
    },
    async all(): Promise<string[]> {
      const out: string[] = [];
      for (let e = await this.next(); e !== undefined; e = await this.next()) out.push(e);
      return out;
    },
    cancel: () => reader.cancel(),
  };
}

function contentOf(events: string[]): string {
  let text = "";
  for (const e of events) {
    const data = parseSseEvent(e).data;
    if (!data || data === "[DONE]") continue;
    const chunk = JSON.parse(data) as { choices: Array<{ delta?: { content?: string }; text?: string }> };
    text += chunk.choices[0]?.delta?.content ?? chunk.choices[0]?.text ?? "";
  }
  return text;
}

beforeAll(async () => {
  edge = new FakeEdge();
  await edge.start();
});

afterAll(async () => {
  await edge.close();
});

afterEach(async () => {
  engine?.flood();
  await Promise.all(running.splice(0).map((a) => a.stop({ leaving: false })));
  edge.beats = [];
  edge.status = 200;
  edge.slowNextMs = 0;
});

describe("agent heartbeats", () => {
  it("sends signed beats carrying engine load and admission counts", async () => {
    engine = new FakeEngine(1);
    agent = await start(engine);
    await waitFor(() => edge.beats.length > 0, "a first heartbeat");
    const first = edge.beats[0]!;
    expect(first.verdict).toMatchObject({ ok: true, nodeId: NODE, keyVersion: 2 });
    expect(first.beat).toMatchObject({ nodeId: NODE, region: "eu-west", url: agent.url, agentVersion: AGENT_VERSION, leaving: false });
    expect(first.beat.engines).toEqual([{ model: MODEL, engine: "fake", healthy: true, running: 0, waiting: 0, maxConcurrency: 1, kvUsage: 0.25, kvCapacityTokens: 4096 }]);
    expect(Math.abs(first.beat.sentAt - Date.now())).toBeLessThan(5_000);

    // One request running, one waiting at the agent: the next beats say so.
    engine.hold = true;
    const a = call("/v1/chat/completions", chat({ stream: true }));
    const b = call("/v1/chat/completions", chat({ stream: true }));
    await waitFor(() => agent.engines.get(MODEL)!.admission.waiting === 1, "a queued request");
    const mark = edge.beats.length;
    await waitFor(() => edge.beats.length > mark, "a heartbeat while busy");
    expect(edge.beats.at(-1)!.beat.engines[0]).toMatchObject({ running: 1, waiting: 1 });
    engine.flood();
    await (await a).text();
    await (await b).text();
    // Beats keep coming, all verified, with no nonce reused.
    await waitFor(() => edge.beats.length >= 3, "more heartbeats");
    expect(edge.beats.every((x) => x.verdict.ok)).toBe(true);
  });

  it("follows the interval the edge asks for", async () => {
    engine = new FakeEngine();
    // Configured for a beat a minute; the edge's replies ask for 200 ms.
    agent = await start(engine, { edge: { url: edge.url, nodeSecret: SECRET, heartbeatIntervalMs: 60_000 } });
    await waitFor(() => edge.beats.length >= 3, "beats at the edge's interval", 2_000);
  });

  it("keeps beating after the edge fails, and counts failures", async () => {
    engine = new FakeEngine();
    edge.status = 503;
    agent = await start(engine);
    await waitFor(() => edge.beats.length >= 2, "retried heartbeats");
    edge.status = 200;
    const mark = edge.beats.length;
    await waitFor(() => edge.beats.length > mark + 1, "heartbeats after recovery");
    const m = await metrics();
    expect(sumOf(m, "switchyard_agent_heartbeats_total", { result: "failed" })).toBeGreaterThanOrEqual(2);
    expect(sumOf(m, "switchyard_agent_heartbeats_total", { result: "ok" })).toBeGreaterThanOrEqual(1);
  });

  it("sends a signed leaving beat on stop, as the last beat, then stops listening", async () => {
    engine = new FakeEngine();
    agent = await start(engine);
    await waitFor(() => edge.beats.length > 0, "a first heartbeat");
    await agent.stop();
    const last = edge.beats.at(-1)!;
    expect(last.verdict.ok).toBe(true);
    expect(last.beat.leaving).toBe(true);
    expect(edge.beats.filter((b) => b.beat.leaving)).toHaveLength(1);
    expect(engine.stopped).toBe(true);
    const count = edge.beats.length;
    // More than one heartbeat interval (200 ms): a live loop would have beaten again.
    await new Promise((r) => setTimeout(r, 250));
    expect(edge.beats.length).toBe(count);
    await expect(fetch(`${agent.url}/healthz`)).rejects.toThrow();
  });

  it("the leaving beat lands after a beat that was already in flight", async () => {
    engine = new FakeEngine();
    agent = await start(engine);
    await waitFor(() => edge.beats.length > 0, "a first heartbeat");
    edge.slowNextMs = 300;
    await waitFor(() => edge.pending > 0, "a heartbeat in flight");
    await agent.stop();
    await waitFor(() => edge.pending === 0, "the edge to finish");
    // Had the regular beat been applied after the leaving one, the edge would route here again.
    expect(edge.beats.at(-1)!.beat.leaving).toBe(true);
  });

  it("stop({ leaving: false }) sends no leaving beat", async () => {
    engine = new FakeEngine();
    agent = await start(engine);
    await waitFor(() => edge.beats.length > 0, "a first heartbeat");
    await agent.stop({ leaving: false });
    expect(edge.beats.some((b) => b.beat.leaving)).toBe(false);
  });
});

describe("agent inbound authentication", () => {
  it("refuses unsigned, badly signed, replayed, expired and foreign requests with 401 OpenAI bodies, and counts them", async () => {
    engine = new FakeEngine();
    agent = await start(engine);
    const path = "/v1/chat/completions";
    const bytes = enc.encode(JSON.stringify(chat()));
    const send = (headers: Record<string, string>, body: Uint8Array = bytes) =>
      fetch(agent.url + path, { method: "POST", headers: { "content-type": "application/json", ...headers }, body });

    const cases: Array<[string, Promise<Response>]> = [
      ["missing_signature", send({})],
      ["bad_signature", send(await signedHeaders(path, bytes, { secret: "sy_ns_2_wrongwrongwrongwrongwrongwrong" }))],
      ["bad_signature", send(await signedHeaders(path, bytes), enc.encode(JSON.stringify(chat({ max_tokens: 1 }))))],
      ["bad_signature", send(await signedHeaders("/v1/completions", bytes))],
      ["expired_timestamp", send(await signedHeaders(path, bytes, { timestampMs: Date.now() - 120_000 }))],
      ["expired_timestamp", send(await signedHeaders(path, bytes, { timestampMs: Date.now() + 120_000 }))],
      ["unknown_node", send(await signedHeaders(path, bytes, { nodeId: "gpu-2" }))],
      ["unknown_key_version", send(await signedHeaders(path, bytes, { secret: RETIRED, keyVersion: 0 }))],
      ["malformed_signature", send({ ...(await signedHeaders(path, bytes)), [HeaderNames.signature]: "v1=xyz" })],
    ];
    for (const [reason, pending] of cases) {
      const res = await pending;
      expect(res.status, reason).toBe(401);
      expect(await res.json()).toEqual({ error: { message: expect.stringContaining("signed by the edge") as string, type: "authentication_error", param: null, code: reason } });
    }

    // A replay of a request that was served.
    const headers = await signedHeaders(path, bytes);
    const ok = await send(headers);
    expect(ok.status).toBe(200);
    await ok.text();
    const replay = await send(headers);
    expect(replay.status).toBe(401);
    expect(((await replay.json()) as { error: { code: string } }).error.code).toBe("replayed_nonce");

    expect(engine.calls).toHaveLength(1);
    const m = await metrics();
    const rejected = (reason: string) => sumOf(m, "switchyard_agent_rejected_requests_total", { reason });
    expect(rejected("missing_signature")).toBe(1);
    expect(rejected("bad_signature")).toBe(3);
    expect(rejected("expired_timestamp")).toBe(2);
    expect(rejected("unknown_key_version")).toBe(1);
    expect(rejected("unknown_node")).toBe(1);
    expect(rejected("malformed_signature")).toBe(1);
    expect(rejected("replayed_nonce")).toBe(1);
  });

  it("GET /v1/models needs a signature too", async () => {
    engine = new FakeEngine();
    agent = await start(engine);
    expect((await fetch(`${agent.url}/v1/models`)).status).toBe(401);
    const headers = await signedHeaders("/v1/models", new Uint8Array(), { method: "GET" });
    const res = await fetch(`${agent.url}/v1/models`, { headers });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ object: "list", data: [{ id: MODEL, object: "model", created: 0, owned_by: NODE }] });
  });

  it("accepts the previous secret during a rotation, and the current one", async () => {
    engine = new FakeEngine();
    agent = await start(engine);
    const prev = await call("/v1/chat/completions", chat(), { secret: PREVIOUS, keyVersion: 1 });
    expect(prev.status).toBe(200);
    await prev.text();
    const cur = await call("/v1/chat/completions", chat());
    expect(cur.status).toBe(200);
    await cur.text();
    // The previous secret under the current version number is still wrong.
    expect((await call("/v1/chat/completions", chat(), { secret: PREVIOUS, keyVersion: 2 })).status).toBe(401);
  });

  it("without a previous secret configured, the old one is refused", async () => {
    engine = new FakeEngine();
    agent = await start(engine, { edge: { url: edge.url, nodeSecret: SECRET, heartbeatIntervalMs: 200 } });
    const res = await call("/v1/chat/completions", chat(), { secret: PREVIOUS, keyVersion: 1 });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("unknown_key_version");
  });
});

describe("agent serving", () => {
  it("streams a signed request chunk by chunk, first chunk before the engine finishes", async () => {
    engine = new FakeEngine();
    engine.hold = true;
    agent = await start(engine);
    const res = await call("/v1/chat/completions", chat({ stream: true, stream_options: { include_usage: true } }), { tenant: "tenant-7", cacheNamespace: "t:tenant-7:m", headers: { [HeaderNames.requestId]: "req-abc" } });
    expect(res.status).toBe(200);
    expect(res.headers.get(HeaderNames.node)).toBe(NODE);
    expect(res.headers.get(HeaderNames.requestId)).toBe("req-abc");
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    expect(engine.calls[0]).toMatchObject({ requestId: "req-abc", tenantId: "tenant-7", cacheNamespace: "t:tenant-7:m", endpoint: "chat" });

    const sse = sseReader(res);
    // The role chunk arrives while every token is still held back by the engine.
    const events = [(await sse.next())!];
    expect(JSON.parse(parseSseEvent(events[0]!).data!)).toMatchObject({ object: "chat.completion.chunk", choices: [{ delta: { role: "assistant" } }] });
    expect(engine.finished).toHaveLength(0);
    // Each token shows up on its own as soon as the engine lets it go, never before.
    for (const token of engine.text) {
      await new Promise((r) => setTimeout(r, 10));
      expect(engine.finished).toHaveLength(0);
      engine.step();
      const ev = (await sse.next())!;
      events.push(ev);
      expect((JSON.parse(parseSseEvent(ev).data!) as { choices: Array<{ delta: { content: string } }> }).choices[0]!.delta.content).toBe(token);
    }
    events.push(...(await sse.all()));
    expect(engine.finished).toEqual(["req-abc"]);
    expect(parseSseEvent(events.at(-1)!).data).toBe("[DONE]");
    const usage = JSON.parse(parseSseEvent(events.at(-2)!).data!) as { usage: { completion_tokens: number } };
    expect(usage.usage.completion_tokens).toBe(engine.text.length);
    expect(contentOf(events)).toBe("Hello, world");
    await waitFor(() => agent.engines.get(MODEL)!.admission.running === 0, "the slot to be released");
  });

  it("serves non-streaming chat and completions as JSON, a request id made up when absent", async () => {
    engine = new FakeEngine();
    agent = await start(engine);
    const res = await call("/v1/chat/completions", chat());
    expect(res.status).toBe(200);
    expect(res.headers.get(HeaderNames.node)).toBe(NODE);
    expect(res.headers.get(HeaderNames.requestId)).toMatch(/^[0-9a-f-]{36}$/);
    const body = (await res.json()) as { object: string; choices: Array<{ message: { content: string } }> };
    expect(body.object).toBe("chat.completion");
    expect(body.choices[0]!.message.content).toBe("Hello, world");

    const comp = await call("/v1/completions", { model: MODEL, prompt: "x", stream: true });
    expect(comp.status).toBe(200);
    expect(contentOf(await sseReader(comp).all())).toBe("Hello, world");
    expect(engine.calls.map((c) => c.endpoint)).toEqual(["chat", "completions"]);
  });

  it("passes the body bytes through to the engine exactly as signed", async () => {
    engine = new FakeEngine();
    agent = await start(engine);
    const raw = '{"model":"fake-model", "messages":[{"role":"user","content":"hi"}], "vendor_ext":{"a":1}}';
    const res = await call("/v1/chat/completions", raw);
    expect(res.status).toBe(200);
    await res.text();
    expect(dec.decode(engine.calls[0]!.rawBody)).toBe(raw);
    expect(engine.calls[0]!.body).toMatchObject({ vendor_ext: { a: 1 } });
  });

  it("queues beyond maxConcurrency and refuses beyond maxWaiting with 503", async () => {
    engine = new FakeEngine(2);
    engine.hold = true;
    agent = await start(engine, { queue: { maxWaiting: 1 } });
    const slot = agent.engines.get(MODEL)!;
    const id = (requestId: string) => ({ headers: { [HeaderNames.requestId]: requestId } });
    const r1 = call("/v1/chat/completions", chat({ stream: true }), id("r1"));
    const r2 = call("/v1/chat/completions", chat({ stream: true }), id("r2"));
    await waitFor(() => slot.admission.running === 2, "two running");
    let thirdArrived = false;
    const r3 = call("/v1/chat/completions", chat({ stream: true }), id("r3")).then((r) => {
      thirdArrived = true;
      return r;
    });
    await waitFor(() => slot.admission.waiting === 1, "one queued");
    expect(engine.calls).toHaveLength(2);

    const r4 = await call("/v1/chat/completions", chat({ stream: true }));
    expect(r4.status).toBe(503);
    expect(r4.headers.get("retry-after")).toBe("1");
    expect(((await r4.json()) as { error: { code: string; type: string } }).error).toMatchObject({ code: "node_overloaded", type: "overloaded_error" });

    const m = await metrics();
    expect(sumOf(m, "switchyard_agent_queue_waiting", { model: MODEL })).toBe(1);
    expect(sumOf(m, "switchyard_agent_queue_running", { model: MODEL })).toBe(2);
    expect(thirdArrived).toBe(false);

    // Finish the first: the queued one starts.
    engine.finish("r1");
    expect(contentOf(await sseReader(await r1).all())).toBe("Hello, world");
    await waitFor(() => engine.calls.length === 3, "the queued request to reach the engine");
    expect(slot.admission.waiting).toBe(0);
    engine.flood();
    for (const r of [r2, r3]) expect(contentOf(await sseReader(await r).all())).toBe("Hello, world");
    await waitFor(() => slot.admission.running === 0, "all slots released");
  });

  it("a client that disconnects mid-stream aborts the engine and frees the slot", async () => {
    engine = new FakeEngine(1);
    engine.hold = true;
    agent = await start(engine);
    const slot = agent.engines.get(MODEL)!;
    const ac = new AbortController();
    const res = await call("/v1/chat/completions", chat({ stream: true }), { signal: ac.signal, headers: { [HeaderNames.requestId]: "leaver" } });
    const sse = sseReader(res);
    await sse.next();
    engine.step();
    await sse.next();
    expect(slot.admission.running).toBe(1);
    ac.abort();
    await waitFor(() => engine.aborted.includes("leaver"), "the engine's signal to abort");
    await waitFor(() => slot.admission.running === 0, "the slot to be released");
    expect(engine.active).toBe(0);
    expect(engine.finished).toHaveLength(0);
    // The slot is really free: the next request is served at once.
    engine.flood();
    const next = await call("/v1/chat/completions", chat());
    expect(next.status).toBe(200);
    await next.text();
  });

  it("a client that goes away while queued leaves the queue without taking a slot", async () => {
    engine = new FakeEngine(1);
    engine.hold = true;
    agent = await start(engine, { queue: { maxWaiting: 4 } });
    const slot = agent.engines.get(MODEL)!;
    const first = await call("/v1/chat/completions", chat({ stream: true }));
    const ac = new AbortController();
    const queued = call("/v1/chat/completions", chat({ stream: true }), { signal: ac.signal }).catch((e: unknown) => e);
    await waitFor(() => slot.admission.waiting === 1, "the second request to queue");
    ac.abort();
    await queued;
    await waitFor(() => slot.admission.waiting === 0, "the queue to empty");
    engine.flood();
    await first.text();
    await waitFor(() => slot.admission.running === 0, "all slots released");
    expect(engine.calls).toHaveLength(1);
  });

  it("unknown model → 404 naming model; invalid body → 400 naming the field; bad JSON → 400", async () => {
    engine = new FakeEngine();
    agent = await start(engine);
    const unknown = await call("/v1/chat/completions", chat({ model: "gpt-9" }));
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toEqual({ error: { message: expect.stringContaining("gpt-9") as string, type: "invalid_request_error", param: "model", code: "model_not_found" } });

    const invalid = await call("/v1/chat/completions", chat({ messages: [{ role: "user", content: "a" }, { role: "wizard", content: "b" }] }));
    expect(invalid.status).toBe(400);
    expect(((await invalid.json()) as { error: { param: string } }).error.param).toBe("messages[1].role");

    const badMax = await call("/v1/completions", { model: MODEL, prompt: "x", max_tokens: 0 });
    expect(badMax.status).toBe(400);
    expect(((await badMax.json()) as { error: { param: string } }).error.param).toBe("max_tokens");

    const notJson = await call("/v1/chat/completions", "{nope");
    expect(notJson.status).toBe(400);
    expect(((await notJson.json()) as { error: { code: string } }).error.code).toBe("invalid_json");

    const unknownRoute = await call("/v1/embeddings", { model: MODEL, input: "x" });
    expect(unknownRoute.status).toBe(404);
    expect(engine.calls).toHaveLength(0);
  });

  it("/healthz is 200 when engines are healthy and 503 when one is not", async () => {
    engine = new FakeEngine();
    agent = await start(engine);
    const ok = await fetch(`${agent.url}/healthz`);
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ ok: true, node: NODE, engines: [{ model: MODEL, engine: "fake", healthy: true, running: 0, waiting: 0 }] });
    engine.healthy = false;
    const bad = await fetch(`${agent.url}/healthz`);
    expect(bad.status).toBe(503);
    expect(((await bad.json()) as { ok: boolean }).ok).toBe(false);
    await waitFor(() => edge.beats.some((b) => !b.beat.engines[0]!.healthy), "an unhealthy heartbeat");
  });

  it("/metrics exposes request counts, TTFT, TPOT, tokens, and queue and engine gauges", async () => {
    engine = new FakeEngine();
    agent = await start(engine);
    await (await call("/v1/chat/completions", chat({ stream: true }))).text();
    await (await call("/v1/chat/completions", chat({ stream: true, stream_options: { include_usage: true } }))).text();
    await (await call("/v1/completions", { model: MODEL, prompt: "x" })).text();
    // Refusals are requests too; a model this node does not serve never becomes a label.
    expect((await call("/v1/chat/completions", chat({ model: "not-here" }))).status).toBe(404);
    expect((await call("/v1/chat/completions", { model: MODEL })).status).toBe(400);
    // Counted when the body ends.
    await waitFor(() => agent.engines.get(MODEL)!.admission.running === 0, "requests to finish");
    const res = await fetch(`${agent.url}/metrics`);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
    const m = parsePrometheusText(await res.text());
    expect(sumOf(m, "switchyard_agent_requests_total", { model: MODEL, endpoint: "chat", status: "200", node: NODE })).toBe(2);
    expect(sumOf(m, "switchyard_agent_requests_total", { model: MODEL, endpoint: "completions", status: "200" })).toBe(1);
    expect(sumOf(m, "switchyard_agent_ttft_seconds_count", { model: MODEL })).toBe(3);
    expect(sumOf(m, "switchyard_agent_ttft_seconds_bucket", { model: MODEL, le: "+Inf" })).toBe(3);
    expect(sumOf(m, "switchyard_agent_request_duration_seconds_count", { model: MODEL })).toBe(3);
    expect(sumOf(m, "switchyard_agent_requests_total", { model: "", endpoint: "chat", status: "404" })).toBe(1);
    expect(sumOf(m, "switchyard_agent_requests_total", { model: MODEL, endpoint: "chat", status: "400" })).toBe(1);
    expect(m.some((x) => x.labels.model === "not-here")).toBe(false);
    // TPOT: the two streamed requests (4 tokens each); the whole response has no token timing.
    expect(sumOf(m, "switchyard_agent_tpot_seconds_count", { model: MODEL })).toBe(2);
    expect(sumOf(m, "switchyard_agent_tpot_seconds_sum", { model: MODEL })).toBeGreaterThanOrEqual(0);
    // Tokens as the engine reported them: the streamed request that asked for usage, and the whole one.
    expect(sumOf(m, "switchyard_agent_prompt_tokens_total", { model: MODEL })).toBe(10);
    expect(sumOf(m, "switchyard_agent_generation_tokens_total", { model: MODEL })).toBe(8);
    expect(sumOf(m, "switchyard_agent_cached_prompt_tokens_total", { model: MODEL })).toBe(0);
    expect(sumOf(m, "switchyard_agent_queue_waiting", { model: MODEL, engine: "fake" })).toBe(0);
    expect(sumOf(m, "switchyard_agent_queue_running", { model: MODEL, engine: "fake" })).toBe(0);
    expect(sumOf(m, "switchyard_engine_kv_usage_ratio", { model: MODEL })).toBe(0.25);
    expect(sumOf(m, "switchyard_engine_kv_capacity_tokens", { model: MODEL })).toBe(4096);
    expect(sumOf(m, "switchyard_engine_healthy", { model: MODEL })).toBe(1);
    expect(m.some((x) => x.name.startsWith("switchyard_agent_process_") && x.name.endsWith("resident_memory_bytes") && x.value > 0)).toBe(true);
  });
});

describe("agent start-up and shutdown", () => {
  it("fails (instead of hanging) when the listen port is taken, and stops its engines", async () => {
    engine = new FakeEngine();
    const port = Number(new URL(edge.url).port);
    const attempt = startAgent(agentConfig({ listen: { host: "127.0.0.1", port } }), { engines: [engine], log: silent });
    const outcome = await Promise.race([
      attempt.then(
        (a) => {
          running.push(a);
          return "started";
        },
        (err: unknown) => err,
      ),
      new Promise((r) => setTimeout(() => r("hung"), 3_000)),
    ]);
    expect(outcome).toBeInstanceOf(Error);
    expect((outcome as NodeJS.ErrnoException).code).toBe("EADDRINUSE");
    expect(engine.stopped).toBe(true);
    // No heartbeats from an agent that never started.
    await new Promise((r) => setTimeout(r, 100));
    expect(edge.beats).toHaveLength(0);
  });

  it("stop() ends open streams and is idempotent", async () => {
    engine = new FakeEngine(1);
    engine.hold = true;
    agent = await start(engine);
    const res = await call("/v1/chat/completions", chat({ stream: true }));
    const sse = sseReader(res);
    await sse.next();
    const stopping = Promise.all([agent.stop(), agent.stop()]);
    await stopping;
    await expect(sse.all()).rejects.toThrow();
    expect(engine.stopped).toBe(true);
    expect(edge.beats.filter((b) => b.beat.leaving)).toHaveLength(1);
  });
});
