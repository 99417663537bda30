/**
 * Usage accounting: every finished or broken request counted once, in the ledger before the client
 * sees the end of the response, flushed to D1 exactly once even across a restart mid-flush; a
 * tenant reads only its own usage.
 */
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Env as WorkerEnv } from "../../worker/env";
import { TenantLedger } from "../../worker/tenants/tenant-ledger";
import { admin, call, configureModel, createTenantWithKey, engine, errorOf, heartbeat, registerNode, unique } from "./helpers";

const enc = new TextEncoder();

type Behaviour = "stream" | "json" | "break" | "truncate" | "error-status";

/** Agents whose answer depends on the request's first message: how to end, and what usage to report. */
function scriptedAgents() {
  vi.spyOn(globalThis, "fetch").mockImplementation(async (input: RequestInfo | URL, init?: RequestInit) => {
    const body = (await new Request(input, init).json()) as { messages: Array<{ content: string }>; stream?: boolean };
    const behaviour = body.messages[0]?.content.split(" ")[0] as Behaviour;
    const usage = { prompt_tokens: 40, completion_tokens: 3, total_tokens: 43, prompt_tokens_details: { cached_tokens: 32 } };
    const delta = (content: string) => `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content } }] })}\n\n`;
    if (behaviour === "error-status") {
      return new Response(JSON.stringify({ error: { message: "context too long", type: "invalid_request_error", param: null, code: null } }), { status: 400, headers: { "content-type": "application/json" } });
    }
    if (behaviour === "json") {
      return new Response(JSON.stringify({ id: "x", object: "chat.completion", choices: [{ index: 0, message: { role: "assistant", content: "abc" } }], usage }), { headers: { "content-type": "application/json" } });
    }
    const parts = ["a", "b", "c"].map(delta);
    // "truncate": the stream just ends after three tokens, cleanly, without usage or [DONE].
    if (behaviour !== "break" && behaviour !== "truncate") parts.push(`data: ${JSON.stringify({ choices: [], usage })}\n\ndata: [DONE]\n\n`);
    const stream = new ReadableStream<Uint8Array>({
      pull(c) {
        const next = parts.shift();
        if (next !== undefined) c.enqueue(enc.encode(next));
        // The breaking agent dies after three tokens: no usage chunk, no [DONE].
        else if (behaviour === "break") c.error(new Error("connection reset"));
        else c.close();
      },
    });
    return new Response(stream, { headers: { "content-type": "text/event-stream" } });
  });
}

async function modelWithNode(): Promise<string> {
  const model = unique("use");
  await configureModel(model, { node_limit: 100 });
  const node = unique("node");
  await heartbeat(node, await registerNode(node, [model]), [engine(model, { maxConcurrency: 100 })]);
  return model;
}

async function send(key: string, model: string, behaviour: Behaviour): Promise<{ status: number; text: string }> {
  const r = await call("/v1/chat/completions", {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ model, stream: behaviour !== "json" && behaviour !== "error-status", messages: [{ role: "user", content: `${behaviour} please` }] }),
  });
  return { status: r.status, text: await r.text() };
}

interface UsageResult {
  model: string | null;
  num_model_requests: number;
  input_tokens: number;
  output_tokens: number;
  input_cached_tokens: number;
  estimated_requests: number;
  failed_requests: number;
}

async function ownUsage(key: string, query = ""): Promise<{ status: number; body: { tenant_id: string; totals: UsageResult; data: Array<{ start_time: number; results: UsageResult[] }> } }> {
  const r = await call(`/v1/usage${query}`, { headers: { authorization: `Bearer ${key}` } });
  return { status: r.status, body: (await r.json()) as never };
}

async function d1Totals(tenantId: string): Promise<{ requests: number; prompt: number; completion: number }> {
  const row = await env.DB.prepare("SELECT COALESCE(SUM(requests),0) AS r, COALESCE(SUM(prompt_tokens),0) AS p, COALESCE(SUM(completion_tokens),0) AS c FROM usage_hourly WHERE tenant_id = ?")
    .bind(tenantId)
    .first<{ r: number; p: number; c: number }>();
  return { requests: Number(row?.r), prompt: Number(row?.p), completion: Number(row?.c) };
}

afterEach(() => vi.restoreAllMocks());

