/**
 * Security controls of the edge, each tried the way an attacker or a careless operator would
 * (docs/security.md names the threat each one answers): what D1 holds after keys and nodes are
 * made, every /admin route without the admin token, one tenant reaching for another's usage or
 * cache namespace, a node secret rotated under traffic, and secrets in the edge's logs.
 */
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { HeaderNames } from "../../protocol/headers";
import { verifyRequest } from "../../protocol/signing";
import app from "../../worker/index";
import { admin, call, chat, configureModel, createTenantWithKey, engine, errorOf, heartbeat, registerNode, unique } from "./helpers";

afterEach(() => {
  vi.restoreAllMocks();
});

/** Every row of every table in D1, as one string. */
async function dumpD1(): Promise<string> {
  const tables = await env.DB.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%'").all<{ name: string }>();
  let out = "";
  for (const { name } of tables.results) {
    const rows = await env.DB.prepare(`SELECT * FROM "${name}"`).all();
    out += `${name}\n${JSON.stringify(rows.results)}\n`;
  }
  return out;
}

/** A model with one node whose "agent" (a mocked fetch) answers every request it can verify. */
async function servedModel(over: Record<string, unknown> = {}) {
  const model = unique("sec");
  await configureModel(model, over);
  const nodeId = unique("node");
  const secret = await registerNode(nodeId, [model]);
  expect((await heartbeat(nodeId, secret, [engine(model)])).status).toBe(200);
  return { model, nodeId, secret };
}

interface AgentSeen {
  headers: Headers;
  body: Record<string, unknown>;
}

/** Plays the node agent: verifies the edge's signature with the secrets it holds now, like the real one. */
function verifyingAgent(nodeId: string, secrets: () => string[]): AgentSeen[] {
  const seen: AgentSeen[] = [];
  vi.spyOn(globalThis, "fetch").mockImplementation(async (input: RequestInfo | URL, init?: RequestInit) => {
    const req = new Request(input, init);
    const raw = new Uint8Array(await req.arrayBuffer());
    const url = new URL(req.url);
    const byVersion = new Map(secrets().map((s) => [Number(/^sy_ns_(\d+)_/.exec(s)?.[1]), s]));
    const verdict = await verifyRequest({ method: "POST", path: url.pathname, body: raw, headers: req.headers, secretFor: (node, v) => (node === nodeId ? byVersion.get(v) : null) });
    if (!verdict.ok) return Response.json({ error: { message: verdict.reason, type: "authentication_error", param: null, code: verdict.reason } }, { status: 401 });
    seen.push({ headers: req.headers, body: JSON.parse(new TextDecoder().decode(raw)) as Record<string, unknown> });
    return Response.json({ id: "c", object: "chat.completion", choices: [{ index: 0, message: { role: "assistant", content: "ok" }, finish_reason: "stop" }], usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } });
  });
  return seen;
}

describe("secrets at rest", () => {
  it("D1 holds no API key, node secret, admin token or master key in plaintext, only hashes and references", async () => {
    const { key, keyId } = await createTenantWithKey();
    const { secret: nodeSecret, nodeId } = await servedModel();
    const rotated = await admin<{ secret: string }>("POST", `/nodes/${nodeId}/rotate-secret`);
    expect(rotated.status).toBe(200);
    const dump = await dumpD1();
    // The dump is real: the key's id and the node are in it.
    expect(dump).toContain(keyId);
    expect(dump).toContain(nodeId);
    const keySecretPart = key.slice(key.indexOf(".") + 1);
    for (const [what, secret] of [
      ["API key", key],
      ["API key's secret part", keySecretPart],
      ["node secret", nodeSecret],
      ["node secret's MAC", nodeSecret.replace(/^sy_ns_\d+_/, "")],
      ["rotated node secret", rotated.body.secret],
      ["admin token", env.ADMIN_TOKEN],
      ["node secret master key", env.NODE_SECRET_KEY],
    ] as const) {
      expect(dump.includes(secret), what).toBe(false);
    }
    // What is there instead: the key's SHA-256 and derivation references.
    const digest = [...new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(key)))].map((b) => b.toString(16).padStart(2, "0")).join("");
    expect(dump).toContain(digest);
    expect(dump).toMatch(/derived:1:[A-Za-z0-9_-]{8,}/);
    expect(dump).toMatch(/derived:2:[A-Za-z0-9_-]{8,}/);
  });
});

