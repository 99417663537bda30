/**
 * Bad input at the edge's three HTTP boundaries — the public API, the admin API and node heartbeats —
 * inside workerd. Every case gets OpenAI's error body with the right status (naming the field where
 * there is one), and a normal request succeeds right after: bad input never takes the edge down.
 */
import { env } from "cloudflare:workers";
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { HEARTBEAT_PATH } from "../../protocol/heartbeat";
import { MAX_TOKENS_LIMIT } from "../../protocol/openai-request";
import { signRequest } from "../../protocol/signing";
import { admin, call, chat, configureModel, createTenantWithKey, engine, errorOf, heartbeat, registerNode, secretVersion, unique } from "./helpers";

const enc = new TextEncoder();

let key: string;
let model: string;
let nodeId: string;
let nodeSecret: string;
/** Bodies the (mocked) agent received, parsed. */
let forwarded: Array<Record<string, unknown>>;

beforeAll(async () => {
  ({ key } = await createTenantWithKey());
  model = unique("bad-input");
  await configureModel(model);
  nodeId = unique("node");
  nodeSecret = await registerNode(nodeId, [model]);
  expect((await heartbeat(nodeId, nodeSecret, [engine(model)])).status).toBe(200);
});

beforeEach(async () => {
  // A node silent for the stale bound (31 s with the tests' interval) is lost: keep it alive however long the tests run.
  expect((await heartbeat(nodeId, nodeSecret, [engine(model)])).status).toBe(200);
  forwarded = [];
  vi.spyOn(globalThis, "fetch").mockImplementation(async (input: RequestInfo | URL, init?: RequestInit) => {
    const req = new Request(input, init);
    forwarded.push(JSON.parse(await req.text()) as Record<string, unknown>);
    return Response.json({ id: "c", object: "chat.completion", model, choices: [{ index: 0, message: { role: "assistant", content: "ok" }, finish_reason: "stop" }], usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } });
  });
});

afterEach(async () => {
  // The edge is still up and serving after whatever the test sent.
  const res = await chat(key, { model, max_tokens: 4, messages: [{ role: "user", content: "still there?" }] });
  expect(res.status).toBe(200);
  expect(((await res.json()) as { object: string }).object).toBe("chat.completion");
  vi.restoreAllMocks();
});

type ErrorBody = { message: string; type: string; param: string | null; code: string | null };

/** POSTs raw bytes to the public API with the tenant's key. */
function post(path: string, body: BodyInit | null, headers: Record<string, string> = { "content-type": "application/json" }): Promise<Response> {
  return call(path, { method: "POST", headers: { authorization: `Bearer ${key}`, ...headers }, body });
}

async function expectError(res: Response, status: number, want: Partial<ErrorBody>, what = ""): Promise<ErrorBody> {
  expect(res.status, what).toBe(status);
  expect(res.headers.get("content-type"), what).toContain("application/json");
  expect(res.headers.get("x-request-id"), what).toBeTruthy();
  const err = await errorOf(res);
  expect(typeof err.message, what).toBe("string");
  expect(err.message.length, what).toBeGreaterThan(0);
  expect(err, what).toMatchObject(want);
  return err;
}

const user = (content: unknown = "hi") => [{ role: "user", content }];

