import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { admin, call, createTenantWithKey, errorOf, heartbeat, engine, registerNode, unique, configureModel, poolSnapshot } from "./helpers";

describe("admin API authentication", () => {
  it("refuses requests without the admin token", async () => {
    const res = await call("/admin/tenants");
    expect(res.status).toBe(401);
    expect((await errorOf(res)).code).toBe("invalid_admin_token");
  });

  it("refuses a wrong admin token", async () => {
    const r = await admin("GET", "/tenants", undefined, "not-the-admin-token-at-all");
    expect(r.status).toBe(401);
  });

  it("refuses a tenant API key", async () => {
    const { key } = await createTenantWithKey();
    const res = await call("/admin/tenants", { headers: { authorization: `Bearer ${key}` } });
    expect(res.status).toBe(401);
  });
});

describe("tenants and keys", () => {
  it("creates, lists and disables tenants", async () => {
    const id = unique("acme");
    const created = await admin("POST", "/tenants", { id, name: `Acme ${id}` });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ id, disabled: false });
    const dup = await admin("POST", "/tenants", { id, name: "other name" });
    expect(dup.status).toBe(409);
    const listed = await admin<{ data: Array<{ id: string }> }>("GET", "/tenants");
    expect(listed.body.data.map((t) => t.id)).toContain(id);
    const disabled = await admin("POST", `/tenants/${id}/disable`);
    expect(disabled.body).toMatchObject({ disabled: true });
  });

  it("names the bad field on invalid input", async () => {
    const r = await admin<{ error: { param: string; message: string } }>("POST", "/tenants", { name: "x", id: "Not A Slug" });
    expect(r.status).toBe(400);
    expect(r.body.error.param).toBe("id");
    const unknownField = await admin<{ error: { message: string } }>("POST", "/tenants", { name: "y", colour: "red" });
    expect(unknownField.status).toBe(400);
    const notJson = await admin("POST", "/tenants", "{not json");
    expect(notJson.status).toBe(400);
  });

  it("shows a key's plaintext once and stores only its hash", async () => {
    const { tenantId, key, keyId } = await createTenantWithKey();
    expect(key.startsWith("sk-sy-key_")).toBe(true);
    const listed = await admin<{ data: Array<Record<string, unknown>> }>("GET", `/tenants/${tenantId}/keys`);
    expect(listed.body.data).toHaveLength(1);
    expect(JSON.stringify(listed.body)).not.toContain(key.split(".")[1]);
    expect(listed.body.data[0]).toMatchObject({ id: keyId, status: "active", prefix: key.split(".")[0] });
    const rows = await env.DB.prepare("SELECT * FROM api_keys WHERE id = ?").bind(keyId).all();
    const stored = JSON.stringify(rows.results);
    expect(stored).not.toContain(key);
    expect(stored).not.toContain(key.split(".")[1]);
  });

  it("revoked keys stop working at once in the isolate that revoked them", async () => {
    const { key, keyId } = await createTenantWithKey();
    const ok = await call("/v1/models", { headers: { authorization: `Bearer ${key}` } });
    expect(ok.status).toBe(200);
    const revoked = await admin("POST", `/keys/${keyId}/revoke`);
    expect(revoked.body).toMatchObject({ status: "revoked" });
    const after = await call("/v1/models", { headers: { authorization: `Bearer ${key}` } });
    expect(after.status).toBe(401);
  });

  it("keys of a disabled tenant stop working at once, cached or not", async () => {
    const { tenantId, key } = await createTenantWithKey();
    expect((await call("/v1/models", { headers: { authorization: `Bearer ${key}` } })).status).toBe(200);
    await admin("POST", `/tenants/${tenantId}/disable`);
    expect((await call("/v1/models", { headers: { authorization: `Bearer ${key}` } })).status).toBe(401);
    const fresh = await admin<{ key: string }>("POST", `/tenants/${tenantId}/keys`, {});
    expect((await call("/v1/models", { headers: { authorization: `Bearer ${fresh.body.key}` } })).status).toBe(401);
    await admin("POST", `/tenants/${tenantId}/enable`);
    expect((await call("/v1/models", { headers: { authorization: `Bearer ${fresh.body.key}` } })).status).toBe(200);
  });

  it("refuses expiry dates in the past", async () => {
    const { tenantId } = await createTenantWithKey();
    const r = await admin<{ error: { param: string } }>("POST", `/tenants/${tenantId}/keys`, { expires_at: "2001-01-01T00:00:00Z" });
    expect(r.status).toBe(400);
    expect(r.body.error.param).toBe("expires_at");
  });
});

