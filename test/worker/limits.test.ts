/**
 * Per-tenant limits through the API: requests and tokens per minute, token budgets. Concurrent
 * bursts may overshoot a limit by at most one request's reservation, and only by that.
 */
import fc from "fast-check";
import { afterEach, describe, expect, it, vi } from "vitest";
import { admin, call, configureModel, createTenantWithKey, engine, errorOf, heartbeat, registerNode, unique } from "./helpers";

const enc = new TextEncoder();

interface AgentCall {
  body: Record<string, unknown>;
  promptTokens: number;
  completionTokens: number;
}

/**
 * Agents that answer at once with usage an engine could report: prompt tokens ≤ the prompt's bytes,
 * completion tokens = the request's max_tokens (the worst case a limit must absorb).
 */
function answeringAgents(promptTokensOf: (text: string) => number = (t) => Math.ceil(t.length / 4)) {
  const calls: AgentCall[] = [];
  vi.spyOn(globalThis, "fetch").mockImplementation(async (input: RequestInfo | URL, init?: RequestInit) => {
    const req = new Request(input, init);
    const body = (await req.json()) as Record<string, unknown>;
    const messages = body.messages as Array<{ content: string }>;
    const promptTokens = promptTokensOf(messages.map((m) => m.content).join(""));
    const completionTokens = Number(body.max_tokens ?? body.max_completion_tokens ?? 16);
    calls.push({ body, promptTokens, completionTokens });
    const usage = { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
    return new Response(JSON.stringify({ id: "x", object: "chat.completion", model: body.model, choices: [{ index: 0, message: { role: "assistant", content: "ok" }, finish_reason: "length" }], usage }), {
      headers: { "content-type": "application/json" },
    });
  });
  return calls;
}

async function modelWithNode(): Promise<string> {
  const model = unique("lim");
  // Enough room that nothing waits at the pool: limits are what is under test.
  await configureModel(model, { node_limit: 1_000 });
  const node = unique("node");
  await heartbeat(node, await registerNode(node, [model]), [engine(model, { maxConcurrency: 1_000 })]);
  return model;
}

async function limitedTenant(limits: Record<string, unknown>): Promise<{ tenantId: string; key: string }> {
  const t = await createTenantWithKey();
  const r = await admin("PATCH", `/tenants/${t.tenantId}`, limits);
  expect(r.status).toBe(200);
  return t;
}

/** One request, read to the end as a client would (usage settles when the body completes). */
async function send(key: string, model: string, content: string, extra: Record<string, unknown> = {}): Promise<Response> {
  const r = await call("/v1/chat/completions", {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ model, messages: [{ role: "user", content }], ...extra }),
  });
  return new Response(await r.text(), { status: r.status, headers: r.headers });
}

/** The edge's reservation for a one-message chat request (tenants/ledger-client.ts). */
function reservation(content: string, maxTokens: number): number {
  return enc.encode(`\u0001user\u0002${content}`).byteLength + 16 + maxTokens;
}

afterEach(() => vi.restoreAllMocks());