describe("recording", () => {
  it("has each request's usage in the ledger by the time its response has ended", async () => {
    const model = await modelWithNode();
    scriptedAgents();
    const { key } = await createTenantWithKey();
    expect((await send(key, model, "stream")).status).toBe(200);
    // No waiting: the record is written before the body's end reaches the client.
    let u = (await ownUsage(key)).body.totals;
    expect(u).toMatchObject({ num_model_requests: 1, input_tokens: 40, output_tokens: 3, input_cached_tokens: 32, estimated_requests: 0, failed_requests: 0 });
    expect((await send(key, model, "json")).status).toBe(200);
    u = (await ownUsage(key)).body.totals;
    expect(u).toMatchObject({ num_model_requests: 2, input_tokens: 80, output_tokens: 6, input_cached_tokens: 64 });
  });

  it("counts a stream that broke before the engine's usage from what was streamed, flagged estimated", async () => {
    const model = await modelWithNode();
    scriptedAgents();
    const { key } = await createTenantWithKey();
    const r = await send(key, model, "break");
    expect(r.text).toContain("upstream_stream_broken");
    const u = (await ownUsage(key)).body.totals;
    expect(u.num_model_requests).toBe(1);
    expect(u.output_tokens).toBe(3);
    // The prompt is the edge's estimate of "\u0001user\u0002break please".
    expect(u.input_tokens).toBeGreaterThan(0);
    expect(u).toMatchObject({ estimated_requests: 1, failed_requests: 1 });
  });

  it("tells the client a stream that ended without [DONE] was cut short, and counts it failed", async () => {
    const model = await modelWithNode();
    scriptedAgents();
    const { key } = await createTenantWithKey();
    const r = await send(key, model, "truncate");
    const events = r.text.split("\n\n").filter((e) => e.startsWith("data: "));
    expect(events).toHaveLength(4);
    expect(JSON.parse((events[3] as string).slice(6))).toMatchObject({ error: { code: "upstream_stream_broken", type: "server_error" } });
    expect((await ownUsage(key)).body.totals).toMatchObject({ num_model_requests: 1, output_tokens: 3, estimated_requests: 1, failed_requests: 1 });
  });

  it("counts a request the engine refused as one failed request with no tokens", async () => {
    const model = await modelWithNode();
    scriptedAgents();
    const { key } = await createTenantWithKey();
    expect((await send(key, model, "error-status")).status).toBe(400);
    expect((await ownUsage(key)).body.totals).toMatchObject({ num_model_requests: 1, input_tokens: 0, output_tokens: 0, failed_requests: 1 });
  });

  it("counts every request of a concurrent mix exactly once, cancelled ones included", async () => {
    const model = await modelWithNode();
    scriptedAgents();
    const { key, tenantId } = await createTenantWithKey();
    const kinds: Behaviour[] = Array.from({ length: 30 }, (_, i) => (["stream", "json", "break"] as const)[i % 3] as Behaviour);
    await Promise.all(kinds.map((k) => send(key, model, k)));
    // Three clients that hang up after the headers: their records are written in waitUntil.
    const cancelled = await Promise.all(
      [0, 1, 2].map(async () => {
        const hangUp = new AbortController();
        const r = await call("/v1/chat/completions", {
          method: "POST",
          headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
          body: JSON.stringify({ model, stream: true, messages: [{ role: "user", content: "stream now" }] }),
          signal: hangUp.signal,
        });
        const reader = r.body?.getReader();
        await reader?.read();
        hangUp.abort();
        await reader?.cancel().catch(() => {});
        return r.status;
      }),
    );
    expect(cancelled).toEqual([200, 200, 200]);
    // Generous: a loaded box may take a while to run the hung-up clients' waitUntil work.
    const deadline = Date.now() + 20_000;
    let total = 0;
    while (Date.now() < deadline) {
      total = (await ownUsage(key)).body.totals.num_model_requests;
      if (total >= 33) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(total).toBe(33);
    // Flushing moves them to D1 without changing what is reported.
    const ledger = env.LEDGER.getByName(tenantId);
    await ledger.flush();
    expect(await d1Totals(tenantId)).toMatchObject({ requests: 33 });
    expect((await ownUsage(key)).body.totals.num_model_requests).toBe(33);
  });

  it("ignores a repeated record of the same request", async () => {
    const { tenantId } = await createTenantWithKey();
    const ledger = env.LEDGER.getByName(tenantId);
    const rec = { requestId: "req-dup", model: "m", promptTokens: 10, completionTokens: 5, cachedTokens: 0, estimated: false, outcome: "completed" as const, at: Date.now() };
    expect(await ledger.record(tenantId, rec)).toEqual({ recorded: true });
    expect(await ledger.record(tenantId, rec)).toEqual({ recorded: false });
    await ledger.flush();
    expect(await ledger.record(tenantId, rec)).toEqual({ recorded: false });
    await ledger.flush();
    expect(await d1Totals(tenantId)).toEqual({ requests: 1, prompt: 10, completion: 5 });
  });
});

describe("flushing to D1", () => {
  it("counts a batch once when the ledger restarts between D1's commit and its own", async () => {
    const { tenantId, key } = await createTenantWithKey();
    const stub = env.LEDGER.getByName(tenantId);
    const at = Date.now();
    for (let i = 0; i < 250; i++) {
      await stub.record(tenantId, { requestId: `r-${i}`, model: "m", promptTokens: 2, completionTokens: 1, cachedTokens: 0, estimated: false, outcome: "completed", at });
    }
    // First flush: D1 commits the first batch (200 events), then the object dies before marking it.
    await runInDurableObject(stub, async (object) => {
      const instance = object as unknown as TenantLedger;
      instance.crashAfterCommit = true;
      await expect(instance.flush()).rejects.toThrow(/crash after commit/);
      instance.crashAfterCommit = false;
    });
    expect(await d1Totals(tenantId)).toEqual({ requests: 200, prompt: 400, completion: 200 });
    // Reads stay exact in the window between the two commits: the applied batch is not counted twice.
    expect((await ownUsage(key)).body.totals).toMatchObject({ num_model_requests: 250, input_tokens: 500, output_tokens: 250 });
    // A fresh instance over the same storage (a restart) re-sends the batch under its id: D1 refuses it.
    await runInDurableObject(stub, async (_instance, state) => {
      const restarted = new TenantLedger(state, env as unknown as WorkerEnv);
      expect(await restarted.flush()).toBe(250);
    });
    expect(await d1Totals(tenantId)).toEqual({ requests: 250, prompt: 500, completion: 250 });
    expect((await ownUsage(key)).body.totals.num_model_requests).toBe(250);
  });

  it("flushes from its alarm and records a reservation nobody settled as lost, estimated usage", async () => {
    const { tenantId, key } = await createTenantWithKey();
    const stub = env.LEDGER.getByName(tenantId);
    const res = await stub.reserve({ tenantId, requestId: "orphan", model: "m", promptTokens: 70, completionTokens: 100, limits: { rpm: null, tpm: 10_000, tokenBudget: null, budgetPeriod: "month" } });
    expect(res.ok).toBe(true);
    // The isolate that held the stream died: its reservation runs out.
    await runInDurableObject(stub, (_i, state) => {
      state.storage.sql.exec("UPDATE reservations SET expires_at = 0");
    });
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect(await d1Totals(tenantId)).toEqual({ requests: 1, prompt: 70, completion: 0 });
    expect((await ownUsage(key)).body.totals).toMatchObject({ num_model_requests: 1, estimated_requests: 1, failed_requests: 1 });
    // And the per-minute window was settled to the prompt alone.
    const state = await stub.limitState({ rpm: null, tpm: 10_000, tokenBudget: null, budgetPeriod: "month" });
    expect(state.state.tokensInWindow).toBe(70);
  });
});

describe("reading usage", () => {
  it("shows a tenant its own usage only, and operators any tenant's", async () => {
    const model = await modelWithNode();
    scriptedAgents();
    const a = await createTenantWithKey();
    const b = await createTenantWithKey();
    await send(a.key, model, "stream");
    await send(a.key, model, "stream");
    await send(b.key, model, "json");
    const ua = await ownUsage(a.key);
    const ub = await ownUsage(b.key);
    expect(ua.body.tenant_id).toBe(a.tenantId);
    expect(ua.body.totals.num_model_requests).toBe(2);
    expect(ub.body.totals.num_model_requests).toBe(1);
    // Naming the other tenant changes nothing: the tenant is the key's.
    const sneaky = await call(`/v1/usage?tenant_id=${a.tenantId}&tenant=${a.tenantId}`, { headers: { authorization: `Bearer ${b.key}` } });
    expect(((await sneaky.json()) as { tenant_id: string; totals: UsageResult }).totals.num_model_requests).toBe(1);
    // Tenant keys do not open the admin API.
    const viaAdmin = await call(`/admin/tenants/${a.tenantId}/usage`, { headers: { authorization: `Bearer ${b.key}` } });
    expect(viaAdmin.status).toBe(401);
    const op = await admin<{ tenant_id: string; totals: UsageResult; data: Array<{ results: UsageResult[] }> }>("GET", `/tenants/${a.tenantId}/usage?bucket_width=1h`);
    expect(op.status).toBe(200);
    expect(op.body.totals.num_model_requests).toBe(2);
    expect(op.body.data.at(-1)?.results[0]).toMatchObject({ model, num_model_requests: 2, input_tokens: 80, output_tokens: 6 });
  });

  it("filters by model and period, and names a bad parameter", async () => {
    const model = await modelWithNode();
    scriptedAgents();
    const { key } = await createTenantWithKey();
    await send(key, model, "json");
    expect((await ownUsage(key, `?model=${model}`)).body.totals.num_model_requests).toBe(1);
    expect((await ownUsage(key, "?model=other")).body.totals.num_model_requests).toBe(0);
    const past = Math.floor(Date.now() / 1000) - 10 * 86_400;
    expect((await ownUsage(key, `?start_time=${past - 86_400}&end_time=${past}`)).body.totals.num_model_requests).toBe(0);
    for (const [q, param] of [
      ["?start_time=yesterday", "start_time"],
      ["?bucket_width=1w", "bucket_width"],
      [`?start_time=${past}&end_time=${past - 5}`, "end_time"],
    ] as const) {
      const r = await call(`/v1/usage${q}`, { headers: { authorization: `Bearer ${key}` } });
      expect(r.status, q).toBe(400);
      expect((await errorOf(r)).param).toBe(param);
    }
  });
});
