/**
 * The whole path, as a user meets it: wrangler dev (edge worker, local D1 and Durable Objects),
 * two node agents with embedded llama.cpp engines, driven with the official `openai` client.
 */
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signRequest } from "../../protocol/signing";
import { type DevStack, startDevStack } from "../../scripts/dev-stack";
import { tempDir } from "../support/tmp";

const MODEL = "tiny-llama";
/** Stale after 3 missed beats + 1 s = 4 s: an agent starved of CPU on a loaded box is not lost by accident. */
const HEARTBEAT_MS = 1_000;
let stack: DevStack;
let client: OpenAI;
const dir = tempDir("e2e");

beforeAll(async () => {
  const engine = { kind: "llamacpp" as const, model: MODEL, sequences: 2, contextSize: 2048, threads: 1 };
  stack = await startDevStack({
    // The bundle is made once: editing worker/ while the suite runs does not restart the edge.
    frozenWorker: true,
    stateDir: dir.path,
    model: MODEL,
    heartbeatIntervalMs: HEARTBEAT_MS,
    agents: [
      { nodeId: "node-a", region: "local", engines: [engine] },
      { nodeId: "node-b", region: "local", engines: [engine] },
    ],
  });
  client = new OpenAI({ baseURL: `${stack.edgeUrl}/v1`, apiKey: stack.apiKey, maxRetries: 0 });
});

afterAll(async () => {
  await stack?.stop();
  dir.cleanup();
});