describe("requests per minute", () => {
  it("admits exactly the limit out of a concurrent burst, and says so in OpenAI's shape", async () => {
    const model = await modelWithNode();
    answeringAgents();
    const { key } = await limitedTenant({ rpm_limit: 5 });
    const results = await Promise.all(Array.from({ length: 20 }, () => send(key, model, "hi", { max_tokens: 4 })));
    const ok = results.filter((r) => r.status === 200);
    const limited = results.filter((r) => r.status === 429);
    expect(ok.length).toBe(5);
    expect(limited.length).toBe(15);
    const err = await errorOf(limited[0] as Response);
    expect(err).toMatchObject({ type: "requests", code: "rate_limit_exceeded" });
    expect(err.message).toMatch(/requests per minute/);
    const h = (limited[0] as Response).headers;
    expect(h.get("x-ratelimit-limit-requests")).toBe("5");
    expect(h.get("x-ratelimit-remaining-requests")).toBe("0");
    expect(Number(h.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(Number(h.get("retry-after"))).toBeLessThanOrEqual(60);
    expect(h.get("x-ratelimit-reset-requests")).toMatch(/^\d+s$/);
    // Successful responses carry the headers too, counting down.
    const remaining = ok.map((r) => Number(r.headers.get("x-ratelimit-remaining-requests"))).sort();
    expect(remaining).toEqual([0, 1, 2, 3, 4]);
  });

  it("gives the reservation back when no node serves the request", async () => {
    const model = unique("nonode");
    await configureModel(model);
    const { key } = await limitedTenant({ rpm_limit: 2 });
    for (let i = 0; i < 4; i++) {
      const r = await send(key, model, "hi");
      // 503 every time, never 429: refused requests do not count against the limit.
      expect(r.status).toBe(503);
    }
  });
});

describe("tokens per minute", () => {
  it("overshoots by at most one reservation under any concurrent burst", async () => {
    const model = await modelWithNode();
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 200, max: 5_000 }),
        fc.array(fc.record({ chars: fc.integer({ min: 1, max: 600 }), maxTokens: fc.integer({ min: 1, max: 400 }) }), { minLength: 2, maxLength: 24 }),
        async (tpm, reqs) => {
          vi.restoreAllMocks();
          const calls = answeringAgents();
          const { key } = await limitedTenant({ tpm_limit: tpm });
          const results = await Promise.all(reqs.map((r) => send(key, model, "é".repeat(r.chars), { max_tokens: r.maxTokens })));
          const admitted = results.map((r, i) => ({ status: r.status, req: reqs[i] as { chars: number; maxTokens: number } })).filter((r) => r.status === 200);
          for (const r of results) expect([200, 429]).toContain(r.status);
          const used = calls.reduce((s, c) => s + c.promptTokens + c.completionTokens, 0);
          const largest = Math.max(...reqs.map((r) => reservation("é".repeat(r.chars), r.maxTokens)));
          expect(used).toBeLessThanOrEqual(tpm + largest);
          // The first request is always admitted (nothing used yet).
          expect(admitted.length).toBeGreaterThanOrEqual(1);
        },
      ),
      { numRuns: 12 },
    );
  });

  it("settles reservations with real usage: what was reserved but not used is free again", async () => {
    const model = await modelWithNode();
    // The engine reports 1 prompt token whatever the prompt: reservations (bytes + max_tokens) are far larger.
    const calls = answeringAgents(() => 1);
    const content = "x".repeat(400);
    const perRequest = reservation(content, 10);
    const { key } = await limitedTenant({ tpm_limit: perRequest * 2 });
    // Sequential requests settle before the next: each one uses 11 tokens, so many fit.
    for (let i = 0; i < 10; i++) expect((await send(key, model, content, { max_tokens: 10 })).status).toBe(200);
    expect(calls.length).toBe(10);
    const last = await send(key, model, content, { max_tokens: 10 });
    expect(Number(last.headers.get("x-ratelimit-remaining-tokens"))).toBe(perRequest * 2 - 10 * 11 - perRequest);
  });

  it("caps a request without max_tokens at the tenant's default, so its reservation bounds it", async () => {
    const model = await modelWithNode();
    const calls = answeringAgents();
    const { key } = await limitedTenant({ tpm_limit: 100_000, default_max_tokens: 77 });
    expect((await send(key, model, "hello")).status).toBe(200);
    expect(calls[0]?.body.max_tokens).toBe(77);
    const { key: other } = await limitedTenant({ tpm_limit: 100_000 });
    expect((await send(other, model, "hello")).status).toBe(200);
    expect(calls[1]?.body.max_tokens).toBe(1024);
    // A tenant without limits is not capped.
    const free = await createTenantWithKey();
    expect((await send(free.key, model, "hello")).status).toBe(200);
    expect(calls[2]?.body.max_tokens).toBeUndefined();
  });

  it("rejects with type 'tokens' and the token headers", async () => {
    const model = await modelWithNode();
    answeringAgents();
    const { key } = await limitedTenant({ tpm_limit: 50 });
    expect((await send(key, model, "hi", { max_tokens: 100 })).status).toBe(200);
    const r = await send(key, model, "hi", { max_tokens: 1 });
    expect(r.status).toBe(429);
    expect(await errorOf(r)).toMatchObject({ type: "tokens", code: "rate_limit_exceeded" });
    expect(r.headers.get("x-ratelimit-limit-tokens")).toBe("50");
    expect(r.headers.get("x-ratelimit-remaining-tokens")).toBe("0");
  });
});

