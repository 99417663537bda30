/** Admin: models — which pool routes them, their default strategy and who may use them. */
import { and, eq, inArray } from "drizzle-orm";
import { type Context, Hono } from "hono";
import { z } from "zod";
import { ApiError } from "../../protocol/openai-error";
import { openDb } from "../db/client";
import { modelAccess, models, tenants } from "../db/schema";
import type { AppEnv } from "../env";
import { SLUG_PATTERN } from "../lib/ids";
import { forgetModel, getModel, listModels, type ModelConfig } from "../models/catalog";
import { parseStrategySpec } from "../routing/spec";
import { adminBody, iso, list } from "./validate";

export const DEFAULT_STRATEGY = "least-request";
const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,255}$/;

const configureModel = z.strictObject({
  pool: z.string().regex(SLUG_PATTERN, "must be a lowercase slug (a-z, 0-9, '.', '_', '-'; at most 63)").optional(),
  default_strategy: z.string().min(1).max(512).optional(),
  allow_all_tenants: z.boolean().optional(),
  tenants: z.array(z.string().min(1).max(128)).max(10_000).optional(),
  /** `tenant`: each tenant's prompts match only its own cached prefixes; `shared`: all tenants share. */
  prefix_sharing: z.enum(["tenant", "shared"]).optional(),
  /** How requests wait when no node has room: fair (vtc), first come first served, or not at the edge. */
  admission_policy: z.enum(["vtc", "fcfs", "off"]).optional(),
  max_queue_wait_ms: z.number().int().min(0).max(600_000).optional(),
  /** Requests in flight per node before new ones wait; null: each node's reported concurrency. */
  node_limit: z.number().int().min(1).max(1_000_000).nullable().optional(),
  vtc_input_weight: z.number().positive().max(1_000).optional(),
  vtc_output_weight: z.number().positive().max(1_000).optional(),
  vtc_headroom: z.number().min(0).max(1).optional(),
});

export function modelJson(m: ModelConfig) {
  return {
    name: m.name,
    pool: m.pool,
    default_strategy: m.defaultStrategy,
    allow_all_tenants: m.allowAllTenants,
    prefix_sharing: m.prefixSharing,
    admission_policy: m.admission.policy,
    max_queue_wait_ms: m.admission.maxWaitMs,
    node_limit: m.admission.nodeLimit,
    vtc_input_weight: m.admission.inputWeight,
    vtc_output_weight: m.admission.outputWeight,
    vtc_headroom: m.admission.headroom,
    tenants: [...m.tenants].sort(),
    created_at: iso(m.createdAt),
  };
}

/** Pool name for a model when the operator gives none: the model name made slug-safe. */
export function defaultPoolName(model: string): string {
  const slug = model.toLowerCase().replace(/[^a-z0-9._-]+/g, "-").replace(/^[^a-z0-9]+/, "").slice(0, 63);
  return slug.length > 0 ? slug : "default";
}

/** Grants or withdraws one tenant's access to a restricted model without rewriting the list. */
async function setAccess(c: Context<AppEnv>, allow: boolean): Promise<Response> {
  const name = c.req.param("name") as string;
  const tenantId = c.req.param("tenant") as string;
  const db = openDb(c.env.DB);
  if (!(await db.select({ name: models.name }).from(models).where(eq(models.name, name)).limit(1))[0]) {
    throw new ApiError(404, `The model '${name}' does not exist.`, { param: "model", code: "model_not_found" });
  }
  if (!(await db.select({ id: tenants.id }).from(tenants).where(eq(tenants.id, tenantId)).limit(1))[0]) {
    throw new ApiError(404, `Tenant '${tenantId}' does not exist.`, { param: "tenant", code: "tenant_not_found" });
  }
  if (allow) await db.insert(modelAccess).values({ model: name, tenantId }).onConflictDoNothing();
  else await db.delete(modelAccess).where(and(eq(modelAccess.model, name), eq(modelAccess.tenantId, tenantId)));
  forgetModel(name);
  return c.json(modelJson((await getModel(db, name)) as ModelConfig));
}

