/** Fair admission through the API: requests wait at the edge when nodes are full. */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Env as WorkerEnv } from "../../worker/env";
import { PoolObject } from "../../worker/pool/pool-object";
import { HeaderNames } from "../../protocol/headers";
import { verifyRequest } from "../../protocol/signing";
import { admin, call, configureModel, createTenantWithKey, engine, errorOf, heartbeat, poolSnapshot, registerNode, unique } from "./helpers";

const enc = new TextEncoder();

/** Agents that stream one chunk, then hold the response open until `finish()` is called. */
function holdingAgents() {
  const open: Array<{ id: string; tenant: string | null; headers: Headers; raw: Uint8Array; finish: () => void }> = [];
  let seq = 0;
  vi.spyOn(globalThis, "fetch").mockImplementation(async (input: RequestInfo | URL, init?: RequestInit) => {
    const id = `held-${seq++}`;
    const req = new Request(input, init);
    const tenant = req.headers.get("x-switchyard-tenant");
    const raw = new Uint8Array(await req.arrayBuffer());
    let finish = () => {};
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(enc.encode(`data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: "x" } }] })}\n\n`));
        finish = () => {
          c.enqueue(enc.encode(`data: ${JSON.stringify({ choices: [], usage: { prompt_tokens: 10, completion_tokens: 1, total_tokens: 11 } })}\n\ndata: [DONE]\n\n`));
          c.close();
        };
      },
    });
    open.push({ id, tenant, headers: req.headers, raw, finish: () => finish() });
    return new Response(body, { headers: { "content-type": "text/event-stream" } });
  });
  return open;
}

function chat(key: string, model: string, signal?: AbortSignal, extra: { body?: Record<string, unknown>; headers?: Record<string, string> } = {}): Promise<Response> {
  return call("/v1/chat/completions", {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json", ...extra.headers },
    body: JSON.stringify({ model, stream: true, messages: [{ role: "user", content: "hello" }], ...extra.body }),
    ...(signal ? { signal } : {}),
  });
}

