/** The public API in workerd, with node agents played by a mocked fetch. */
import { env } from "cloudflare:workers";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { verifyRequest } from "../../protocol/signing";
import { admin, call, chat, configureModel, createTenantWithKey, engine, errorOf, heartbeat, poolSnapshot, registerNode, unique } from "./helpers";

const enc = new TextEncoder();

function sse(events: unknown[], { done = true } = {}): ReadableStream<Uint8Array> {
  const lines = events.map((e) => `data: ${JSON.stringify(e)}\n\n`);
  if (done) lines.push("data: [DONE]\n\n");
  return new ReadableStream({
    start(c) {
      // Split mid-event too, as TCP would.
      for (const l of lines) {
        const cut = Math.floor(l.length / 2);
        c.enqueue(enc.encode(l.slice(0, cut)));
        c.enqueue(enc.encode(l.slice(cut)));
      }
      c.close();
    },
  });
}

const chunk = (content: string) => ({ id: "c", object: "chat.completion.chunk", model: "m", choices: [{ index: 0, delta: { content }, finish_reason: null }] });
const usageChunk = { id: "c", object: "chat.completion.chunk", model: "m", choices: [], usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 } };

interface Seen {
  url: string;
  headers: Headers;
  body: Record<string, unknown>;
  raw: Uint8Array;
}

function mockAgents(handler: (seen: Seen) => Response | Promise<Response>): Seen[] {
  const seen: Seen[] = [];
  vi.spyOn(globalThis, "fetch").mockImplementation(async (input: RequestInfo | URL, init?: RequestInit) => {
    const req = new Request(input, init);
    const raw = new Uint8Array(await req.arrayBuffer());
    const s = { url: req.url, headers: req.headers, body: JSON.parse(new TextDecoder().decode(raw)) as Record<string, unknown>, raw };
    seen.push(s);
    return handler(s);
  });
  return seen;
}

/** In-flight count once releases (sent in waitUntil) have landed, or what is left after 20 s. */
async function waitIdle(pool: string): Promise<number> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const snap = await poolSnapshot(pool);
    if (snap.inflight === 0) return 0;
    await new Promise((r) => setTimeout(r, 20));
  }
  return (await poolSnapshot(pool)).inflight;
}

let key: string;
let tenantId: string;

beforeAll(async () => {
  ({ key, tenantId } = await createTenantWithKey());
});

afterEach(() => {
  vi.restoreAllMocks();
});

async function modelWithNodes(n: number, over: Record<string, unknown> = {}) {
  const model = unique("m");
  await configureModel(model, over);
  const nodes: Array<{ id: string; secret: string }> = [];
  for (let i = 0; i < n; i++) {
    const id = unique("node");
    const secret = await registerNode(id, [model]);
    await heartbeat(id, secret, [engine(model)]);
    nodes.push({ id, secret });
  }
  return { model, nodes };
}