describe("public API: bad bodies", () => {
  it("malformed JSON, empty bodies and non-objects: 400", async () => {
    const cases: Array<[string, string, string]> = [
      ["truncated", `{"model":"${model}","messages":[`, "invalid_json"],
      ["trailing garbage", `{"model":"${model}"} x`, "invalid_json"],
      ["single quotes", `{'model':'${model}'}`, "invalid_json"],
      ["comment", `{"model":"${model}" /* hi */}`, "invalid_json"],
      ["NaN literal", `{"model":"${model}","temperature":NaN,"messages":[]}`, "invalid_json"],
      ["whitespace only", "  \n ", "invalid_json"],
      ["empty", "", "invalid_body"],
      ["null", "null", "invalid_body"],
      ["array", `[{"model":"${model}"}]`, "invalid_body"],
      ["string", `"${model}"`, "invalid_body"],
      ["number", "42", "invalid_body"],
    ];
    for (const [what, body, code] of cases) await expectError(await post("/v1/chat/completions", body), 400, { type: "invalid_request_error", param: null, code }, what);
  });

  it("wrong types: 400 naming the field", async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ model: 7, messages: user() }, "model"],
      [{ model: "", messages: user() }, "model"],
      [{ model: "m".repeat(300), messages: user() }, "model"],
      [{ model, messages: "hi" }, "messages"],
      [{ model, messages: [null] }, "messages[0]"],
      [{ model, messages: [{ content: "no role" }] }, "messages[0].role"],
      [{ model, messages: user(42) }, "messages[0].content"],
      [{ model, messages: [{ role: "user", content: "x", name: 3 }] }, "messages[0].name"],
      [{ model, messages: user(), stream: 1 }, "stream"],
      [{ model, messages: user(), stream_options: { include_usage: "yes" } }, "stream_options.include_usage"],
      [{ model, messages: user(), temperature: 3 }, "temperature"],
      [{ model, messages: user(), top_p: 0 }, "top_p"],
      [{ model, messages: user(), n: 2 }, "n"],
      [{ model, messages: user(), seed: 1.5 }, "seed"],
      [{ model, messages: user(), stop: Array.from({ length: 17 }, () => "x") }, "stop"],
      [{ model, messages: user(), user: { id: 1 } }, "user"],
    ];
    for (const [body, param] of cases) {
      await expectError(await post("/v1/chat/completions", JSON.stringify(body)), 400, { type: "invalid_request_error", param }, JSON.stringify(body).slice(0, 80));
    }
    // A text part without a string text: named down to the part.
    const part = await expectError(await post("/v1/chat/completions", JSON.stringify({ model, messages: user([{ type: "text", text: 5 }]) })), 400, { type: "invalid_request_error" }, "text part");
    expect(part.param).toMatch(/^messages\[0\]\.content\[0\]/);
    const completions: Array<[Record<string, unknown>, string]> = [
      [{ model }, "prompt"],
      [{ model, prompt: 5 }, "prompt"],
      [{ model, prompt: ["a", "b"] }, "prompt"],
      [{ model, prompt: [1, -2] }, "prompt"],
      [{ model, prompt: "x", echo: "no" }, "echo"],
    ];
    for (const [body, param] of completions) {
      const err = await expectError(await post("/v1/completions", JSON.stringify(body)), 400, { type: "invalid_request_error" }, JSON.stringify(body));
      expect(err.param?.startsWith(param), JSON.stringify(body)).toBe(true);
    }
  });

  it("absurd max_tokens: 400 naming the field and saying the limit", async () => {
    const raw: Array<[string, string]> = [
      ["max_tokens", "-1"],
      ["max_tokens", "0"],
      ["max_tokens", "1.5"],
      ["max_tokens", `${MAX_TOKENS_LIMIT + 1}`],
      ["max_tokens", "1e308"],
      ["max_tokens", "1e400"],
      ["max_tokens", '"100"'],
      ["max_tokens", "true"],
      ["max_completion_tokens", "1e12"],
      ["max_completion_tokens", "-5"],
    ];
    for (const [field, value] of raw) {
      const body = `{"model":"${model}","messages":[{"role":"user","content":"x"}],"${field}":${value}}`;
      const err = await expectError(await post("/v1/chat/completions", body), 400, { param: field, code: "invalid_value" }, `${field}=${value}`);
      if (Number.isFinite(Number(value)) && Number(value) > MAX_TOKENS_LIMIT) expect(err.message, value).toContain(String(MAX_TOKENS_LIMIT));
    }
    expect(forwarded).toHaveLength(0);
  });

  it("invalid UTF-8 anywhere in the body: 400 saying so", async () => {
    const prefix = enc.encode(`{"model":"${model}","messages":[{"role":"user","content":"`);
    const suffix = enc.encode('"}]}');
    const bad: Array<[string, number[]]> = [
      ["lone continuation byte", [0x80]],
      ["overlong '/'", [0xc0, 0xaf]],
      ["UTF-16 surrogate encoded in UTF-8", [0xed, 0xa0, 0x80]],
      ["truncated 3-byte sequence", [0xe2, 0x82]],
      ["beyond U+10FFFF", [0xf4, 0x90, 0x80, 0x80]],
      ["0xFF", [0xff]],
    ];
    for (const [what, bytes] of bad) {
      const body = new Uint8Array([...prefix, ...bytes, ...suffix]);
      const err = await expectError(await post("/v1/chat/completions", body), 400, { code: "invalid_body" }, what);
      expect(err.message).toContain("UTF-8");
    }
    // Valid multi-byte text and an escaped lone surrogate (valid JSON) pass.
    expect((await post("/v1/chat/completions", JSON.stringify({ model, messages: user("héllo 世界 🚀") }))).status).toBe(200);
    expect((await post("/v1/chat/completions", `{"model":"${model}","messages":[{"role":"user","content":"\\ud800"}]}`)).status).toBe(200);
  });

  it("huge bodies: 413 whether the length is declared or streamed; over-long message lists: 400", async () => {
    const limit = Number((env as { MAX_BODY_BYTES?: string }).MAX_BODY_BYTES ?? 1_048_576);
    const huge = JSON.stringify({ model, messages: user("x".repeat(limit)) });
    await expectError(await post("/v1/chat/completions", huge), 413, { code: "request_too_large" }, "declared");
    // No Content-Length: the limit holds while reading.
    const chunk = enc.encode("x".repeat(64 * 1024));
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(c) {
        if (sent > limit * 4) return c.close();
        sent += chunk.byteLength;
        c.enqueue(chunk);
      },
    });
    await expectError(await post("/v1/chat/completions", stream), 413, { code: "request_too_large" }, "streamed");
    expect(sent).toBeLessThan(limit * 2);
    // Many small messages under the byte limit are still refused past the message cap.
    const many = JSON.stringify({ model, messages: Array.from({ length: 4097 }, () => ({ role: "user", content: "" })) });
    expect(many.length).toBeLessThan(limit);
    await expectError(await post("/v1/chat/completions", many), 400, { param: "messages" });
    await expectError(await post("/v1/chat/completions", JSON.stringify({ model, messages: [] })), 400, { param: "messages" }, "empty messages");
    // One message just under the byte limit is served.
    const big = JSON.stringify({ model, messages: user("y".repeat(limit - 200)) });
    expect(big.length).toBeLessThanOrEqual(limit);
    expect((await post("/v1/chat/completions", big)).status).toBe(200);
  });

  it("unknown fields are accepted and passed to the engine untouched (vLLM extensions, newer OpenAI fields)", async () => {
    const res = await post("/v1/chat/completions", JSON.stringify({ model, messages: user(), logit_bias: { "50256": -100 }, repetition_penalty: 1.1, tools_beta: [{ x: [1, 2] }] }));
    expect(res.status).toBe(200);
    expect(forwarded[0]).toMatchObject({ logit_bias: { "50256": -100 }, repetition_penalty: 1.1, tools_beta: [{ x: [1, 2] }] });
  });

  it("a content type that is not JSON: 415 naming content-type; JSON and text/plain are accepted", async () => {
    const body = JSON.stringify({ model, messages: user() });
    for (const type of ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml", "image/png"]) {
      await expectError(await post("/v1/chat/completions", body, { "content-type": type }), 415, { param: "content-type", code: "unsupported_media_type" }, type);
    }
    for (const type of ["application/json", "application/json; charset=utf-8", "Application/JSON", "text/plain;charset=UTF-8", "application/vnd.api+json"]) {
      expect((await post("/v1/chat/completions", body, { "content-type": type })).status, type).toBe(200);
    }
    expect((await post("/v1/chat/completions", enc.encode(body), {})).status, "no content type").toBe(200);
  });

  it("hostile headers: an absurd routing strategy is a 400, an absurd request id is replaced", async () => {
    const body = JSON.stringify({ model, messages: user() });
    await expectError(await post("/v1/chat/completions", body, { "content-type": "application/json", "routing-strategy": "x".repeat(10_000) }), 400, { param: "routing-strategy" });
    await expectError(await post("/v1/chat/completions", body, { "content-type": "application/json", "routing-strategy": "random:-1" }), 400, { param: "routing-strategy" });
    const odd = await post("/v1/chat/completions", body, { "content-type": "application/json", "x-request-id": "x".repeat(500) });
    expect(odd.status).toBe(200);
    expect(odd.headers.get("x-request-id")?.length).toBeLessThanOrEqual(128);
    for (const auth of ["Bearer", "Basic dXNlcjpwYXNz", `Bearer ${"k".repeat(10_000)}`, "Bearer sk-sy-\u00e9"]) {
      const res = await call("/v1/chat/completions", { method: "POST", headers: { authorization: auth, "content-type": "application/json" }, body });
      expect(res.status, auth.slice(0, 20)).toBe(401);
      expect((await errorOf(res)).type).toBe("authentication_error");
    }
  });
});