describe("models", () => {
  it("configures a model with a default strategy and an allow-list", async () => {
    const { tenantId } = await createTenantWithKey();
    const name = unique("model");
    const r = await admin("PUT", `/models/${name}`, { default_strategy: "random", allow_all_tenants: false, tenants: [tenantId] });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ name, pool: name, default_strategy: "random", allow_all_tenants: false, tenants: [tenantId] });
    const again = await admin("PUT", `/models/${name}`, { default_strategy: "least-request" });
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ default_strategy: "least-request", tenants: [tenantId] });
  });

  it("grants and withdraws one tenant's access without rewriting the list", async () => {
    const a = await createTenantWithKey();
    const b = await createTenantWithKey();
    const name = unique("model");
    await configureModel(name, { allow_all_tenants: false, tenants: [a.tenantId] });
    const granted = await admin<{ tenants: string[] }>("PUT", `/access/${b.tenantId}/${name}`);
    expect(granted.body.tenants.sort()).toEqual([a.tenantId, b.tenantId].sort());
    const listed = (await (await call("/v1/models", { headers: { authorization: `Bearer ${b.key}` } })).json()) as { data: Array<{ id: string }> };
    expect(listed.data.map((m) => m.id)).toContain(name);
    const withdrawn = await admin<{ tenants: string[] }>("DELETE", `/access/${a.tenantId}/${name}`);
    expect(withdrawn.body.tenants).toEqual([b.tenantId]);
    expect((await admin("PUT", `/access/nobody-at-all/${name}`)).status).toBe(404);
  });

  it("lists models as D1 has them now", async () => {
    const name = unique("model");
    await configureModel(name);
    const listed = await admin<{ data: Array<{ name: string }> }>("GET", "/models");
    expect(listed.body.data.map((m) => m.name)).toContain(name);
  });

  it("rejects unknown strategies and unknown tenants, naming the field", async () => {
    const bad = await admin<{ error: { param: string; message: string } }>("PUT", "/models/m-bad", { default_strategy: "fastest" });
    expect(bad.status).toBe(400);
    expect(bad.body.error.param).toBe("default_strategy");
    expect(bad.body.error.message).toContain("least-request");
    const badTenant = await admin<{ error: { param: string } }>("PUT", "/models/m-bad2", { tenants: ["nobody-here"] });
    expect(badTenant.body.error.param).toBe("tenants");
  });
});