describe("the admin API", () => {
  /** Every /admin route the Hono app has, read from the app itself so a new route cannot be missed. */
  function adminRoutes(): Array<{ method: string; path: string }> {
    const seen = new Set<string>();
    const out: Array<{ method: string; path: string }> = [];
    for (const r of app.routes) {
      if (!r.path.startsWith("/admin") || r.method === "ALL") continue;
      // The dashboard page and its script hold no data; they ask for the token themselves.
      if (r.path.startsWith("/admin/dashboard")) continue;
      const path = r.path.replace(/:[A-Za-z_]+(\{[^}]*\})?/g, "probe");
      const id = `${r.method} ${path}`;
      if (!seen.has(id)) {
        seen.add(id);
        out.push({ method: r.method, path });
      }
    }
    return out;
  }

  it("refuses every route without the admin token, with a wrong one, and with a tenant key", async () => {
    const routes = adminRoutes();
    // The walk found the app's routes, not a few: every resource family is there.
    expect(routes.length).toBeGreaterThanOrEqual(30);
    for (const family of ["/admin/tenants", "/admin/keys/", "/admin/models", "/admin/access/", "/admin/nodes", "/admin/regions", "/admin/stats"]) {
      expect(routes.some((r) => r.path.startsWith(family)), family).toBe(true);
    }
    const { key } = await createTenantWithKey();
    const body = JSON.stringify({ name: "x" });
    for (const { method, path } of routes) {
      const withBody = method !== "GET" && method !== "HEAD" && method !== "DELETE";
      for (const [what, authorization] of [
        ["no token", undefined],
        ["wrong token", `Bearer ${env.ADMIN_TOKEN}x`],
        ["token prefix", `Bearer ${env.ADMIN_TOKEN.slice(0, -1)}`],
        ["tenant key", `Bearer ${key}`],
        ["basic auth", `Basic ${btoa(`admin:${env.ADMIN_TOKEN}`)}`],
      ] as const) {
        const res = await call(path, { method, headers: { "content-type": "application/json", ...(authorization ? { authorization } : {}) }, ...(withBody ? { body } : {}) });
        expect(res.status, `${method} ${path} with ${what}`).toBe(401);
        expect((await errorOf(res)).code).toBe("invalid_admin_token");
      }
    }
  });

  it("the dashboard assets it skips are static and carry no data", async () => {
    for (const path of ["/admin/dashboard", "/admin/dashboard/app.js", "/admin/dashboard/app.css"]) {
      const res = await call(path);
      expect(res.status, path).toBe(200);
      const text = await res.text();
      expect(text).not.toContain(env.ADMIN_TOKEN);
      expect(text).not.toMatch(/sk-sy-[A-Za-z0-9_]+\./);
    }
  });
});

describe("one tenant against another", () => {
  it("cannot read another tenant's usage by naming it anywhere in the request", async () => {
    const { model, nodeId, secret } = await servedModel();
    verifyingAgent(nodeId, () => [secret]);
    const a = await createTenantWithKey();
    const b = await createTenantWithKey();
    for (let i = 0; i < 3; i++) expect((await chat(a.key, { model, messages: [{ role: "user", content: "a" }] })).status).toBe(200);
    const attempts = [
      `/v1/usage?tenant_id=${a.tenantId}`,
      `/v1/usage?project_ids=${a.tenantId}`,
      `/v1/usage?user_ids=${a.tenantId}&api_key_ids=${a.keyId}`,
      `/v1/usage?tenant_id[]=${a.tenantId}`,
      `/v1/usage/../admin/tenants/${a.tenantId}/usage`,
    ];
    for (const path of attempts) {
      const res = await call(path, { headers: { authorization: `Bearer ${b.key}`, [HeaderNames.tenant]: a.tenantId } });
      if (res.status === 200) {
        const body = (await res.json()) as { tenant_id: string; totals: { num_model_requests: number } };
        expect(body.tenant_id, path).toBe(b.tenantId);
        expect(body.totals.num_model_requests, path).toBe(0);
      } else {
        expect([400, 401, 404], path).toContain(res.status);
      }
    }
  });

  it("cannot reach another tenant's cache namespace: spoofed headers and cache_salt are replaced by the edge's own, signed", async () => {
    const { model, nodeId, secret } = await servedModel();
    const seen = verifyingAgent(nodeId, () => [secret]);
    const a = await createTenantWithKey();
    const b = await createTenantWithKey();
    const res = await chat(
      b.key,
      { model, messages: [{ role: "user", content: "let me in" }], cache_salt: `t:${a.tenantId}:${model}` },
      { [HeaderNames.tenant]: a.tenantId, [HeaderNames.cacheNamespace]: `t:${a.tenantId}:${model}`, [HeaderNames.sigNode]: nodeId },
    );
    expect(res.status).toBe(200);
    const got = seen.at(-1);
    expect(got?.headers.get(HeaderNames.tenant)).toBe(b.tenantId);
    expect(got?.headers.get(HeaderNames.cacheNamespace)).toBe(`t:${b.tenantId}:${model}`);
    expect(got?.body).not.toHaveProperty("cache_salt");
    // The agent verified the signature over these headers, so nothing between could change them either.
    // And A's cached prefixes are invisible to B at routing: the same long prompt matches nothing.
    const prompt = "shared system prompt ".repeat(200);
    expect((await chat(a.key, { model, messages: [{ role: "user", content: prompt }] })).status).toBe(200);
    const again = await chat(a.key, { model, messages: [{ role: "user", content: prompt }] }, { "routing-strategy": "prefix-cache" });
    expect(Number(again.headers.get("x-switchyard-prefix-blocks")?.split("/")[0])).toBeGreaterThan(0);
    const other = await chat(b.key, { model, messages: [{ role: "user", content: prompt }] }, { "routing-strategy": "prefix-cache" });
    expect(other.headers.get("x-switchyard-prefix-blocks")?.split("/")[0]).toBe("0");
  });
});