describe("admin API: bad bodies and bad path parameters", () => {
  function adminRaw(method: string, path: string, body: BodyInit | null, contentType = "application/json"): Promise<Response> {
    return call(`/admin${path}`, { method, headers: { authorization: `Bearer ${env.ADMIN_TOKEN}`, "content-type": contentType }, body });
  }

  it("every body-taking route refuses malformed JSON, non-objects, invalid UTF-8, huge bodies, wrong types and form encodings", async () => {
    const tenant = unique("adm");
    expect((await admin("POST", "/tenants", { id: tenant, name: "A" })).status).toBe(201);
    const routes: Array<[string, string, Record<string, unknown>, string]> = [
      ["POST", "/tenants", { id: unique("t"), name: 5 }, "name"],
      ["PATCH", `/tenants/${tenant}`, { weight: "heavy" }, "weight"],
      ["POST", `/tenants/${tenant}/keys`, { expires_in_days: -1 }, "expires_in_days"],
      ["PUT", `/models/${unique("m")}`, { max_queue_wait_ms: "soon" }, "max_queue_wait_ms"],
      ["POST", "/nodes", { id: unique("n"), region: "local", models: "m" }, "models"],
      ["PATCH", `/nodes/${nodeId}`, { url: "ftp://x" }, "url"],
      ["POST", `/nodes/${nodeId}/rotate-secret`, { immediate: "yes" }, "immediate"],
      ["PUT", `/regions/${unique("r")}`, { latitude: 91, longitude: 0 }, "latitude"],
    ];
    for (const [method, path, wrong, param] of routes) {
      const what = `${method} ${path}`;
      await expectError(await adminRaw(method, path, "{"), 400, { code: "invalid_json" }, `${what} malformed`);
      await expectError(await adminRaw(method, path, "[]"), 400, { param: null }, `${what} array`);
      await expectError(await adminRaw(method, path, new Uint8Array([0x7b, 0xc3, 0x28, 0x7d])), 400, { code: "invalid_body" }, `${what} utf-8`);
      await expectError(await adminRaw(method, path, JSON.stringify({ pad: "x".repeat(70_000) })), 413, { code: "request_too_large" }, `${what} huge`);
      await expectError(await adminRaw(method, path, JSON.stringify(wrong)), 400, { param, code: "invalid_value" }, `${what} wrong type`);
      await expectError(await adminRaw(method, path, "name=x", "application/x-www-form-urlencoded"), 415, { param: "content-type" }, `${what} form`);
    }
  });

  it("refuses unknown fields (an operator's typo must not pass silently), naming them", async () => {
    const res = await admin<{ error: ErrorBody }>("POST", "/tenants", { name: "T", wieght: 2 });
    expect(res.status).toBe(400);
    expect(res.body.error.message).toContain("wieght");
  });

  it("bad path parameters: clean 400 or 404, never a 500", async () => {
    const paths: Array<[string, string]> = [
      ["GET", "/tenants/%ZZ"],
      ["GET", `/tenants/${"a".repeat(5_000)}`],
      ["GET", "/tenants/..%2F..%2Fadmin"],
      ["POST", "/tenants/%00/disable"],
      ["GET", "/keys/%E0%A4%A"],
      ["POST", "/keys/nope/revoke"],
      ["GET", "/nodes/%2e%2e"],
      ["DELETE", "/nodes/%ZZ"],
      ["PUT", "/models/%ZZ"],
      ["PUT", `/models/${"m".repeat(300)}`],
      ["DELETE", "/regions/%ZZ"],
      ["GET", "/stats/pools/%ZZ"],
      ["GET", "/stats/tenants/%ZZ"],
      ["GET", "/tenants/nope/usage?from=yesterday"],
    ];
    for (const [method, path] of paths) {
      const res = await adminRaw(method, path, method === "GET" || method === "DELETE" ? null : "{}");
      expect([400, 404], `${method} ${path.slice(0, 40)}`).toContain(res.status);
      expect((await errorOf(res)).type).toBe("invalid_request_error");
    }
  });
});