describe("errors at the API", () => {
  it("401 without a key, with a request id", async () => {
    const res = await call("/v1/models");
    expect(res.status).toBe(401);
    expect(res.headers.get("x-request-id")).toBeTruthy();
    expect(await errorOf(res)).toMatchObject({ type: "authentication_error", code: "missing_api_key" });
  });

  it("401 for a malformed or unknown key", async () => {
    for (const bad of ["garbage", "sk-sy-key_aaaaaaaaaaaa.bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"]) {
      const res = await call("/v1/models", { headers: { authorization: `Bearer ${bad}` } });
      expect(res.status).toBe(401);
      expect((await errorOf(res)).code).toBe("invalid_api_key");
    }
  });

  it("keeps a client's request id", async () => {
    const res = await call("/v1/models", { headers: { authorization: `Bearer ${key}`, "x-request-id": "client-id-123" } });
    expect(res.headers.get("x-request-id")).toBe("client-id-123");
  });

  it("404 for an unknown model, 403 for a model the tenant may not use", async () => {
    const missing = await chat(key, { model: "does-not-exist", messages: [{ role: "user", content: "x" }] });
    expect(missing.status).toBe(404);
    expect(await errorOf(missing)).toMatchObject({ param: "model", code: "model_not_found" });
    const other = await createTenantWithKey();
    const model = unique("private");
    await configureModel(model, { allow_all_tenants: false, tenants: [other.tenantId] });
    const forbidden = await chat(key, { model, messages: [{ role: "user", content: "x" }] });
    expect(forbidden.status).toBe(403);
    expect(await errorOf(forbidden)).toMatchObject({ type: "permission_error", code: "model_not_allowed" });
    const listed = (await (await call("/v1/models", { headers: { authorization: `Bearer ${key}` } })).json()) as { data: Array<{ id: string }> };
    expect(listed.data.map((m) => m.id)).not.toContain(model);
  });

  it("400 naming the bad field", async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ messages: [{ role: "user", content: "x" }] }, "model"],
      [{ model: "m", messages: [] }, "messages"],
      [{ model: "m", messages: [{ role: "robot", content: "x" }] }, "messages[0].role"],
      [{ model: "m", max_tokens: 10_000_000_000, messages: [{ role: "user", content: "x" }] }, "max_tokens"],
      [{ model: "m", temperature: "hot", messages: [{ role: "user", content: "x" }] }, "temperature"],
      [{ model: "m", stream: "yes", messages: [{ role: "user", content: "x" }] }, "stream"],
    ];
    for (const [body, param] of cases) {
      const res = await chat(key, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect((await errorOf(res)).param).toBe(param);
    }
  });

  it("400 for malformed JSON and invalid UTF-8", async () => {
    const bad = await call("/v1/chat/completions", { method: "POST", headers: { authorization: `Bearer ${key}` }, body: "{\"model\":" });
    expect(bad.status).toBe(400);
    expect((await errorOf(bad)).code).toBe("invalid_json");
    const utf = await call("/v1/chat/completions", { method: "POST", headers: { authorization: `Bearer ${key}` }, body: new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]) });
    expect(utf.status).toBe(400);
    expect((await errorOf(utf)).message).toContain("UTF-8");
  });

  it("413 for a body over the limit", async () => {
    const huge = JSON.stringify({ model: "m", messages: [{ role: "user", content: "x".repeat(1_100_000) }] });
    const res = await call("/v1/chat/completions", { method: "POST", headers: { authorization: `Bearer ${key}` }, body: huge });
    expect(res.status).toBe(413);
    expect((await errorOf(res)).code).toBe("request_too_large");
  });

  it("400 for an unknown routing strategy, naming the valid ones", async () => {
    const { model } = await modelWithNodes(1);
    const res = await chat(key, { model, messages: [{ role: "user", content: "x" }] }, { "routing-strategy": "telepathy" });
    expect(res.status).toBe(400);
    const err = await errorOf(res);
    expect(err.param).toBe("routing-strategy");
    expect(err.message).toContain("least-request");
    expect(err.message).toContain("random");
  });

  it("503 with Retry-After when no node is healthy", async () => {
    const model = unique("lonely");
    await configureModel(model);
    const res = await chat(key, { model, messages: [{ role: "user", content: "x" }] });
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toMatch(/^\d+$/);
    expect(await errorOf(res)).toMatchObject({ type: "overloaded_error", code: "no_healthy_node" });
  });

  it("404 in OpenAI's shape for unknown routes", async () => {
    const res = await call("/v1/embeddings-of-the-future", { method: "POST", headers: { authorization: `Bearer ${key}` } });
    expect(res.status).toBe(404);
    expect((await errorOf(res)).type).toBe("invalid_request_error");
  });
});

