/**
 * Model configuration as the request path sees it: name → pool, default strategy and who may use
 * it. Read from D1 and cached per isolate like API keys, so admin changes apply within the TTL.
 */
import { eq } from "drizzle-orm";
import type { Db } from "../db/client";
import { modelAccess, models, type ModelRow } from "../db/schema";
import { TtlCache } from "../lib/ttl-cache";

export interface ModelConfig {
  name: string;
  pool: string;
  defaultStrategy: string;
  allowAllTenants: boolean;
  /** Whose prompt prefixes requests may match: each tenant its own, or one shared namespace. */
  prefixSharing: "tenant" | "shared";
  /** Edge admission: how requests wait when no node has room. */
  admission: { policy: "vtc" | "fcfs" | "off"; maxWaitMs: number; nodeLimit: number | null; inputWeight: number; outputWeight: number; headroom: number };
  /** Tenants allowed when allowAllTenants is false. */
  tenants: ReadonlySet<string>;
  createdAt: number;
}

const cache = new TtlCache<ModelConfig | null>(5_000, 10_000);

function admissionOf(row: ModelRow): ModelConfig["admission"] {
  return { policy: row.admissionPolicy, maxWaitMs: row.maxQueueWaitMs, nodeLimit: row.nodeLimit, inputWeight: row.vtcInputWeight, outputWeight: row.vtcOutputWeight, headroom: row.vtcHeadroom };
}
let listCache: { at: number; value: ModelConfig[] } | undefined;

export function forgetModel(name: string): void {
  cache.delete(name);
  listCache = undefined;
}

async function loadModel(db: Db, name: string): Promise<ModelConfig | null> {
  const row = (await db.select().from(models).where(eq(models.name, name)).limit(1))[0];
  if (!row) return null;
  const access = await db.select({ tenantId: modelAccess.tenantId }).from(modelAccess).where(eq(modelAccess.model, name));
  return {
    name: row.name,
    pool: row.pool,
    defaultStrategy: row.defaultStrategy,
    allowAllTenants: row.allowAllTenants,
    prefixSharing: row.prefixSharing,
    admission: admissionOf(row),
    tenants: new Set(access.map((a) => a.tenantId)),
    createdAt: row.createdAt,
  };
}

export function getModel(db: Db, name: string): Promise<ModelConfig | null> {
  return cache.getOrLoad(name, () => loadModel(db, name));
}

/** Every configured model (cached for the same TTL unless `fresh` asks for D1's current view). */
export async function listModels(db: Db, { fresh = false } = {}): Promise<ModelConfig[]> {
  const now = Date.now();
  if (!fresh && listCache && now - listCache.at < 5_000) return listCache.value;
  const rows = await db.select().from(models).orderBy(models.name);
  const access = await db.select().from(modelAccess);
  const byModel = new Map<string, Set<string>>();
  for (const a of access) {
    let set = byModel.get(a.model);
    if (!set) byModel.set(a.model, (set = new Set()));
    set.add(a.tenantId);
  }
  const value = rows.map((row) => ({
    name: row.name,
    pool: row.pool,
    defaultStrategy: row.defaultStrategy,
    allowAllTenants: row.allowAllTenants,
    prefixSharing: row.prefixSharing,
    admission: admissionOf(row),
    tenants: byModel.get(row.name) ?? new Set<string>(),
    createdAt: row.createdAt,
  }));
  listCache = { at: now, value };
  return value;
}

export function tenantMayUse(model: ModelConfig, tenantId: string): boolean {
  return model.allowAllTenants || model.tenants.has(tenantId);
}

/**
 * The cache namespace a request's prompt lives in: its tenant's own (the default) or the model's
 * shared one. Prefix matching at the edge and prefix caching in engines never cross namespaces.
 */
export function cacheNamespace(model: ModelConfig, tenantId: string): string {
  return model.prefixSharing === "shared" ? `m:${model.name}` : `t:${tenantId}:${model.name}`;
}
