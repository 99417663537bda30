/** Helpers for worker tests: call the worker as a client would, seed D1 through the admin API. */
import { env, exports } from "cloudflare:workers";
import type { EngineLoadReport } from "../../protocol/heartbeat";
import { HEARTBEAT_PATH } from "../../protocol/heartbeat";
import { signRequest } from "../../protocol/signing";

export const EDGE = "http://edge.test";

export function call(path: string, init: RequestInit = {}): Promise<Response> {
  return exports.default.fetch(new Request(`${EDGE}${path}`, init));
}

export async function admin<T = Record<string, unknown>>(method: string, path: string, body?: unknown, token = env.ADMIN_TOKEN): Promise<{ status: number; body: T; headers: Headers }> {
  const res = await call(`/admin${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    ...(body !== undefined ? { body: typeof body === "string" ? body : JSON.stringify(body) } : {}),
  });
  return { status: res.status, body: (await res.json()) as T, headers: res.headers };
}

let counter = 0;
export function unique(prefix: string): string {
  counter++;
  return `${prefix}-${counter}-${Math.random().toString(36).slice(2, 8)}`;
}

export async function createTenantWithKey(id = unique("ten")): Promise<{ tenantId: string; key: string; keyId: string }> {
  const t = await admin("POST", "/tenants", { id, name: `Tenant ${id}` });
  if (t.status !== 201) throw new Error(`create tenant: ${t.status} ${JSON.stringify(t.body)}`);
  const k = await admin<{ key: string; id: string }>("POST", `/tenants/${id}/keys`, { name: "test" });
  if (k.status !== 201) throw new Error(`issue key: ${k.status}`);
  return { tenantId: id, key: k.body.key, keyId: k.body.id };
}

export async function configureModel(name: string, body: Record<string, unknown> = {}): Promise<void> {
  const r = await admin("PUT", `/models/${name}`, body);
  if (r.status !== 200 && r.status !== 201) throw new Error(`model: ${r.status} ${JSON.stringify(r.body)}`);
}

export async function registerNode(id: string, models: string[], url = `http://${id}.agent.test:8801`, region = "local"): Promise<string> {
  const r = await admin<{ secret: string }>("POST", "/nodes", { id, region, url, models });
  if (r.status !== 201) throw new Error(`register node: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.secret;
}

export function engine(model: string, over: Partial<EngineLoadReport> = {}): EngineLoadReport {
  return { model, engine: "sim", healthy: true, running: 0, waiting: 0, maxConcurrency: 8, kvUsage: 0, kvCapacityTokens: 100_000, ...over };
}

export function secretVersion(secret: string): number {
  return Number(/^sy_ns_(\d+)_/.exec(secret)?.[1]);
}

export async function heartbeat(
  nodeId: string,
  secret: string,
  engines: EngineLoadReport[],
  over: { leaving?: boolean; sentAt?: number; body?: unknown; nonce?: string; timestampMs?: number; extra?: Record<string, unknown> } = {},
): Promise<Response> {
  const beat = over.body ?? { nodeId, agentVersion: "test", sentAt: over.sentAt ?? Date.now(), leaving: over.leaving ?? false, engines, ...over.extra };
  const body = new TextEncoder().encode(JSON.stringify(beat));
  const headers = await signRequest({
    nodeId,
    keyVersion: secretVersion(secret),
    secret,
    method: "POST",
    path: HEARTBEAT_PATH,
    body,
    ...(over.nonce ? { nonce: over.nonce } : {}),
    ...(over.timestampMs ? { timestampMs: over.timestampMs } : {}),
  });
  return call(HEARTBEAT_PATH, { method: "POST", headers: { "content-type": "application/json", ...headers }, body });
}

export function chat(key: string, body: Record<string, unknown>, headers: Record<string, string> = {}): Promise<Response> {
  return call("/v1/chat/completions", {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
}

export async function errorOf(res: Response): Promise<{ message: string; type: string; param: string | null; code: string | null }> {
  const body = (await res.json()) as { error: { message: string; type: string; param: string | null; code: string | null } };
  return body.error;
}

/** A pool snapshot through the DO binding. */
export function poolSnapshot(pool: string) {
  return env.POOL.getByName(pool).snapshot();
}
