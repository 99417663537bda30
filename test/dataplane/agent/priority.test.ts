/**
 * The edge's priority mark, from the signed header to the engine: a real agent in front of an
 * in-process emulator, of a scripted OpenAI-compatible server, and of the emulator's vLLM-compatible
 * server with the priority policy. What each engine received is read on the engine's side.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { startAgent, type RunningAgent } from "../../../dataplane/agent/agent";
import { parseAgentConfig, type AgentConfigInput } from "../../../dataplane/agent/config";
import type { SimEngine } from "../../../dataplane/engines/sim/adapter";
import { startSimServer, type RunningSimServer } from "../../../dataplane/engines/sim/server";
import type { Logger } from "../../../dataplane/lib/log";
import { HeaderNames } from "../../../protocol/headers";
import { enginePriority, REQUEST_PRIORITIES } from "../../../protocol/priority";
import { signRequest } from "../../../protocol/signing";

const silent: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => silent };
const SECRET = "sy_ns_1_abcdefghijklmnopqrstuvwxyz0123";
const MODEL = "llama";
const PATH = "/v1/chat/completions";
const enc = new TextEncoder();

const agents: RunningAgent[] = [];
afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => a.stop({ leaving: false })));
});

async function startWith(engine: AgentConfigInput["engines"][number]): Promise<RunningAgent> {
  // The edge URL points nowhere: heartbeats fail quietly, which is all these tests need.
  const config = parseAgentConfig(
    {
      nodeId: "gpu-1",
      region: "eu-west",
      listen: { host: "127.0.0.1", port: 0 },
      edge: { url: "http://127.0.0.1:9", nodeSecret: SECRET, heartbeatIntervalMs: 60_000 },
      engines: [engine],
      logLevel: "error",
    },
    "priority.test",
  );
  const agent = await startAgent(config, { log: silent });
  agents.push(agent);
  return agent;
}

/** A request as the edge sends it: signed, with the edge's priority mark when given. */
async function send(agent: RunningAgent, requestId: string, priority: string | undefined, body: Record<string, unknown> = {}): Promise<Response> {
  const bytes = enc.encode(JSON.stringify({ model: MODEL, max_tokens: 2, messages: [{ role: "user", content: `hello ${requestId}` }], ...body }));
  const signed = await signRequest({ nodeId: "gpu-1", keyVersion: 1, secret: SECRET, method: "POST", path: PATH, body: bytes, tenant: "acme", cacheNamespace: `t:acme:${MODEL}`, ...(priority !== undefined ? { priority } : {}) });
  return fetch(`${agent.url}${PATH}`, { method: "POST", headers: { "content-type": "application/json", [HeaderNames.requestId]: requestId, ...signed }, body: bytes });
}

/** The priority the emulator's core gave each request it was handed, by request id. */
function corePriorities(engine: SimEngine): Map<string, number> {
  const seen = new Map<string, number>();
  const core = engine.core;
  const submit = core.submit.bind(core);
  core.submit = (opts) => {
    const req = submit(opts);
    if (opts.id !== undefined) seen.set(opts.id, req.priority);
    return req;
  };
  return seen;
}

describe("priority to an in-process emulator", () => {
  it("each mark reaches the core as vLLM's priority; no mark or one the agent does not know leaves the default", async () => {
    const agent = await startWith({ kind: "sim", model: MODEL, timeScale: 1_000, schedulingPolicy: "priority" });
    const seen = corePriorities(agent.engines.get(MODEL)?.engine as SimEngine);
    for (const p of REQUEST_PRIORITIES) expect((await send(agent, `r-${p}`, p)).status).toBe(200);
    expect((await send(agent, "r-none", undefined)).status).toBe(200);
    expect((await send(agent, "r-urgent", "urgent")).status).toBe(200);
    expect(Object.fromEntries(seen)).toEqual({
      "r-high": enginePriority("high"),
      "r-normal": enginePriority("normal"),
      "r-low": enginePriority("low"),
      "r-none": 0,
      "r-urgent": 0,
    });
    // High runs ahead of normal, normal ahead of low, and normal is vLLM's default.
    expect(enginePriority("high")).toBeLessThan(enginePriority("normal"));
    expect(enginePriority("normal")).toBeLessThan(enginePriority("low"));
    expect(enginePriority("normal")).toBe(0);
  });

  it("requests queued at the agent reach the engine by mark: high ahead of an earlier low backlog", async () => {
    // One request at a time, and slow, so that three queue at the agent behind the first.
    const agent = await startWith({ kind: "sim", model: MODEL, timeScale: 0.2, maxConcurrency: 1 });
    const slot = agent.engines.get(MODEL)!;
    const seen = corePriorities(slot.engine as SimEngine);
    const until = async (cond: () => boolean) => {
      for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
      expect(cond()).toBe(true);
    };
    const holder = send(agent, "holder", "low", { max_tokens: 40 });
    await until(() => seen.has("holder"));
    const queued = [send(agent, "low-1", "low"), send(agent, "low-2", "low")];
    await until(() => slot.admission.waiting === 2);
    queued.push(send(agent, "high-1", "high"));
    await until(() => slot.admission.waiting === 3);
    expect(seen.size).toBe(1);
    for (const res of await Promise.all([holder, ...queued])) expect(res.status).toBe(200);
    expect([...seen.keys()]).toEqual(["holder", "high-1", "low-1", "low-2"]);
  });

  it("a mark changed after signing is refused before it reaches the engine", async () => {
    const agent = await startWith({ kind: "sim", model: MODEL, timeScale: 1_000 });
    const seen = corePriorities(agent.engines.get(MODEL)?.engine as SimEngine);
    const bytes = enc.encode(JSON.stringify({ model: MODEL, max_tokens: 2, messages: [{ role: "user", content: "hi" }] }));
    const signed = await signRequest({ nodeId: "gpu-1", keyVersion: 1, secret: SECRET, method: "POST", path: PATH, body: bytes, priority: "low" });
    const res = await fetch(`${agent.url}${PATH}`, { method: "POST", headers: { ...signed, [HeaderNames.priority]: "high", [HeaderNames.requestId]: "forged" }, body: bytes });
    expect(res.status).toBe(401);
    expect(seen.size).toBe(0);
  });
});