describe("proxying to node agents", () => {
  it("signs the request for the chosen node and passes the SSE stream through, without the usage chunk nobody asked for", async () => {
    const { model, nodes } = await modelWithNodes(1);
    const seen = mockAgents(() => new Response(sse([chunk("Hel"), chunk("lo"), usageChunk]), { headers: { "content-type": "text/event-stream" } }));
    const res = await chat(key, { model, stream: true, messages: [{ role: "user", content: "hi" }] }, { "x-request-id": "req-sse-1" });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    expect(res.headers.get("x-switchyard-node")).toBe(nodes[0]?.id);
    expect(res.headers.get("x-switchyard-region")).toBe("local");
    expect(res.headers.get("x-switchyard-routing-strategy")).toBe("least-request");
    const text = await res.text();
    expect(text).toContain('"content":"Hel"');
    expect(text).toContain('"content":"lo"');
    expect(text).not.toContain("usage");
    expect(text.trimEnd().endsWith("data: [DONE]")).toBe(true);

    const upstream = seen[0] as Seen;
    expect(upstream.url).toBe(`http://${nodes[0]?.id}.agent.test:8801/v1/chat/completions`);
    expect(upstream.body.stream_options).toEqual({ include_usage: true });
    expect(upstream.headers.get("x-request-id")).toBe("req-sse-1");
    expect(upstream.headers.get("x-switchyard-tenant")).toBe(tenantId);
    const verdict = await verifyRequest({ method: "POST", path: "/v1/chat/completions", body: upstream.raw, headers: upstream.headers, secretFor: () => nodes[0]?.secret });
    expect(verdict.ok).toBe(true);
    expect(await waitIdle(model)).toBe(0);
  });

  it("keeps the usage chunk when the client asked for it, and forwards the body untouched", async () => {
    const { model } = await modelWithNodes(1);
    const seen = mockAgents(() => new Response(sse([chunk("a"), usageChunk]), { headers: { "content-type": "text/event-stream" } }));
    const body = { model, stream: true, stream_options: { include_usage: true }, messages: [{ role: "user", content: "hi" }] };
    const res = await chat(key, body);
    expect(await res.text()).toContain('"usage":{"prompt_tokens":5');
    expect(new TextDecoder().decode(seen[0]?.raw)).toBe(JSON.stringify(body));
  });

  it("passes non-streamed JSON through", async () => {
    const { model } = await modelWithNodes(1);
    const completion = { id: "x", object: "chat.completion", choices: [{ index: 0, message: { role: "assistant", content: "hey" }, finish_reason: "stop" }], usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } };
    mockAgents(() => Response.json(completion));
    const res = await chat(key, { model, messages: [{ role: "user", content: "hi" }] });
    expect(await res.json()).toEqual(completion);
    expect(await waitIdle(model)).toBe(0);
  });

  it("retries on another node when the first cannot be reached, and cools the failed one down", async () => {
    const { model, nodes } = await modelWithNodes(2);
    const [a, b] = nodes as unknown as [{ id: string }, { id: string }];
    const seen = mockAgents((s) => {
      if (s.url.includes(a.id)) throw new TypeError("connection refused");
      return Response.json({ id: "ok", object: "chat.completion", choices: [], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } });
    });
    const attemptsOnA = () => seen.filter((s) => s.url.includes(a.id)).length;
    // Least-request breaks ties at random, so the first requests may all go straight to b:
    // send until one has been tried on a (bounded; 1/2^30 odds of never trying it).
    for (let i = 0; i < 30 && attemptsOnA() === 0; i++) {
      const res = await chat(key, { model, messages: [{ role: "user", content: "hi" }] });
      expect(res.status).toBe(200);
      expect(res.headers.get("x-switchyard-node")).toBe(b.id);
      await res.arrayBuffer();
    }
    expect(attemptsOnA()).toBe(1);
    // Cooling down: the next requests go to b without another attempt on a.
    for (let i = 0; i < 3; i++) {
      const res = await chat(key, { model, messages: [{ role: "user", content: "hi" }] });
      expect(res.headers.get("x-switchyard-node")).toBe(b.id);
      await res.arrayBuffer();
    }
    expect(attemptsOnA()).toBe(1);
    const snap = await poolSnapshot(model);
    expect(snap.nodes.find((n) => n.nodeId === a.id)?.status).toBe("failing");
    expect(await waitIdle(model)).toBe(0);
  });

  it("retries elsewhere when an agent answers 503 (overloaded)", async () => {
    const { model, nodes } = await modelWithNodes(2);
    let first = true;
    const seen = mockAgents(() => {
      if (first) {
        first = false;
        return Response.json({ error: { message: "at capacity", type: "overloaded_error", code: "node_overloaded" } }, { status: 503 });
      }
      return Response.json({ id: "ok", object: "chat.completion", choices: [] });
    });
    const res = await chat(key, { model, messages: [{ role: "user", content: "hi" }] });
    expect(res.status).toBe(200);
    expect(seen).toHaveLength(2);
    expect(new Set(seen.map((s) => new URL(s.url).hostname)).size).toBe(2);
    expect(nodes).toHaveLength(2);
  });

  it("ends a stream that breaks mid-way with an error event the SDK raises, and releases the node", async () => {
    const { model } = await modelWithNodes(1);
    mockAgents(
      () =>
        new Response(
          new ReadableStream({
            pulls: 0,
            pull(c: ReadableStreamDefaultController<Uint8Array>) {
              // First pull delivers a chunk; the next finds the agent gone.
              if ((this as { pulls: number }).pulls++ === 0) c.enqueue(enc.encode(`data: ${JSON.stringify(chunk("partial"))}\n\n`));
              else c.error(new Error("agent died"));
            },
          } as UnderlyingSource<Uint8Array> & { pulls: number }),
          { headers: { "content-type": "text/event-stream" } },
        ),
    );
    const res = await chat(key, { model, stream: true, messages: [{ role: "user", content: "hi" }] });
    const text = await res.text();
    expect(text).toContain("partial");
    expect(text).toContain('"code":"upstream_stream_broken"');
    expect(await waitIdle(model)).toBe(0);
  });

  it("uses the strategy the client names, else the model's default", async () => {
    const { model } = await modelWithNodes(2, { default_strategy: "random" });
    mockAgents(() => Response.json({ id: "ok", object: "chat.completion", choices: [] }));
    const dflt = await chat(key, { model, messages: [{ role: "user", content: "hi" }] });
    expect(dflt.headers.get("x-switchyard-routing-strategy")).toBe("random");
    const named = await chat(key, { model, messages: [{ role: "user", content: "hi" }] }, { "routing-strategy": "least-request:2,random" });
    expect(named.headers.get("x-switchyard-routing-strategy")).toBe("least-request:2,random");
  });

  it("never passes an agent's 401 to the client: the request goes elsewhere", async () => {
    const { model, nodes } = await modelWithNodes(2);
    const [a, b] = nodes as unknown as [{ id: string }, { id: string }];
    mockAgents((s) =>
      s.url.includes(a.id)
        ? Response.json({ error: { message: "bad signature", type: "authentication_error", code: "bad_signature" } }, { status: 401 })
        : Response.json({ id: "ok", object: "chat.completion", choices: [] }),
    );
    for (let i = 0; i < 3; i++) {
      const res = await chat(key, { model, messages: [{ role: "user", content: "hi" }] });
      expect(res.status).toBe(200);
      expect(res.headers.get("x-switchyard-node")).toBe(b.id);
    }
    mockAgents(() => Response.json({ error: { message: "bad signature", type: "authentication_error" } }, { status: 401 }));
    const all = await chat(key, { model, messages: [{ role: "user", content: "hi" }] });
    expect(all.status).toBe(503);
  });

  it("gives up with 503 when every node fails", async () => {
    const { model } = await modelWithNodes(2);
    mockAgents(() => {
      throw new TypeError("connection refused");
    });
    const res = await chat(key, { model, messages: [{ role: "user", content: "hi" }] });
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBeTruthy();
    expect(await waitIdle(model)).toBe(0);
  });
});

