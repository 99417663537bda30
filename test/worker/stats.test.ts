/**
 * The operator's view: /admin/stats (pools and tenants), its per-pool and per-tenant forms, and the
 * dashboard page. Driven through the API the way traffic creates the state: nodes beat, requests
 * wait for a full node, limits refuse requests, queues time out, clients leave.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Env as WorkerEnv } from "../../worker/env";
import { TenantLedger } from "../../worker/tenants/tenant-ledger";
import { admin, call, configureModel, createTenantWithKey, engine, heartbeat, registerNode, unique } from "./helpers";

const enc = new TextEncoder();

/** Agents that answer at once: usage 10 prompt + max_tokens completion tokens. */
function answeringAgents() {
  vi.spyOn(globalThis, "fetch").mockImplementation(async (input: RequestInfo | URL, init?: RequestInit) => {
    const body = (await new Request(input, init).json()) as Record<string, unknown>;
    const completion = Number(body.max_tokens ?? 4);
    const usage = { prompt_tokens: 10, completion_tokens: completion, total_tokens: 10 + completion };
    return new Response(JSON.stringify({ id: "x", object: "chat.completion", model: body.model, choices: [{ index: 0, message: { role: "assistant", content: "ok" }, finish_reason: "length" }], usage }), {
      headers: { "content-type": "application/json" },
    });
  });
}

/** Agents that stream one chunk, then hold the response open until `finish()`. */
function holdingAgents() {
  const open: Array<{ finish: () => void }> = [];
  vi.spyOn(globalThis, "fetch").mockImplementation(async () => {
    let finish = () => {};
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(enc.encode(`data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: "x" } }] })}\n\n`));
        finish = () => {
          c.enqueue(enc.encode(`data: ${JSON.stringify({ choices: [], usage: { prompt_tokens: 10, completion_tokens: 3, total_tokens: 13 } })}\n\ndata: [DONE]\n\n`));
          c.close();
        };
      },
    });
    open.push({ finish: () => finish() });
    return new Response(body, { headers: { "content-type": "text/event-stream" } });
  });
  return open;
}

function chat(key: string, model: string, extra: Record<string, unknown> = {}, signal?: AbortSignal): Promise<Response> {
  return call("/v1/chat/completions", {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ model, messages: [{ role: "user", content: "hello" }], ...extra }),
    ...(signal ? { signal } : {}),
  });
}