/** Polls until `cond` holds; the deadline is generous because a loaded CI box can be slow. */
async function until(cond: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function oneSlotModel(over: Record<string, unknown> = {}) {
  return (await limitedNode(1, over)).model;
}

/**
 * A model on one node with `limit` slots (plus VTC's default headroom of one), and the node's secret.
 * Requests may wait a minute by default, so none times out while a slow box works through a test.
 */
async function limitedNode(limit: number, over: Record<string, unknown> = {}) {
  const model = unique("fair");
  await configureModel(model, { node_limit: limit, max_queue_wait_ms: 60_000, ...over });
  const node = unique("node");
  const secret = await registerNode(node, [model]);
  await heartbeat(node, secret, [engine(model)]);
  return { model, secret };
}

afterEach(() => vi.restoreAllMocks());

describe("fair admission", () => {
  it("holds a request at the edge while the node is full and sends it when a slot frees", async () => {
    const model = await oneSlotModel();
    const { key } = await createTenantWithKey();
    const open = holdingAgents();
    const first = await chat(key, model);
    expect(first.status).toBe(200);
    const second = chat(key, model);
    await until(async () => Object.values((await poolSnapshot(model)).waiting).reduce((a, b) => a + b, 0) === 1, "the second request to wait");
    expect(open).toHaveLength(1);
    open[0]?.finish();
    await first.text();
    expect((await second).status).toBe(200);
    expect(open).toHaveLength(2);
    open[1]?.finish();
  });

  it("serves a newly backlogged tenant ahead of an older backlog, by counter", async () => {
    const model = await oneSlotModel();
    const heavy = await createTenantWithKey();
    const light = await createTenantWithKey();
    const open = holdingAgents();
    const running = await chat(heavy.key, model);
    // Heavy queues three; light arrives later and is lifted to heavy's counter (no banked credit).
    const queued = [chat(heavy.key, model), chat(heavy.key, model), chat(heavy.key, model)];
    await until(async () => ((await poolSnapshot(model)).waiting[heavy.tenantId] ?? 0) === 3, "heavy to queue");
    queued.push(chat(light.key, model));
    await until(async () => ((await poolSnapshot(model)).waiting[light.tenantId] ?? 0) === 1, "light to queue");
    // Responses in the order they were admitted.
    const admitted: Response[] = [running];
    for (const q of queued) void q.then((r) => admitted.push(r));
    // Free the slot four times: FCFS would serve heavy, heavy, heavy, light.
    const served: Array<string | null> = [];
    for (let i = 0; i < 4; i++) {
      open[i]?.finish();
      await admitted[i]?.text();
      await until(async () => open.length > i + 1 && admitted.length > i + 1, `slot ${i + 1} to be given`);
      served.push(open[i + 1]?.tenant ?? null);
    }
    open[4]?.finish();
    await admitted[4]?.text();
    // Light, lifted to heavy's counter when it arrived, is served within the next two slots (a tie
    // goes to the older request); FCFS would serve it fourth.
    expect(served.slice(0, 2)).toContain(light.tenantId);
    expect(served.filter((t) => t === heavy.tenantId)).toHaveLength(3);
  });

  it("signs each request's priority to the agent: high for a light tenant next to a backlog, never a client's own", async () => {
    // Two slots: one request of a second tenant is within its half, so it may take the headroom.
    const { model, secret } = await limitedNode(2);
    const heavy = await createTenantWithKey();
    const light = await createTenantWithKey();
    const open = holdingAgents();
    // Every request asks for top priority, in the body (vLLM's field) and in the edge's own header.
    const greedy = { body: { priority: -100 }, headers: { [HeaderNames.priority]: "high" } };
    const running = [await chat(heavy.key, model, undefined, greedy), await chat(heavy.key, model, undefined, greedy)];
    const queued = [chat(heavy.key, model, undefined, greedy), chat(heavy.key, model, undefined, greedy)];
    await until(async () => ((await poolSnapshot(model)).waiting[heavy.tenantId] ?? 0) === 2, "heavy to queue");
    // Light has nothing waiting and no slot while heavy waits: it takes the headroom at once.
    const lightRes = await chat(light.key, model, undefined, greedy);
    expect(lightRes.status).toBe(200);
    expect(open.map((o) => o.tenant)).toEqual([heavy.tenantId, heavy.tenantId, light.tenantId]);
    for (const o of open) o.finish();
    for (const r of [...running, lightRes]) await r.text();
    await until(async () => open.length === 5, "heavy's queued requests to be admitted");
    for (const o of open.slice(3)) o.finish();
    for (const q of queued) await (await q).text();

    const priorities = open.map((o) => o.headers.get(HeaderNames.priority));
    // Nobody waited while heavy's first two arrived; light arrived next to heavy's backlog.
    expect(priorities.slice(0, 3)).toEqual(["normal", "normal", "high"]);
    // Heavy's queued requests compete by counter: never ahead of anyone.
    expect(priorities.slice(3).filter((p) => p === "high")).toEqual([]);
    for (const o of open) {
      // The client's priority field never reaches the agent, and the mark is the edge's, signed.
      expect(JSON.parse(new TextDecoder().decode(o.raw))).not.toHaveProperty("priority");
      const verdict = await verifyRequest({ method: "POST", path: "/v1/chat/completions", body: o.raw, headers: o.headers, secretFor: () => secret });
      expect(verdict.ok).toBe(true);
      const forged = new Headers(o.headers);
      forged.set(HeaderNames.priority, o.headers.get(HeaderNames.priority) === "high" ? "normal" : "high");
      expect((await verifyRequest({ method: "POST", path: "/v1/chat/completions", body: o.raw, headers: forged, secretFor: () => secret })).ok).toBe(false);
    }
  });

  it("answers 429 with Retry-After when the wait bound passes, charging nothing", async () => {
    const model = await oneSlotModel({ max_queue_wait_ms: 200 });
    const { key, tenantId } = await createTenantWithKey();
    const other = await createTenantWithKey();
    const open = holdingAgents();
    const running = await chat(other.key, model);
    const before = (await poolSnapshot(model)).vtc[tenantId] ?? 0;
    const refused = await chat(key, model);
    expect(refused.status).toBe(429);
    expect(refused.headers.get("retry-after")).toMatch(/^\d+$/);
    expect(await errorOf(refused)).toMatchObject({ type: "rate_limit_error", code: "queue_timeout" });
    const snap = await poolSnapshot(model);
    expect(snap.vtc[tenantId] ?? 0).toBe(before);
    expect(snap.waiting[tenantId] ?? 0).toBe(0);
    open[0]?.finish();
    await running.text();
  });

  it("a client that disconnects while waiting leaves the queue", async () => {
    const model = await oneSlotModel();
    const { key, tenantId } = await createTenantWithKey();
    const open = holdingAgents();
    const running = await chat(key, model);
    const controller = new AbortController();
    const waiting = chat(key, model, controller.signal).catch((e: unknown) => e);
    await until(async () => ((await poolSnapshot(model)).waiting[tenantId] ?? 0) === 1, "the request to queue");
    controller.abort();
    await until(async () => ((await poolSnapshot(model)).waiting[tenantId] ?? 0) === 0, "the request to leave the queue");
    await waiting;
    open[0]?.finish();
    await running.text();
    expect(open).toHaveLength(1);
  });

  it("with admission off, requests go to the node even when it is full", async () => {
    const model = await oneSlotModel({ admission_policy: "off" });
    const { key } = await createTenantWithKey();
    const open = holdingAgents();
    const a = await chat(key, model);
    const b = await chat(key, model);
    expect([a.status, b.status]).toEqual([200, 200]);
    expect(open).toHaveLength(2);
    for (const o of open) o.finish();
    await a.text();
    await b.text();
  });

  it("keeps VTC counters across a pool restart, and tenant weights scale charges", async () => {
    const model = await oneSlotModel();
    const gold = await createTenantWithKey();
    await admin("PATCH", `/tenants/${gold.tenantId}`, { weight: 4 });
    const basic = await createTenantWithKey();
    const open = holdingAgents();
    for (const t of [gold, basic]) {
      const r = await chat(t.key, model);
      open.at(-1)?.finish();
      await r.text();
    }
    await until(async () => (await poolSnapshot(model)).inflight === 0, "releases");
    const snap = await poolSnapshot(model);
    const g = snap.vtc[gold.tenantId] as number;
    const b = snap.vtc[basic.tenantId] as number;
    expect(g).toBeGreaterThan(0);
    // Same real usage, weight 4: a quarter of the charge.
    expect(b / g).toBeCloseTo(4, 5);
    const stub = env.POOL.getByName(model);
    const after = await runInDurableObject(stub, async (_i, state) => new PoolObject(state, env as unknown as WorkerEnv).snapshot());
    expect(after.vtc[gold.tenantId]).toBe(g);
    expect(after.vtc[basic.tenantId]).toBe(b);
  });
});