describe("prefix-aware routing through the API", () => {
  const settle = () => new Promise((r) => setTimeout(r, 150));
  const longPrompt = (topic: string) => `${topic}: ${"context sentence for the shared prefix. ".repeat(60)}`;

  it("names the prefix blocks matched, and a tenant's prompts never match another tenant's", async () => {
    const { model } = await modelWithNodes(3, { default_strategy: "prefix-cache" });
    const other = await createTenantWithKey();
    mockAgents(() => Response.json({ id: "ok", object: "chat.completion", choices: [] }));
    const messages = [{ role: "user", content: longPrompt("alpha") }];
    const first = await chat(key, { model, messages });
    await first.arrayBuffer();
    const [m1, total] = (first.headers.get("x-switchyard-prefix-blocks") ?? "").split("/").map(Number);
    expect(m1).toBe(0);
    expect(total).toBeGreaterThan(5);
    // Let the node work off the first prefill (the pool models it draining at the calibrated rate);
    // until then recomputing elsewhere is genuinely faster, and the strategy says so.
    await settle();
    const again = await chat(key, { model, messages: [...messages, { role: "assistant", content: "ok" }, { role: "user", content: "more" }] });
    expect(again.headers.get("x-switchyard-node")).toBe(first.headers.get("x-switchyard-node"));
    expect(Number((again.headers.get("x-switchyard-prefix-blocks") ?? "").split("/")[0])).toBeGreaterThanOrEqual(total as number);
    const stranger = await chat(other.key, { model, messages });
    expect(stranger.headers.get("x-switchyard-prefix-blocks")).toBe(`0/${total}`);
  });

  it("shares prefixes between tenants for a model configured to", async () => {
    const { model } = await modelWithNodes(2, { default_strategy: "prefix-cache", prefix_sharing: "shared" });
    const other = await createTenantWithKey();
    mockAgents(() => Response.json({ id: "ok", object: "chat.completion", choices: [] }));
    const messages = [{ role: "system", content: longPrompt("public system prompt") }, { role: "user", content: "hi" }];
    const first = await chat(key, { model, messages });
    await first.arrayBuffer();
    await settle();
    const second = await chat(other.key, { model, messages });
    expect(second.headers.get("x-switchyard-node")).toBe(first.headers.get("x-switchyard-node"));
    expect(Number((second.headers.get("x-switchyard-prefix-blocks") ?? "0").split("/")[0])).toBeGreaterThan(0);
  });

  it("signs the cache namespace to the agent and strips a client's cache_salt", async () => {
    const { model, nodes } = await modelWithNodes(1);
    const seen = mockAgents(() => Response.json({ id: "ok", object: "chat.completion", choices: [] }));
    await chat(key, { model, cache_salt: "someone-elses-salt", messages: [{ role: "user", content: "hi" }] });
    const upstream = seen[0] as Seen;
    expect(upstream.body.cache_salt).toBeUndefined();
    expect(upstream.headers.get("x-switchyard-cache-namespace")).toBe(`t:${tenantId}:${model}`);
    const verdict = await verifyRequest({ method: "POST", path: "/v1/chat/completions", body: upstream.raw, headers: upstream.headers, secretFor: () => nodes[0]?.secret });
    expect(verdict.ok).toBe(true);
    const forged = new Headers(upstream.headers);
    forged.set("x-switchyard-cache-namespace", "t:someone-else:m");
    expect((await verifyRequest({ method: "POST", path: "/v1/chat/completions", body: upstream.raw, headers: forged, secretFor: () => nodes[0]?.secret })).ok).toBe(false);
  });

  it("drops a client's priority (vLLM's field) and sends the edge's own, signed", async () => {
    const { model, nodes } = await modelWithNodes(1);
    const seen = mockAgents(() => Response.json({ id: "ok", object: "chat.completion", choices: [] }));
    const res = await chat(key, { model, priority: -10, messages: [{ role: "user", content: "hi" }] }, { "x-switchyard-priority": "high" });
    expect(res.status).toBe(200);
    const upstream = seen[0] as Seen;
    expect(upstream.body).not.toHaveProperty("priority");
    expect(upstream.body.messages).toEqual([{ role: "user", content: "hi" }]);
    // Nobody else waits: the edge marks it normal, whatever the client asked for.
    expect(upstream.headers.get("x-switchyard-priority")).toBe("normal");
    expect((await verifyRequest({ method: "POST", path: "/v1/chat/completions", body: upstream.raw, headers: upstream.headers, secretFor: () => nodes[0]?.secret })).ok).toBe(true);
  });

  it("keeps a session on one node with the session header", async () => {
    const { model } = await modelWithNodes(4, { default_strategy: "session-affinity" });
    mockAgents(() => Response.json({ id: "ok", object: "chat.completion", choices: [] }));
    const nodesSeen = new Set<string | null>();
    for (let i = 0; i < 5; i++) {
      const res = await chat(key, { model, messages: [{ role: "user", content: `turn ${i}` }] }, { "x-session-key": "conversation-42" });
      nodesSeen.add(res.headers.get("x-switchyard-node"));
    }
    expect(nodesSeen.size).toBe(1);
  });
});

