/**
 * The edge's HTTP surface fuzzed with fast-check inside workerd: arbitrary JSON bodies at the
 * generation and admin routes, arbitrary query strings at the read routes. Whatever comes in, the
 * answer is never a 5xx, every error is OpenAI's shape, and the edge keeps serving.
 */
import { env } from "cloudflare:workers";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { call, configureModel, createTenantWithKey, engine, heartbeat, registerNode, unique } from "./helpers";

let key: string;
let tenantId: string;
let model: string;
let nodeId: string;
let nodeSecret: string;

beforeAll(async () => {
  ({ key, tenantId } = await createTenantWithKey());
  model = unique("fuzz");
  await configureModel(model);
  nodeId = unique("node");
  nodeSecret = await registerNode(nodeId, [model]);
  vi.spyOn(globalThis, "fetch").mockImplementation(async (input: RequestInfo | URL, init?: RequestInit) => {
    await new Request(input, init).arrayBuffer();
    return Response.json({ id: "c", object: "chat.completion", choices: [], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } });
  });
});

afterAll(() => {
  vi.restoreAllMocks();
});

async function expectHandled(res: Response, what: string): Promise<void> {
  expect(res.status, what).toBeLessThan(500);
  const text = await res.text();
  if (res.status >= 400) {
    const body = JSON.parse(text) as { error?: { message?: unknown; type?: unknown } };
    expect(typeof body.error?.message, what).toBe("string");
    expect(typeof body.error?.type, what).toBe("string");
  }
}

/** JSON values biased toward the shapes the validators look at. */
const field = fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.constantFrom(null, -1, 0, 1.5, 1e308, "", "x".repeat(300), [], {}));
const chatish = fc.record(
  {
    model: fc.oneof(fc.constant("__model__"), field),
    messages: fc.oneof(fc.array(fc.record({ role: fc.oneof(fc.constantFrom("user", "system", "assistant", "tool"), field), content: fc.oneof(fc.string(), field) }, { requiredKeys: [] }), { maxLength: 4 }), field),
    stream: field,
    max_tokens: field,
    temperature: field,
    stop: field,
    extra: field,
  },
  { requiredKeys: [] },
);

describe("fuzzing the edge", () => {
  it("arbitrary bodies at the generation routes: never a 5xx", async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(chatish, fc.jsonValue({ maxDepth: 4 })), fc.constantFrom("/v1/chat/completions", "/v1/completions"), async (body, path) => {
        // Keep the node alive (it is lost once silent for the stale bound, however long the fuzzing takes).
        await heartbeat(nodeId, nodeSecret, [engine(model)]);
        const text = JSON.stringify(body).replaceAll('"__model__"', JSON.stringify(model));
        const res = await call(path, { method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/json" }, body: text });
        await expectHandled(res, `${path} ${text.slice(0, 200)}`);
      }),
      { numRuns: 80 },
    );
  }, 90_000);

  it("arbitrary bodies at the admin write routes: never a 5xx", async () => {
    const routes = [
      ["POST", "/admin/tenants"],
      ["PATCH", `/admin/tenants/${tenantId}`],
      ["POST", `/admin/tenants/${tenantId}/keys`],
      ["PUT", `/admin/models/${unique("fz")}`],
      ["POST", "/admin/nodes"],
      ["PATCH", `/admin/nodes/${nodeId}`],
      ["PUT", `/admin/regions/${unique("rg")}`],
    ] as const;
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...routes), fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.dictionary(fc.constantFrom("name", "id", "weight", "rpm", "tpm", "token_budget", "region", "url", "models", "pool", "tenants", "default_strategy", "latitude", "longitude", "expires_at"), field)), async ([method, path], body) => {
        const res = await call(path, { method, headers: { authorization: `Bearer ${env.ADMIN_TOKEN}`, "content-type": "application/json" }, body: JSON.stringify(body) });
        await expectHandled(res, `${method} ${path} ${JSON.stringify(body).slice(0, 200)}`);
      }),
      { numRuns: 80 },
    );
  }, 90_000);

  it("arbitrary query strings at the read routes: never a 5xx", async () => {
    const query = fc.array(fc.tuple(fc.constantFrom("start_time", "end_time", "bucket_width", "model", "limit", "from", "to", "window", "x"), fc.oneof(fc.string(), fc.integer().map(String), fc.constantFrom("1e400", "-0", "NaN", "%", "%ZZ", "1h", "1d"))), { maxLength: 4 });
    await fc.assert(
      fc.asyncProperty(fc.constantFrom("/v1/usage", "/v1/models", `/admin/tenants/${tenantId}/usage`, "/admin/stats", `/admin/stats/tenants/${tenantId}`, `/admin/stats/pools/${model}`), query, async (path, pairs) => {
        const qs = pairs.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join("&");
        const authorization = path.startsWith("/admin") ? `Bearer ${env.ADMIN_TOKEN}` : `Bearer ${key}`;
        const res = await call(`${path}?${qs}`, { headers: { authorization } });
        await expectHandled(res, `${path}?${qs}`);
      }),
      { numRuns: 40 },
    );
  }, 90_000);
});
