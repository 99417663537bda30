/**
 * Admin: node registration, draining, secret rotation and removal. Registration returns the node's
 * signing secret once; the agent is configured with it. Live state (health, load, in-flight) comes
 * from the pool objects of the node's models.
 */
import { eq } from "drizzle-orm";
import { Hono } from "hono";
import { z } from "zod";
import { ApiError } from "../../protocol/openai-error";
import { openDb, type Db } from "../db/client";
import { nodeModels, nodes } from "../db/schema";
import type { AppEnv, Env } from "../env";
import { SLUG_PATTERN } from "../lib/ids";
import { listModels } from "../models/catalog";
import { forgetNode, loadNode, type NodeRecord } from "../nodes/node-directory";
import { deriveNodeSecret, formatSecretRef, newSecretRef, type SecretRef } from "../nodes/node-secrets";
import { forgetNodeSecret } from "../nodes/node-signer";
import type { PoolNodeSnapshot } from "../pool/types";
import { adminBody, iso, list } from "./validate";

const modelList = z.array(z.string().min(1).max(256)).min(1).max(64);
const httpUrl = z.url({ protocol: /^https?$/ }).max(512);

const registerNode = z.strictObject({
  id: z.string().regex(SLUG_PATTERN, "must be a lowercase slug (a-z, 0-9, '.', '_', '-'; at most 63)"),
  region: z.string().regex(SLUG_PATTERN, "must be a lowercase slug"),
  url: httpUrl.optional(),
  models: modelList,
});

const rotateSecret = z.strictObject({
  /**
   * Make the new secret active at once (for a leaked secret: the node is out until its agent has
   * it). By default the new secret stays pending until the agent signs a heartbeat with it.
   */
  immediate: z.boolean().default(false),
});

const updateNode = z
  .strictObject({
    region: z.string().regex(SLUG_PATTERN, "must be a lowercase slug").optional(),
    url: httpUrl.nullable().optional(),
    models: modelList.optional(),
  })
  .refine((b) => b.region !== undefined || b.url !== undefined || b.models !== undefined, "give at least one of region, url, models");

function nodeJson(n: NodeRecord, live?: PoolNodeSnapshot[]) {
  return {
    id: n.id,
    region: n.region,
    url: n.url,
    models: n.models,
    drained: n.drained,
    key_version: n.secretRef.version,
    pending_key_version: n.nextSecretRef?.version ?? null,
    created_at: iso(n.createdAt),
    updated_at: iso(n.updatedAt),
    ...(live ? { live: live.map(liveJson) } : {}),
  };
}

function liveJson(s: PoolNodeSnapshot) {
  return {
    model: s.model,
    status: s.status,
    engine: s.engine,
    url: s.url,
    inflight: s.inflight,
    running: s.running,
    waiting: s.waiting,
    max_concurrency: s.maxConcurrency,
    kv_usage: s.kvUsage,
    kv_capacity_tokens: s.kvCapacityTokens,
    last_heartbeat_at: iso(s.lastHeartbeatAt),
  };
}

async function requireNode(db: Db, id: string): Promise<NodeRecord> {
  const n = await loadNode(db, id);
  if (!n) throw new ApiError(404, `Node '${id}' does not exist.`, { param: "node", code: "node_not_found" });
  return n;
}

async function secretFor(env: Env, nodeId: string, ref: SecretRef): Promise<string> {
  if (!env.NODE_SECRET_KEY) throw new ApiError(503, "Set the NODE_SECRET_KEY secret before registering nodes.", { code: "node_secret_key_missing" });
  return deriveNodeSecret(env.NODE_SECRET_KEY, nodeId, ref);
}

/** Models in `names` that no model configuration routes yet (their heartbeats are ignored until one does). */
async function unconfigured(db: Db, names: string[]): Promise<string[]> {
  const known = new Set((await listModels(db, { fresh: true })).map((m) => m.name));
  return names.filter((n) => !known.has(n));
}

/** Pools that route any of these models. */
async function poolsOf(db: Db, modelNames: Iterable<string>): Promise<Set<string>> {
  const wanted = new Set(modelNames);
  const out = new Set<string>();
  for (const m of await listModels(db, { fresh: true })) if (wanted.has(m.name)) out.add(m.pool);
  return out;
}

async function liveState(env: Env, db: Db, records: NodeRecord[]): Promise<Map<string, PoolNodeSnapshot[]>> {
  const pools = await poolsOf(db, records.flatMap((r) => r.models));
  const byNode = new Map<string, PoolNodeSnapshot[]>();
  const snapshots = await Promise.all([...pools].map((p) => env.POOL.getByName(p).snapshot()));
  for (const snap of snapshots) {
    for (const n of snap.nodes) {
      let arr = byNode.get(n.nodeId);
      if (!arr) byNode.set(n.nodeId, (arr = []));
      arr.push(n);
    }
  }
  return byNode;
}

async function tellPools(env: Env, db: Db, models: string[], act: (pool: DurableObjectStub<import("../pool/pool-object").PoolObject>) => Promise<unknown>): Promise<void> {
  await Promise.all([...(await poolsOf(db, models))].map((p) => act(env.POOL.getByName(p))));
}