interface Upstream {
  server: Server;
  url: string;
  bodies: Array<Record<string, unknown>>;
}

/** A scripted OpenAI-compatible engine: healthy, and answers every generation with a fixed completion. */
async function scriptedEngine(): Promise<Upstream> {
  const bodies: Array<Record<string, unknown>> = [];
  const server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on("data", (p: Buffer) => parts.push(p));
    req.on("end", () => {
      if (req.url === "/health") return void res.writeHead(200).end();
      if (req.url === "/metrics") return void res.writeHead(200, { "content-type": "text/plain" }).end("");
      bodies.push(JSON.parse(Buffer.concat(parts).toString("utf8")) as Record<string, unknown>);
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ id: "c", object: "chat.completion", model: MODEL, choices: [{ index: 0, message: { role: "assistant", content: "ok" }, finish_reason: "stop" }] }));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, bodies };
}

describe("priority to an openai engine", () => {
  let upstream: Upstream;
  beforeAll(async () => {
    upstream = await scriptedEngine();
  });
  afterAll(async () => {
    upstream.server.closeAllConnections();
    await new Promise<void>((r) => upstream.server.close(() => r()));
  });
  afterEach(() => {
    upstream.bodies.length = 0;
  });

  it("with schedulingPolicy priority, sends vLLM's priority field for each mark", async () => {
    const agent = await startWith({ kind: "openai", model: MODEL, url: upstream.url, schedulingPolicy: "priority" });
    for (const p of REQUEST_PRIORITIES) expect((await send(agent, `o-${p}`, p)).status).toBe(200);
    expect((await send(agent, "o-none", undefined)).status).toBe(200);
    expect(upstream.bodies.map((b) => b.priority)).toEqual([...REQUEST_PRIORITIES.map(enginePriority), undefined]);
    // Nothing else about the request changed.
    expect(upstream.bodies[0]).toMatchObject({ model: MODEL, max_tokens: 2, messages: [{ role: "user", content: "hello o-high" }] });
  });

  it("with fcfs (the default), sends no priority: vLLM would refuse one", async () => {
    const agent = await startWith({ kind: "openai", model: MODEL, url: upstream.url });
    for (const p of REQUEST_PRIORITIES) expect((await send(agent, `f-${p}`, p)).status).toBe(200);
    expect(upstream.bodies).toHaveLength(REQUEST_PRIORITIES.length);
    for (const b of upstream.bodies) expect(b).not.toHaveProperty("priority");
  });

  it("a priority field in the signed body never reaches the engine: the agent's mark replaces it, or nothing does", async () => {
    for (const schedulingPolicy of ["priority", "fcfs"] as const) {
      const agent = await startWith({ kind: "openai", model: MODEL, url: upstream.url, schedulingPolicy });
      expect((await send(agent, `b-${schedulingPolicy}`, "low", { priority: -50 })).status).toBe(200);
      await agent.stop({ leaving: false });
    }
    expect(upstream.bodies.map((b) => b.priority)).toEqual([enginePriority("low"), undefined]);
  });
});

describe("priority through the emulator's vLLM-compatible server", () => {
  let sim: RunningSimServer;
  beforeAll(async () => {
    sim = await startSimServer({ port: 0, config: { kind: "sim", model: MODEL, timeScale: 1_000, schedulingPolicy: "priority" } });
  });
  afterAll(() => sim?.close());

  it("an openai engine configured for priority scheduling hands each mark to the server's scheduler", async () => {
    const seen = corePriorities(sim.engine);
    const agent = await startWith({ kind: "openai", model: MODEL, url: sim.url, schedulingPolicy: "priority" });
    for (const p of REQUEST_PRIORITIES) {
      const res = await send(agent, `v-${p}`, p);
      expect(res.status, await res.clone().text()).toBe(200);
    }
    expect(Object.fromEntries(seen)).toEqual(Object.fromEntries(REQUEST_PRIORITIES.map((p) => [`v-${p}`, enginePriority(p)])));
  });
});