describe("regions", () => {
  it("sends callers to the nearest region with room (location from request.cf)", async () => {
    const model = unique("geo");
    await configureModel(model);
    await admin("PUT", "/regions/eu-west", { latitude: 53.3, longitude: -6.3 });
    await admin("PUT", "/regions/us-east", { latitude: 39.0, longitude: -77.5 });
    const eu = unique("eu-node");
    const us = unique("us-node");
    await heartbeat(eu, await registerNode(eu, [model], `http://${eu}.agent.test:8801`, "eu-west"), [engine(model)]);
    await heartbeat(us, await registerNode(us, [model], `http://${us}.agent.test:8801`, "us-east"), [engine(model)]);
    mockAgents(() => Response.json({ id: "ok", object: "chat.completion", choices: [] }));
    const from = (lat: number, lon: number) =>
      call("/v1/chat/completions", {
        method: "POST",
        headers: { authorization: `Bearer ${key}` },
        body: JSON.stringify({ model, messages: [{ role: "user", content: "x" }] }),
        cf: { latitude: String(lat), longitude: String(lon) },
      } as RequestInit);
    expect((await from(48.9, 2.35)).headers.get("x-switchyard-region")).toBe("eu-west");
    expect((await from(40.7, -74.0)).headers.get("x-switchyard-region")).toBe("us-east");
    const listed = await admin<{ data: Array<{ id: string }> }>("GET", "/regions");
    expect(listed.body.data.map((r) => r.id)).toEqual(expect.arrayContaining(["eu-west", "us-east"]));
    expect((await admin("PUT", "/regions/nowhere", { latitude: 200, longitude: 0 })).status).toBe(400);
  });
});

describe("the env", () => {
  it("has the test secrets", () => {
    expect(env.NODE_SECRET_KEY).toBeTruthy();
  });
});