export const nodeRoutes = new Hono<AppEnv>()
  .post("/nodes", async (c) => {
    const body = await adminBody(c, registerNode);
    const db = openDb(c.env.DB);
    if (await loadNode(db, body.id)) throw new ApiError(409, `Node '${body.id}' already exists.`, { param: "id", code: "node_exists" });
    const ref = newSecretRef(1);
    const secret = await secretFor(c.env, body.id, ref);
    const now = Date.now();
    await db.batch([
      db.insert(nodes).values({ id: body.id, region: body.region, url: body.url ?? null, secretRef: formatSecretRef(ref), drained: false, createdAt: now, updatedAt: now }),
      ...[...new Set(body.models)].map((model) => db.insert(nodeModels).values({ nodeId: body.id, model })),
    ]);
    forgetNode(body.id);
    const record = await requireNode(db, body.id);
    const missing = await unconfigured(db, record.models);
    const warnings = missing.map((m) => `model '${m}' is not configured: the node is not used for it until it is (PUT /admin/models/${m})`);
    return c.json({ ...nodeJson(record), secret, warnings }, 201);
  })
  .get("/nodes", async (c) => {
    const db = openDb(c.env.DB);
    const ids = await db.select({ id: nodes.id }).from(nodes).orderBy(nodes.id);
    const records = (await Promise.all(ids.map((r) => loadNode(db, r.id)))).filter((r): r is NodeRecord => r !== null);
    const live = await liveState(c.env, db, records);
    return c.json(list(records.map((r) => nodeJson(r, live.get(r.id) ?? []))));
  })
  .get("/nodes/:id", async (c) => {
    const db = openDb(c.env.DB);
    const record = await requireNode(db, c.req.param("id"));
    const live = await liveState(c.env, db, [record]);
    return c.json(nodeJson(record, live.get(record.id) ?? []));
  })
  .patch("/nodes/:id", async (c) => {
    const body = await adminBody(c, updateNode);
    const db = openDb(c.env.DB);
    const record = await requireNode(db, c.req.param("id"));
    const now = Date.now();
    await db
      .update(nodes)
      .set({ region: body.region ?? record.region, url: body.url === undefined ? record.url : body.url, updatedAt: now })
      .where(eq(nodes.id, record.id));
    if (body.models) {
      await db.batch([
        db.delete(nodeModels).where(eq(nodeModels.nodeId, record.id)),
        ...[...new Set(body.models)].map((model) => db.insert(nodeModels).values({ nodeId: record.id, model })),
      ]);
      // Pools the node no longer serves forget it now rather than when its beats stop mattering.
      const dropped = record.models.filter((m) => !body.models?.includes(m));
      await tellPools(c.env, db, dropped, (p) => p.removeNode(record.id));
    }
    forgetNode(record.id);
    return c.json(nodeJson(await requireNode(db, record.id)));
  })
  .post("/nodes/:id/drain", async (c) => {
    const db = openDb(c.env.DB);
    const record = await requireNode(db, c.req.param("id"));
    await db.update(nodes).set({ drained: true, updatedAt: Date.now() }).where(eq(nodes.id, record.id));
    await tellPools(c.env, db, record.models, (p) => p.setDrained(record.id, true));
    forgetNode(record.id);
    return c.json(nodeJson({ ...record, drained: true }));
  })
  .post("/nodes/:id/undrain", async (c) => {
    const db = openDb(c.env.DB);
    const record = await requireNode(db, c.req.param("id"));
    await db.update(nodes).set({ drained: false, updatedAt: Date.now() }).where(eq(nodes.id, record.id));
    await tellPools(c.env, db, record.models, (p) => p.setDrained(record.id, false));
    forgetNode(record.id);
    return c.json(nodeJson({ ...record, drained: false }));
  })
  .post("/nodes/:id/rotate-secret", async (c) => {
    const body = await adminBody(c, rotateSecret, { optional: true });
    const db = openDb(c.env.DB);
    const record = await requireNode(db, c.req.param("id"));
    // A fresh salt every time: re-issuing a pending rotation invalidates the previous pending secret.
    const ref = newSecretRef(record.secretRef.version + 1);
    const secret = await secretFor(c.env, record.id, ref);
    const updated = body.immediate ? { ...record, secretRef: ref, nextSecretRef: null } : { ...record, nextSecretRef: ref };
    await db
      .update(nodes)
      .set({ secretRef: formatSecretRef(updated.secretRef), nextSecretRef: updated.nextSecretRef ? formatSecretRef(updated.nextSecretRef) : null, updatedAt: Date.now() })
      .where(eq(nodes.id, record.id));
    forgetNode(record.id);
    forgetNodeSecret(record.id);
    return c.json({ ...nodeJson(updated), secret, immediate: body.immediate });
  })
  .delete("/nodes/:id", async (c) => {
    const db = openDb(c.env.DB);
    const record = await requireNode(db, c.req.param("id"));
    await db.delete(nodes).where(eq(nodes.id, record.id));
    await tellPools(c.env, db, record.models, (p) => p.removeNode(record.id));
    forgetNode(record.id);
    forgetNodeSecret(record.id);
    return c.json({ id: record.id, deleted: true });
  });