describe("heartbeats: bad bodies", () => {
  async function signedBeat(body: Uint8Array, over: { nodeId?: string } = {}): Promise<Response> {
    const headers = await signRequest({ nodeId: over.nodeId ?? nodeId, keyVersion: secretVersion(nodeSecret), secret: nodeSecret, method: "POST", path: HEARTBEAT_PATH, body });
    return call(HEARTBEAT_PATH, { method: "POST", headers: { "content-type": "application/json", ...headers }, body });
  }
  const beat = (over: Record<string, unknown> = {}) => enc.encode(JSON.stringify({ nodeId, agentVersion: "t", sentAt: Date.now(), engines: [engine(model)], ...over }));

  it("signed but malformed, wrong-typed, mismatched or oversized beats are refused, and a good beat is accepted after", async () => {
    await expectError(await signedBeat(enc.encode('{"nodeId":')), 400, { code: "invalid_json" }, "malformed");
    await expectError(await signedBeat(new Uint8Array([0x7b, 0xff, 0x7d])), 400, { code: "invalid_body" }, "utf-8");
    await expectError(await signedBeat(beat({ sentAt: "now" })), 400, { param: "sentAt", code: "invalid_heartbeat" }, "sentAt");
    await expectError(await signedBeat(beat({ engines: [engine(model, { running: -1 })] })), 400, { param: "engines[0].running" }, "running");
    await expectError(await signedBeat(beat({ engines: Array.from({ length: 65 }, () => engine(model)) })), 400, { param: "engines" }, "too many engines");
    await expectError(await signedBeat(beat({ nodeId: "someone-else" })), 400, { param: "nodeId" }, "nodeId mismatch");
    await expectError(await signedBeat(beat({ agentVersion: "x".repeat(70_000) })), 413, { code: "request_too_large" }, "oversized");
    expect((await heartbeat(nodeId, nodeSecret, [engine(model)])).status).toBe(200);
  });

  it("unsigned and badly signed beats are 401 before their body is even parsed", async () => {
    const unsigned = await call(HEARTBEAT_PATH, { method: "POST", headers: { "content-type": "application/json" }, body: "{not json" });
    await expectError(unsigned, 401, { code: "missing_signature" });
    const headers = await signRequest({ nodeId, keyVersion: secretVersion(nodeSecret), secret: nodeSecret, method: "POST", path: HEARTBEAT_PATH, body: beat() });
    const tampered = await call(HEARTBEAT_PATH, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: beat({ leaving: true }) });
    await expectError(tampered, 401, { code: "bad_signature" });
    const wrongNode = await call(HEARTBEAT_PATH, { method: "POST", headers: { "content-type": "application/json", ...headers, "x-switchyard-node": "other" }, body: beat() });
    expect(wrongNode.status).toBe(401);
  });
});