describe("nodes", () => {
  it("registers a node and returns its secret once", async () => {
    const id = unique("node");
    const r = await admin<{ secret: string; key_version: number }>("POST", "/nodes", { id, region: "eu-west", url: "http://10.0.0.1:8801", models: ["m"] });
    expect(r.status).toBe(201);
    expect(r.body.secret).toMatch(/^sy_ns_1_/);
    expect(r.body.key_version).toBe(1);
    const fetched = await admin<Record<string, unknown>>("GET", `/nodes/${id}`);
    expect(fetched.body.secret).toBeUndefined();
    const row = await env.DB.prepare("SELECT * FROM nodes WHERE id = ?").bind(id).first();
    expect(JSON.stringify(row)).not.toContain(r.body.secret);
    const dup = await admin("POST", "/nodes", { id, region: "eu-west", models: ["m"] });
    expect(dup.status).toBe(409);
  });

  it("rotates a node secret without downtime: the old secret works until the agent signs with the new one", async () => {
    const model = unique("rot-model");
    await configureModel(model);
    const id = unique("node");
    const first = await registerNode(id, [model]);
    expect((await heartbeat(id, first, [engine(model)])).status).toBe(200);
    const rotated = await admin<{ secret: string; key_version: number; pending_key_version: number }>("POST", `/nodes/${id}/rotate-secret`);
    expect(rotated.body.key_version).toBe(1);
    expect(rotated.body.pending_key_version).toBe(2);
    expect(rotated.body.secret).toMatch(/^sy_ns_2_/);
    // Until the agent has the new secret, the old one still signs heartbeats.
    expect((await heartbeat(id, first, [engine(model)])).status).toBe(200);
    // The agent's first beat with the new secret promotes it; the old one is then refused.
    expect((await heartbeat(id, rotated.body.secret, [engine(model)])).status).toBe(200);
    const after = await admin<{ key_version: number; pending_key_version: number | null }>("GET", `/nodes/${id}`);
    expect(after.body).toMatchObject({ key_version: 2, pending_key_version: null });
    expect((await heartbeat(id, first, [engine(model)])).status).toBe(401);
    expect((await heartbeat(id, rotated.body.secret, [engine(model)])).status).toBe(200);
  });

  it("an immediate rotation (leaked secret) refuses the old secret at once", async () => {
    const model = unique("rot-model");
    await configureModel(model);
    const id = unique("node");
    const first = await registerNode(id, [model]);
    const rotated = await admin<{ secret: string; key_version: number }>("POST", `/nodes/${id}/rotate-secret`, { immediate: true });
    expect(rotated.body.key_version).toBe(2);
    expect((await heartbeat(id, first, [engine(model)])).status).toBe(401);
    expect((await heartbeat(id, rotated.body.secret, [engine(model)])).status).toBe(200);
  });

  it("a node deleted and registered again gets a new secret; the old one stays dead", async () => {
    const model = unique("re-model");
    await configureModel(model);
    const id = unique("node");
    const first = await registerNode(id, [model]);
    await admin("DELETE", `/nodes/${id}`);
    const second = await registerNode(id, [model]);
    expect(second).not.toBe(first);
    expect((await heartbeat(id, first, [engine(model)])).status).toBe(401);
    expect((await heartbeat(id, second, [engine(model)])).status).toBe(200);
  });

  it("warns when a node is registered for a model nobody configured", async () => {
    const r = await admin<{ warnings: string[] }>("POST", "/nodes", { id: unique("node"), region: "eu", models: ["never-configured-model"] });
    expect(r.status).toBe(201);
    expect(r.body.warnings[0]).toContain("never-configured-model");
  });

  it("refuses an update that changes nothing", async () => {
    const id = unique("node");
    await registerNode(id, ["m"]);
    const r = await admin("PATCH", `/nodes/${id}`, {});
    expect(r.status).toBe(400);
  });

  it("drains a node at once and lists its live state", async () => {
    const model = unique("drain-model");
    await configureModel(model);
    const id = unique("node");
    const secret = await registerNode(id, [model]);
    await heartbeat(id, secret, [engine(model)]);
    let listed = await admin<{ live: Array<{ status: string }> }>("GET", `/nodes/${id}`);
    expect(listed.body.live[0]?.status).toBe("healthy");
    await admin("POST", `/nodes/${id}/drain`);
    listed = await admin("GET", `/nodes/${id}`);
    expect(listed.body.live[0]?.status).toBe("draining");
    await admin("POST", `/nodes/${id}/undrain`);
    listed = await admin("GET", `/nodes/${id}`);
    expect(listed.body.live[0]?.status).toBe("healthy");
  });

  it("deleting a node removes it from its pools and its heartbeats are refused", async () => {
    const model = unique("del-model");
    await configureModel(model);
    const id = unique("node");
    const secret = await registerNode(id, [model]);
    await heartbeat(id, secret, [engine(model)]);
    expect((await poolSnapshot(model)).nodes.map((n) => n.nodeId)).toContain(id);
    expect((await admin("DELETE", `/nodes/${id}`)).status).toBe(200);
    expect((await poolSnapshot(model)).nodes.map((n) => n.nodeId)).not.toContain(id);
    expect((await heartbeat(id, secret, [engine(model)])).status).toBe(401);
  });

  it("validates registration input", async () => {
    const r = await admin<{ error: { param: string } }>("POST", "/nodes", { id: "n-ok", region: "eu", url: "ftp://x", models: ["m"] });
    expect(r.status).toBe(400);
    expect(r.body.error.param).toBe("url");
    const noModels = await admin<{ error: { param: string } }>("POST", "/nodes", { id: "n-ok2", region: "eu", models: [] });
    expect(noModels.body.error.param).toBe("models");
  });
});