describe("OpenAI API through the edge", () => {
  it("lists the models the tenant may use", async () => {
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toContain(MODEL);
  });

  it("serves a non-streaming chat completion with usage and names the node", async () => {
    const { data, response } = await client.chat.completions
      .create({ model: MODEL, max_tokens: 8, messages: [{ role: "user", content: "Say hello." }] })
      .withResponse();
    expect(data.object).toBe("chat.completion");
    expect(data.choices[0]?.message.role).toBe("assistant");
    expect(data.usage?.completion_tokens).toBeGreaterThan(0);
    expect(data.usage?.prompt_tokens).toBeGreaterThan(0);
    expect(["node-a", "node-b"]).toContain(response.headers.get("x-switchyard-node"));
    expect(response.headers.get("x-request-id")).toBeTruthy();
  });

  it("streams a chat completion chunk by chunk, without a usage chunk nobody asked for", async () => {
    const stream = await client.chat.completions.create({
      model: MODEL,
      stream: true,
      max_tokens: 12,
      messages: [{ role: "user", content: "Count to three." }],
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks.length).toBeGreaterThan(2);
    expect(chunks.at(-1)?.choices[0]?.finish_reason).toMatch(/stop|length/);
    expect(chunks.every((c) => c.usage == null)).toBe(true);
  });

  it("streams usage at the end when the client asks for it", async () => {
    const stream = await client.chat.completions.create({
      model: MODEL,
      stream: true,
      stream_options: { include_usage: true },
      max_tokens: 6,
      messages: [{ role: "user", content: "Hi" }],
    });
    let usage;
    let content = 0;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      if (chunk.choices[0]?.delta?.content) content++;
    }
    expect(usage?.completion_tokens).toBeGreaterThan(0);
    expect(usage?.completion_tokens).toBeGreaterThanOrEqual(content);
  });

  it("serves completions, streaming and not", async () => {
    const whole = await client.completions.create({ model: MODEL, prompt: "Once upon a time", max_tokens: 8 });
    expect(whole.object).toBe("text_completion");
    expect(whole.usage?.completion_tokens).toBeGreaterThan(0);
    const stream = await client.completions.create({ model: MODEL, prompt: "Once upon a time", max_tokens: 8, stream: true });
    let pieces = 0;
    let finish: string | null | undefined;
    for await (const chunk of stream) {
      if (chunk.choices[0]?.text) pieces++;
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(pieces).toBeGreaterThan(0);
    expect(finish).toMatch(/stop|length/);
  });

  it("rejects a bad key with AuthenticationError", async () => {
    const bad = new OpenAI({ baseURL: `${stack.edgeUrl}/v1`, apiKey: "sk-sy-key_000000000000.nottherealsecretnottherealsecretnottherea", maxRetries: 0 });
    await expect(bad.models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
  });

  it("answers 404 NotFoundError for an unknown model", async () => {
    const err = await client.chat.completions.create({ model: "no-such-model", messages: [{ role: "user", content: "x" }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    expect((err as InstanceType<typeof OpenAI.NotFoundError>).code).toBe("model_not_found");
  });

  it("answers 400 naming the bad field", async () => {
    const err = await client.chat.completions.create({ model: MODEL, max_tokens: -1, messages: [{ role: "user", content: "x" }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).param).toBe("max_tokens");
  });

  it("stops accepting a revoked key within seconds", async () => {
    const issued = await stack.admin<{ id: string; key: string }>("POST", `/tenants/${stack.tenantId}/keys`, { name: "to-revoke" });
    const keyed = new OpenAI({ baseURL: `${stack.edgeUrl}/v1`, apiKey: issued.body.key, maxRetries: 0 });
    await keyed.models.list();
    const revoked = await stack.admin("POST", `/keys/${issued.body.id}/revoke`);
    expect(revoked.status).toBe(200);
    const t0 = Date.now();
    // Asked until refused. Within the key cache's period (5 s) of the revocation it stops working:
    // no request sent later than that was served. Sending time, not answer time, is what counts (a
    // loaded box may be slow to answer).
    const acceptedSentAfter: number[] = [];
    let refused = false;
    while (!refused && Date.now() - t0 < 30_000) {
      const sentAt = Date.now();
      refused = await keyed.models.list().then(
        () => false,
        (e: unknown) => e instanceof OpenAI.AuthenticationError,
      );
      if (!refused) {
        acceptedSentAfter.push(sentAt - t0);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    expect(refused).toBe(true);
    expect(acceptedSentAfter.filter((ms) => ms > 5_500)).toEqual([]);
  });
});

describe("limits and usage through the edge", () => {
  it("counts each request's usage exactly as the engine reported it, readable with the tenant's own key", async () => {
    const tenant = `usage-${Date.now().toString(36)}`;
    expect((await stack.admin("POST", "/tenants", { id: tenant, name: tenant })).status).toBe(201);
    const issued = await stack.admin<{ key: string }>("POST", `/tenants/${tenant}/keys`, { name: "e2e" });
    const own = new OpenAI({ baseURL: `${stack.edgeUrl}/v1`, apiKey: issued.body.key, maxRetries: 0 });
    let prompt = 0;
    let completion = 0;
    const stream = await own.chat.completions.create({ model: MODEL, stream: true, stream_options: { include_usage: true }, max_tokens: 6, messages: [{ role: "user", content: "Hello there" }] });
    for await (const chunk of stream) if (chunk.usage) ({ prompt_tokens: prompt, completion_tokens: completion } = chunk.usage);
    const plain = await own.chat.completions.create({ model: MODEL, max_tokens: 4, messages: [{ role: "user", content: "Hi" }] });
    prompt += plain.usage?.prompt_tokens ?? 0;
    completion += plain.usage?.completion_tokens ?? 0;
    // The stream's end reached the client only after the ledger had the record: no waiting needed.
    const usage = (await own.get("/usage")) as { tenant_id: string; totals: { num_model_requests: number; input_tokens: number; output_tokens: number } };
    expect(usage.tenant_id).toBe(tenant);
    expect(usage.totals).toMatchObject({ num_model_requests: 2, input_tokens: prompt, output_tokens: completion });
    // The demo tenant's own usage does not include these.
    const demo = (await client.get("/usage")) as { tenant_id: string };
    expect(demo.tenant_id).toBe(stack.tenantId);
    const viaAdmin = await stack.admin<{ totals: { num_model_requests: number } }>("GET", `/tenants/${tenant}/usage`);
    expect(viaAdmin.body.totals.num_model_requests).toBe(2);
  });

  it("refuses requests over a tenant's limit with RateLimitError and OpenAI's headers", async () => {
    const tenant = `limited-${Date.now().toString(36)}`;
    expect((await stack.admin("POST", "/tenants", { id: tenant, name: tenant, rpm_limit: 2 })).status).toBe(201);
    const issued = await stack.admin<{ key: string }>("POST", `/tenants/${tenant}/keys`, { name: "e2e" });
    const limited = new OpenAI({ baseURL: `${stack.edgeUrl}/v1`, apiKey: issued.body.key, maxRetries: 0 });
    const ask = () => limited.chat.completions.create({ model: MODEL, max_tokens: 2, messages: [{ role: "user", content: "Hi" }] }).withResponse();
    const first = await ask();
    expect(first.response.headers.get("x-ratelimit-limit-requests")).toBe("2");
    await ask();
    const err = await ask().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    const rl = err as InstanceType<typeof OpenAI.RateLimitError>;
    expect(rl.type).toBe("requests");
    expect(rl.code).toBe("rate_limit_exceeded");
    expect(rl.headers?.get("x-ratelimit-remaining-requests")).toBe("0");
    expect(Number(rl.headers?.get("retry-after"))).toBeGreaterThan(0);
  });
});

describe("node agents", () => {
  it("refuse requests that the edge did not sign", async () => {
    const agent = stack.agents.get("node-a");
    const body = JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "x" }] });
    const unsigned = await fetch(`${agent?.url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body });
    expect(unsigned.status).toBe(401);
    const forged = await signRequest({
      nodeId: "node-a",
      keyVersion: 1,
      secret: "sy_ns_1_not-the-real-secret-of-this-node-at-all",
      method: "POST",
      path: "/v1/chat/completions",
      body: new TextEncoder().encode(body),
    });
    const badSig = await fetch(`${agent?.url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json", ...forged }, body });
    expect(badSig.status).toBe(401);
    expect(((await badSig.json()) as { error: { code: string } }).error.code).toMatch(/bad_signature|unknown_key_version/);
  });

  it("when one is killed, its node leaves the pool and requests go to the other; it rejoins on return", async () => {
    await stack.stopAgent("node-b", "SIGKILL");
    let restarted = false;
    const seen = new Set<string>();
    try {
      // Requests right after the kill are retried on node-a when node-b refuses connections.
      for (let i = 0; i < 4; i++) {
        const { response } = await client.chat.completions.create({ model: MODEL, max_tokens: 2, messages: [{ role: "user", content: `q${i}` }] }).withResponse();
        expect(response.headers.get("x-switchyard-node")).toBe("node-a");
      }
      const nodes = await stack.waitForNodes((ns) => ns.find((n) => n.id === "node-b")?.live.every((l) => l.status === "lost") ?? false, 30_000);
      expect(nodes.find((n) => n.id === "node-a")?.live[0]?.status).toBe("healthy");
      await stack.startAgent("node-b");
      restarted = true;
      await stack.waitForNodes((ns) => ns.find((n) => n.id === "node-b")?.live.some((l) => l.status === "healthy") ?? false, 30_000);
      // Least-request breaks ties at random: ask until both nodes have answered (bounded; 2^-29 odds
      // that one never does).
      for (let i = 0; i < 30 && seen.size < 2; i++) {
        const { response } = await client.completions.create({ model: MODEL, prompt: `p${i}`, max_tokens: 1 }).withResponse();
        seen.add(response.headers.get("x-switchyard-node") ?? "");
      }
    } finally {
      // A failed assertion must not leave node-b dead for the tests after this one.
      if (!restarted) await stack.startAgent("node-b");
    }
    expect(seen).toEqual(new Set(["node-a", "node-b"]));
  });

  it("when one shuts down cleanly, the edge stops routing to it at once", async () => {
    await stack.stopAgent("node-a", "SIGTERM");
    const nodes = await stack.waitForNodes((ns) => ns.find((n) => n.id === "node-a")?.live.every((l) => l.status === "left") ?? false, 30_000);
    expect(nodes.find((n) => n.id === "node-b")?.live[0]?.status).toBe("healthy");
    const { response } = await client.chat.completions.create({ model: MODEL, max_tokens: 2, messages: [{ role: "user", content: "after" }] }).withResponse();
    expect(response.headers.get("x-switchyard-node")).toBe("node-b");
  });

  it("with no node left, answers 503 with Retry-After", async () => {
    await stack.stopAgent("node-b", "SIGTERM");
    await stack.waitForNodes((ns) => ns.every((n) => n.live.every((l) => l.status !== "healthy")), 30_000);
    const err = await client.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "x" }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.InternalServerError);
    const apiErr = err as InstanceType<typeof OpenAI.InternalServerError>;
    expect(apiErr.status).toBe(503);
    expect(apiErr.headers?.get("retry-after")).toBeTruthy();
  });
});