// Access grants live under /access/<tenant>/<model>: model names may contain '/', so the model
// must be the last, greedy segment.
export const modelRoutes = new Hono<AppEnv>()
  .put("/access/:tenant/:name{.+}", async (c) => setAccess(c, true))
  .delete("/access/:tenant/:name{.+}", async (c) => setAccess(c, false))
  .get("/models", async (c) => c.json(list((await listModels(openDb(c.env.DB), { fresh: true })).map(modelJson))))
  .get("/models/:name{.+}", async (c) => {
    forgetModel(c.req.param("name"));
    const m = await getModel(openDb(c.env.DB), c.req.param("name"));
    if (!m) throw new ApiError(404, `The model '${c.req.param("name")}' does not exist.`, { param: "model", code: "model_not_found" });
    return c.json(modelJson(m));
  })
  .put("/models/:name{.+}", async (c) => {
    const name = c.req.param("name");
    if (!MODEL_NAME.test(name)) throw new ApiError(400, "'name' must be 1-256 characters of letters, digits and ._:/@+-", { param: "name", code: "invalid_value" });
    const body = await adminBody(c, configureModel);
    if (body.default_strategy !== undefined) {
      const spec = parseStrategySpec(body.default_strategy);
      if (!spec.ok) throw new ApiError(400, `'default_strategy': ${spec.message}`, { param: "default_strategy", code: "invalid_routing_strategy" });
    }
    const db = openDb(c.env.DB);
    if (body.tenants && body.tenants.length > 0) {
      const found = await db.select({ id: tenants.id }).from(tenants).where(inArray(tenants.id, body.tenants));
      const missing = body.tenants.filter((t) => !found.some((f) => f.id === t));
      if (missing.length > 0) throw new ApiError(400, `'tenants': unknown tenant(s) ${missing.join(", ")}`, { param: "tenants", code: "tenant_not_found" });
    }
    const existing = (await db.select().from(models).where(eq(models.name, name)).limit(1))[0];
    const now = Date.now();
    const row = {
      name,
      pool: body.pool ?? existing?.pool ?? defaultPoolName(name),
      defaultStrategy: body.default_strategy ?? existing?.defaultStrategy ?? DEFAULT_STRATEGY,
      allowAllTenants: body.allow_all_tenants ?? existing?.allowAllTenants ?? true,
      prefixSharing: body.prefix_sharing ?? existing?.prefixSharing ?? ("tenant" as const),
      admissionPolicy: body.admission_policy ?? existing?.admissionPolicy ?? ("vtc" as const),
      maxQueueWaitMs: body.max_queue_wait_ms ?? existing?.maxQueueWaitMs ?? 30_000,
      nodeLimit: body.node_limit === undefined ? (existing?.nodeLimit ?? null) : body.node_limit,
      vtcInputWeight: body.vtc_input_weight ?? existing?.vtcInputWeight ?? 1,
      vtcOutputWeight: body.vtc_output_weight ?? existing?.vtcOutputWeight ?? 2,
      vtcHeadroom: body.vtc_headroom ?? existing?.vtcHeadroom ?? 0.1,
      createdAt: existing?.createdAt ?? now,
      updatedAt: now,
    };
    const { name: _key, createdAt: _created, ...updatable } = row;
    const writes = [db.insert(models).values(row).onConflictDoUpdate({ target: models.name, set: updatable })];
    const access = body.tenants;
    if (access !== undefined) {
      await db.batch([
        writes[0] as (typeof writes)[0],
        db.delete(modelAccess).where(eq(modelAccess.model, name)),
        ...access.map((tenantId) => db.insert(modelAccess).values({ model: name, tenantId }).onConflictDoNothing()),
      ]);
    } else await writes[0];
    forgetModel(name);
    const saved = await getModel(db, name);
    return c.json(modelJson(saved as ModelConfig), existing ? 200 : 201);
  })
  .delete("/models/:name{.+}", async (c) => {
    const name = c.req.param("name");
    const db = openDb(c.env.DB);
    const deleted = await db.delete(models).where(eq(models.name, name)).returning({ name: models.name });
    if (deleted.length === 0) throw new ApiError(404, `The model '${name}' does not exist.`, { param: "model", code: "model_not_found" });
    forgetModel(name);
    return c.json({ name, deleted: true });
  });