describe("node secret rotation", () => {
  it("keeps every request flowing while a node's secret is rotated, promoted and the old one retired", async () => {
    const { model, nodeId, secret: first } = await servedModel();
    const { key } = await createTenantWithKey();
    // The agent's secrets, as its config would hold them at each step.
    let agentSecrets = [first];
    const seen = verifyingAgent(nodeId, () => agentSecrets);
    const statuses: number[] = [];
    const traffic = async (n: number) => {
      const batch = await Promise.all(Array.from({ length: n }, () => chat(key, { model, max_tokens: 2, messages: [{ role: "user", content: "rotating" }] })));
      for (const r of batch) {
        statuses.push(r.status);
        await r.text();
      }
    };
    await traffic(4);
    // 1. The operator rotates: the new secret is pending, the edge still signs with the old one.
    const rotated = await admin<{ secret: string; pending_key_version: number }>("POST", `/nodes/${nodeId}/rotate-secret`);
    expect(rotated.body.pending_key_version).toBe(2);
    await traffic(4);
    // 2. The agent is given the new secret and keeps the old as previous (accepts both).
    agentSecrets = [rotated.body.secret, first];
    await traffic(4);
    // 3. Its next heartbeat, signed with the new secret, promotes it at the edge.
    expect((await heartbeat(nodeId, rotated.body.secret, [engine(model)])).status).toBe(200);
    await traffic(4);
    // 4. The old secret is dropped from the agent.
    agentSecrets = [rotated.body.secret];
    await traffic(4);
    expect(statuses).toHaveLength(20);
    expect(statuses.every((s) => s === 200), JSON.stringify(statuses)).toBe(true);
    // The edge really switched: the last requests were signed with version 2.
    expect(seen.at(-1)?.headers.get(HeaderNames.sigKeyVersion)).toBe("2");
    expect(seen[0]?.headers.get(HeaderNames.sigKeyVersion)).toBe("1");
  });
});

describe("logs", () => {
  it("the edge never logs an API key, node secret, admin token or master key, through a run that uses them all", async () => {
    const lines: string[] = [];
    for (const level of ["log", "info", "warn", "error", "debug"] as const) {
      vi.spyOn(console, level).mockImplementation((...args: unknown[]) => {
        lines.push(args.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(" "));
      });
    }
    const { model, nodeId, secret } = await servedModel();
    const { key, keyId } = await createTenantWithKey();
    verifyingAgent(nodeId, () => [secret]);
    // Served requests, a refused key, a wrong admin token, a forged heartbeat, a rotation, a revoked key.
    expect((await chat(key, { model, stream: false, messages: [{ role: "user", content: "hello" }] })).status).toBe(200);
    expect((await chat(`${key}x`, { model, messages: [{ role: "user", content: "hello" }] })).status).toBe(401);
    expect((await admin("GET", "/tenants", undefined, `${env.ADMIN_TOKEN}-wrong`)).status).toBe(401);
    expect((await heartbeat(nodeId, `${secret.slice(0, -4)}AAAA`, [engine(model)])).status).toBe(401);
    const rotated = await admin<{ secret: string }>("POST", `/nodes/${nodeId}/rotate-secret`);
    expect((await heartbeat(nodeId, rotated.body.secret, [engine(model)])).status).toBe(200);
    // The agent now refuses the edge (it still holds only the old secret): the edge logs the refusal.
    expect([200, 503]).toContain((await chat(key, { model, messages: [{ role: "user", content: "after" }] })).status);
    expect((await admin("POST", `/keys/${keyId}/revoke`)).status).toBe(200);
    expect((await chat(key, { model, messages: [{ role: "user", content: "revoked" }] })).status).toBe(401);
    const text = lines.join("\n");
    expect(text).toContain("request_done"); // the capture works: the edge's lines are in it
    for (const [what, s] of [
      ["API key", key],
      ["API key's secret part", key.slice(key.indexOf(".") + 1)],
      ["node secret", secret],
      ["node secret's MAC", secret.replace(/^sy_ns_\d+_/, "")],
      ["rotated node secret", rotated.body.secret],
      ["admin token", env.ADMIN_TOKEN],
      ["master key", env.NODE_SECRET_KEY],
    ] as const) {
      expect(text.includes(s), what).toBe(false);
    }
  });
});