/** Polls until `cond` holds; the deadline is generous because a loaded CI box can be slow. */
async function until(cond: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function modelWithNode(over: Record<string, unknown> = {}, report: Parameters<typeof engine>[1] = {}): Promise<{ model: string; node: string }> {
  const model = unique("stats");
  await configureModel(model, over);
  const node = unique("node");
  await heartbeat(node, await registerNode(node, [model]), [engine(model, report)]);
  return { model, node };
}

// Shapes as the endpoints answer them (the fields these tests read).
interface PoolTenant { tenant_id: string; inflight: number; waiting: number; vtc_counter: number | null; requests: number; input_tokens: number; output_tokens: number; queue_timeouts: number; cancelled: number; no_healthy_node: number }
interface PoolStats {
  pool: string;
  models: Array<{ name: string; admission_policy: string; node_limit: number | null }>;
  nodes: Array<{ node_id: string; status: string; inflight: number; node_limit: number; load: number; running: number; kv_usage: number; kv_capacity_tokens: number; prefill_backlog_tokens: number; heartbeat_age_ms: number }>;
  node_status: Record<string, number>;
  inflight: number;
  waiting: number;
  tenants: PoolTenant[];
  counters_since: string;
}
interface Counts { requests: number; input_tokens: number; output_tokens: number; failed_requests: number }
interface LimitPart { limit: number | null; used: number; remaining: number | null; resets_at: string | null }
interface TenantStats {
  id: string;
  limits: { rpm_limit: number | null };
  usage: { today: Counts; month: Counts; month_by_model?: Array<Counts & { model: string }> };
  limit_state: { requests_per_minute: LimitPart; tokens_per_minute: LimitPart; budget: LimitPart & { period: string } } | null;
  rejections: { limits: { today: Record<string, number>; month: Record<string, number>; last_at: string | null } | null; pools: { queue_timeouts: number; cancelled: number; no_healthy_node: number } };
  inflight: number;
  waiting: number;
  served: { requests: number; input_tokens: number; output_tokens: number };
  pools: Array<PoolTenant & { pool: string }>;
}
interface Summary { object: string; generated_at: string; pools: PoolStats[]; tenants: TenantStats[]; tenants_total: number }

const poolStats = async (pool: string) => (await admin<PoolStats>("GET", `/stats/pools/${pool}`)).body;
const tenantStats = async (id: string) => (await admin<TenantStats>("GET", `/stats/tenants/${id}`)).body;
const summary = async () => (await admin<Summary>("GET", "/stats")).body;

afterEach(() => vi.restoreAllMocks());

describe("GET /admin/stats", () => {
  it("lists every pool with its nodes' health and load, and every tenant", async () => {
    const beforeBeat = Date.now();
    const { model, node } = await modelWithNode({}, { running: 3, kvUsage: 0.25, maxConcurrency: 8 });
    const { tenantId } = await createTenantWithKey();
    const res = await admin<Summary>("GET", "/stats");
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("no-store");
    const pool = res.body.pools.find((p) => p.pool === model);
    expect(pool?.models).toEqual([{ name: model, admission_policy: "vtc", max_queue_wait_ms: 30_000, node_limit: null }]);
    expect(pool?.nodes).toEqual([
      expect.objectContaining({ node_id: node, status: "healthy", inflight: 0, node_limit: 8, load: 0, running: 3, kv_usage: 0.25, kv_capacity_tokens: 100_000 }),
    ]);
    expect(pool?.node_status).toEqual({ healthy: 1 });
    // The age of the one beat sent, however long the box took between it and this read.
    expect(pool?.nodes[0]?.heartbeat_age_ms).toBeGreaterThanOrEqual(0);
    expect(pool?.nodes[0]?.heartbeat_age_ms).toBeLessThanOrEqual(Date.now() - beforeBeat);
    expect(res.body.tenants.find((t) => t.id === tenantId)).toMatchObject({ inflight: 0, waiting: 0, limit_state: null, rejections: { limits: null } });
  });

  it("shows each node's advertised cache server and its KV tiers at the last beat", async () => {
    const model = unique("stats");
    await configureModel(model);
    const node = unique("node");
    const kvCache = {
      chunkTokens: 256,
      windowMs: 60_000,
      tiers: [
        { tier: "l1", capacityBytes: 1_000, bytesUsed: 250, queries: 8, hits: 6, hitRate: 0.75, evictions: 1 },
        { tier: "l2", capacityBytes: 3_000, bytesUsed: 10, queries: 2, hits: 0, hitRate: 0, servers: 2, serversUp: 1 },
      ],
    };
    await heartbeat(node, await registerNode(node, [model]), [engine(model)], { extra: { cacheServer: "10.0.0.9:7400", kvCache } });
    const n = (await poolStats(model)).nodes[0] as unknown as Record<string, unknown>;
    expect(n).toMatchObject({
      cache_server: "10.0.0.9:7400",
      kv_cache: {
        chunk_tokens: 256,
        window_ms: 60_000,
        capacity_bytes: 4_000,
        tiers: [
          { tier: "l1", capacity_bytes: 1_000, bytes_used: 250, queries: 8, hits: 6, hit_rate: 0.75, evictions: 1 },
          { tier: "l2", capacity_bytes: 3_000, bytes_used: 10, queries: 2, hits: 0, hit_rate: 0, evictions: null, servers: 2, servers_up: 1 },
        ],
      },
    });
    // A node without tiers says so.
    const { model: plain } = await modelWithNode();
    expect((await poolStats(plain)).nodes[0]).toMatchObject({ cache_server: null, kv_cache: null });
  });

  it("is behind the admin token", async () => {
    expect((await admin("GET", "/stats", undefined, "wrong-token-0123456789")).status).toBe(401);
    expect((await call("/admin/stats/tenants/x")).status).toBe(401);
  });

  it("answers 404 for an unknown tenant or pool", async () => {
    expect((await admin("GET", "/stats/tenants/nobody-here")).status).toBe(404);
    expect((await admin<{ error: { code: string } }>("GET", "/stats/pools/no-such-pool")).body.error.code).toBe("pool_not_found");
  });
});

describe("pool stats", () => {
  it("shows a waiting queue: who waits, who runs, how full the node is", async () => {
    const { model, node } = await modelWithNode({ node_limit: 1, max_queue_wait_ms: 60_000 });
    const a = await createTenantWithKey();
    const b = await createTenantWithKey();
    const open = holdingAgents();
    const running = await chat(a.key, model, { stream: true });
    const queued = [chat(b.key, model, { stream: true }), chat(b.key, model, { stream: true })];
    await until(async () => (await poolStats(model)).waiting === 2, "two requests to wait");
    const p = await poolStats(model);
    expect(p.inflight).toBe(1);
    expect(p.nodes[0]).toMatchObject({ node_id: node, inflight: 1, node_limit: 1, load: 1 });
    expect(p.tenants.find((t) => t.tenant_id === a.tenantId)).toMatchObject({ inflight: 1, waiting: 0 });
    expect(p.tenants.find((t) => t.tenant_id === b.tenantId)).toMatchObject({ inflight: 0, waiting: 2 });
    // The tenant's own view says the same, and the summary too.
    expect(await tenantStats(b.tenantId)).toMatchObject({ inflight: 0, waiting: 2, pools: [expect.objectContaining({ pool: model, waiting: 2 })] });
    expect((await summary()).tenants.find((t) => t.id === b.tenantId)).toMatchObject({ waiting: 2 });
    // Drain it all: every request is served, counted with the engine's tokens.
    open[0]?.finish();
    await running.text();
    for (let i = 1; i < 3; i++) {
      await until(async () => open.length > i, `request ${i + 1} to reach the node`);
      open[i]?.finish();
      await (await queued[i - 1])?.text();
    }
    await until(async () => (await poolStats(model)).inflight === 0, "releases");
    const after = await poolStats(model);
    expect(after.waiting).toBe(0);
    expect(after.tenants.find((t) => t.tenant_id === b.tenantId)).toMatchObject({ requests: 2, input_tokens: 20, output_tokens: 6, inflight: 0, waiting: 0 });
    expect(after.tenants.find((t) => t.tenant_id === a.tenantId)?.vtc_counter).toBeGreaterThan(0);
  });

  it("counts queue timeouts and clients that left the queue, per tenant", async () => {
    const { model } = await modelWithNode({ node_limit: 1, max_queue_wait_ms: 300 });
    const runner = await createTenantWithKey();
    const waiter = await createTenantWithKey();
    const open = holdingAgents();
    const running = await chat(runner.key, model, { stream: true });
    expect((await chat(waiter.key, model, { stream: true })).status).toBe(429);
    // The next one must still be waiting when the client leaves, however slowly this box polls.
    await configureModel(model, { node_limit: 1, max_queue_wait_ms: 60_000 });
    const controller = new AbortController();
    const left = chat(waiter.key, model, { stream: true }, controller.signal).catch((e: unknown) => e);
    await until(async () => (await poolStats(model)).waiting === 1, "the request to queue");
    controller.abort();
    await left;
    await until(async () => (await poolStats(model)).waiting === 0, "the request to leave");
    const t = (await poolStats(model)).tenants.find((x) => x.tenant_id === waiter.tenantId);
    expect(t).toMatchObject({ queue_timeouts: 1, cancelled: 1, requests: 0 });
    expect((await tenantStats(waiter.tenantId)).rejections.pools).toEqual({ queue_timeouts: 1, cancelled: 1, no_healthy_node: 0 });
    open[0]?.finish();
    await running.text();
  });

  it("counts refusals for want of a healthy node", async () => {
    const model = unique("nonode");
    await configureModel(model);
    const { key, tenantId } = await createTenantWithKey();
    expect((await chat(key, model)).status).toBe(503);
    expect((await tenantStats(tenantId)).rejections.pools.no_healthy_node).toBe(1);
  });
});

describe("tenant stats", () => {
  it("shows a limited tenant's rejections by kind and what is left of each limit", async () => {
    const { model } = await modelWithNode({ node_limit: 100 }, { maxConcurrency: 100 });
    answeringAgents();
    const { key, tenantId } = await createTenantWithKey();
    await admin("PATCH", `/tenants/${tenantId}`, { rpm_limit: 3 });
    const firstSent = Date.now();
    for (let i = 0; i < 5; i++) await (await chat(key, model, { max_tokens: 5 })).text();
    const s = await tenantStats(tenantId);
    expect(s.limits.rpm_limit).toBe(3);
    expect(s.limit_state?.requests_per_minute).toMatchObject({ limit: 3, used: 3, remaining: 0 });
    expect(s.limit_state?.requests_per_minute.resets_at).not.toBeNull();
    expect(s.limit_state?.tokens_per_minute).toMatchObject({ limit: null, remaining: null });
    expect(s.rejections.limits?.today).toEqual({ requests: 2, tokens: 0, budget: 0 });
    expect(s.rejections.limits?.month).toEqual({ requests: 2, tokens: 0, budget: 0 });
    // The last rejection happened during the requests above (the stamp may be cut to the second).
    const lastAt = Date.parse(s.rejections.limits?.last_at ?? "");
    expect(lastAt).toBeGreaterThanOrEqual(Math.floor(firstSent / 1000) * 1000);
    expect(lastAt).toBeLessThanOrEqual(Date.now());
    // Usage is exact at once (the ledger adds what D1 does not have yet): three requests served.
    expect(s.usage.today).toMatchObject({ requests: 3, input_tokens: 30, output_tokens: 15, failed_requests: 0 });
    expect(s.usage.month).toMatchObject({ requests: 3, input_tokens: 30, output_tokens: 15 });
    expect(s.usage.month_by_model).toEqual([expect.objectContaining({ model, requests: 3 })]);
    expect(s.served).toEqual({ requests: 3, input_tokens: 30, output_tokens: 15 });
    // The summary reads the ledger of tenants with limits.
    const inSummary = (await summary()).tenants.find((t) => t.id === tenantId);
    expect(inSummary?.rejections.limits?.today.requests).toBe(2);
    expect(inSummary?.limit_state?.requests_per_minute.remaining).toBe(0);
    // Its usage comes from D1's aggregates: there once the ledger has flushed.
    await until(async () => (await summary()).tenants.find((t) => t.id === tenantId)?.usage.today.requests === 3, "the summary's usage", 30_000);
  });

  it("counts budget and token-rate rejections under their own kinds", async () => {
    const { model } = await modelWithNode({ node_limit: 100 }, { maxConcurrency: 100 });
    answeringAgents();
    const budget = await createTenantWithKey();
    await admin("PATCH", `/tenants/${budget.tenantId}`, { token_budget: 20, budget_period: "day" });
    expect((await chat(budget.key, model, { max_tokens: 30 })).status).toBe(200);
    expect((await chat(budget.key, model, { max_tokens: 1 })).status).toBe(429);
    const b = await tenantStats(budget.tenantId);
    expect(b.rejections.limits?.today).toEqual({ requests: 0, tokens: 0, budget: 1 });
    expect(b.limit_state?.budget).toMatchObject({ limit: 20, used: 40, remaining: 0, period: "day" });
    const tpm = await createTenantWithKey();
    await admin("PATCH", `/tenants/${tpm.tenantId}`, { tpm_limit: 20 });
    expect((await chat(tpm.key, model, { max_tokens: 30 })).status).toBe(200);
    expect((await chat(tpm.key, model, { max_tokens: 1 })).status).toBe(429);
    expect((await tenantStats(tpm.tenantId)).rejections.limits?.today).toEqual({ requests: 0, tokens: 1, budget: 0 });
  });

  it("keeps limit rejections in the ledger's storage across a restart", async () => {
    const { model } = await modelWithNode({ node_limit: 100 }, { maxConcurrency: 100 });
    answeringAgents();
    const { key, tenantId } = await createTenantWithKey();
    await admin("PATCH", `/tenants/${tenantId}`, { rpm_limit: 1 });
    await (await chat(key, model)).text();
    expect((await chat(key, model)).status).toBe(429);
    const stub = env.LEDGER.getByName(tenantId);
    const after = await runInDurableObject(stub, (_i, state) =>
      new TenantLedger(state, env as unknown as WorkerEnv).stats({ rpm: 1, tpm: null, tokenBudget: null, budgetPeriod: "month" }),
    );
    expect(after.rejections.today.requests).toBe(1);
    expect(after.state.requestsInWindow).toBe(1);
  });
});

describe("GET /admin/dashboard", () => {
  it("serves the page, its script and stylesheet without the token, with a strict content policy", async () => {
    const page = await call("/admin/dashboard");
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
    const csp = page.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("connect-src 'self'");
    const html = await page.text();
    expect(html).toContain('<form id="login"');
    expect(html).toContain('src="/admin/dashboard/app.js"');
    // Nothing from elsewhere.
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
    const js = await call("/admin/dashboard/app.js");
    expect(js.headers.get("content-type")).toMatch(/^text\/javascript/);
    const script = await js.text();
    expect(script).toContain("/admin/stats");
    expect(script).toContain("sessionStorage");
    expect(script).not.toContain("innerHTML");
    // The one absolute URL is SVG's namespace name, which is never fetched.
    expect(script.match(/https?:\/\/[^"]+/g)).toEqual(["http://www.w3.org/2000/svg"]);
    expect((await call("/admin/dashboard/app.css")).headers.get("content-type")).toMatch(/^text\/css/);
  });

  it("leaves the rest of /admin behind the token", async () => {
    expect((await call("/admin/dashboard/../stats")).status).toBe(401);
    expect((await call("/admin/tenants")).status).toBe(401);
    expect((await call("/admin/dashboard/secret")).status).toBe(401);
  });
});