describe("token budget", () => {
  it("stops a tenant at its budget, overshooting by at most one reservation, with insufficient_quota", async () => {
    const model = await modelWithNode();
    const calls = answeringAgents();
    const { key } = await limitedTenant({ token_budget: 1_000, budget_period: "day" });
    const content = "y".repeat(100);
    const burstFrom = Date.now();
    const results = await Promise.all(Array.from({ length: 30 }, () => send(key, model, content, { max_tokens: 50 })));
    const burstTo = Date.now();
    const used = calls.reduce((s, c) => s + c.promptTokens + c.completionTokens, 0);
    expect(used).toBeLessThanOrEqual(1_000 + reservation(content, 50));
    const refused = results.filter((r) => r.status === 429);
    expect(refused.length).toBeGreaterThan(0);
    const err = await errorOf(refused[0] as Response);
    expect(err).toMatchObject({ type: "insufficient_quota", code: "insufficient_quota" });
    // Retry-After points at the end of the UTC day, as seen at some moment of the burst (which a
    // loaded box may stretch over seconds).
    const midnight = (at: number) => Date.UTC(new Date(at).getUTCFullYear(), new Date(at).getUTCMonth(), new Date(at).getUTCDate() + 1);
    const retryAfter = Number((refused[0] as Response).headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThanOrEqual(Math.floor((midnight(burstTo) - burstTo) / 1000) - 1);
    expect(retryAfter).toBeLessThanOrEqual(Math.ceil((midnight(burstFrom) - burstFrom) / 1000) + 1);
    // Reservations were settled with real usage, so sequential requests use up the rest of the
    // budget, and the total stays within one reservation of it.
    let sequential = 0;
    while ((await send(key, model, content, { max_tokens: 50 })).status === 200) sequential++;
    expect(sequential).toBeGreaterThan(0);
    const total = calls.reduce((s, c) => s + c.promptTokens + c.completionTokens, 0);
    expect(total).toBeGreaterThanOrEqual(1_000);
    expect(total).toBeLessThanOrEqual(1_000 + reservation(content, 50));
  });

  it("takes effect within the key cache period and is cleared with null", async () => {
    const model = await modelWithNode();
    answeringAgents();
    const { tenantId, key } = await limitedTenant({ token_budget: 1 });
    expect((await send(key, model, "hi", { max_tokens: 5 })).status).toBe(200);
    expect((await send(key, model, "hi", { max_tokens: 5 })).status).toBe(429);
    const cleared = await admin("PATCH", `/tenants/${tenantId}`, { token_budget: null });
    expect(cleared.body).toMatchObject({ token_budget: null });
    expect((await send(key, model, "hi", { max_tokens: 5 })).status).toBe(200);
  });
});

describe("limit configuration", () => {
  it("names the field of a bad limit", async () => {
    const { tenantId } = await createTenantWithKey();
    for (const [body, param] of [
      [{ rpm_limit: -1 }, "rpm_limit"],
      [{ tpm_limit: 1.5 }, "tpm_limit"],
      [{ budget_period: "week" }, "budget_period"],
      [{ default_max_tokens: "lots" }, "default_max_tokens"],
    ] as const) {
      const r = await admin<{ error: { param: string; message: string } }>("PATCH", `/tenants/${tenantId}`, body);
      expect(r.status).toBe(400);
      expect(r.body.error.param).toBe(param);
    }
    const ok = await admin("PATCH", `/tenants/${tenantId}`, { rpm_limit: 60, tpm_limit: 10_000, token_budget: 1_000_000, budget_period: "month", default_max_tokens: 512 });
    expect(ok.body).toMatchObject({ rpm_limit: 60, tpm_limit: 10_000, token_budget: 1_000_000, budget_period: "month", default_max_tokens: 512 });
  });
});
