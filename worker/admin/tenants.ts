/** Admin: tenants and their API keys. Plaintext keys are returned once, at issue. */
import { and, eq } from "drizzle-orm";
import { Hono } from "hono";
import { z } from "zod";
import { ApiError } from "../../protocol/openai-error";
import { issueKey } from "../auth/api-keys";
import { forgetKeyHash } from "../auth/key-lookup";
import { openDb } from "../db/client";
import { apiKeys, tenants, type ApiKeyRow, type TenantRow } from "../db/schema";
import type { AppEnv } from "../env";
import { newId, SLUG_PATTERN } from "../lib/ids";
import { usageReport } from "../tenants/usage-report";
import { adminBody, iso, list } from "./validate";

const limitCount = z.number().int().positive().max(Number.MAX_SAFE_INTEGER).nullable().optional();

/** Limits a tenant may be given (null clears one). */
const limitFields = {
  rpm_limit: limitCount,
  tpm_limit: limitCount,
  token_budget: limitCount,
  budget_period: z.enum(["day", "month"]).optional(),
  default_max_tokens: z.number().int().positive().max(1_000_000).nullable().optional(),
};

const createTenant = z.strictObject({
  name: z.string().trim().min(1).max(128),
  /** Fair-share weight under contention (default 1). */
  weight: z.number().positive().max(1_000).optional(),
  id: z.string().regex(SLUG_PATTERN, "must be a lowercase slug (a-z, 0-9, '.', '_', '-'; at most 63)").optional(),
  ...limitFields,
});

const updateTenant = z
  .strictObject({
    name: z.string().trim().min(1).max(128).optional(),
    weight: z.number().positive().max(1_000).optional(),
    ...limitFields,
  })
  .refine((b) => Object.values(b).some((v) => v !== undefined), "give at least one field to change");

type LimitInput = { [K in keyof typeof limitFields]?: z.infer<(typeof limitFields)[K]> };

/** The tenant columns a body sets (absent fields keep their value, null clears a limit). */
function limitColumns(b: LimitInput): Partial<Pick<TenantRow, "rpmLimit" | "tpmLimit" | "tokenBudget" | "budgetPeriod" | "defaultMaxTokens">> {
  return {
    ...(b.rpm_limit !== undefined ? { rpmLimit: b.rpm_limit } : {}),
    ...(b.tpm_limit !== undefined ? { tpmLimit: b.tpm_limit } : {}),
    ...(b.token_budget !== undefined ? { tokenBudget: b.token_budget } : {}),
    ...(b.budget_period !== undefined ? { budgetPeriod: b.budget_period } : {}),
    ...(b.default_max_tokens !== undefined ? { defaultMaxTokens: b.default_max_tokens } : {}),
  };
}

const createKey = z.strictObject({
  name: z.string().trim().min(1).max(128).optional(),
  expires_in_days: z.number().positive().max(3650).optional(),
  expires_at: z.iso.datetime({ offset: true }).optional(),
});

function tenantJson(t: TenantRow) {
  return {
    id: t.id,
    name: t.name,
    weight: t.weight,
    rpm_limit: t.rpmLimit,
    tpm_limit: t.tpmLimit,
    token_budget: t.tokenBudget,
    budget_period: t.budgetPeriod,
    default_max_tokens: t.defaultMaxTokens,
    created_at: iso(t.createdAt),
    disabled: t.disabledAt !== null,
    disabled_at: iso(t.disabledAt),
  };
}

function keyStatus(k: ApiKeyRow, now: number): "active" | "revoked" | "expired" {
  if (k.revokedAt !== null) return "revoked";
  if (k.expiresAt !== null && k.expiresAt <= now) return "expired";
  return "active";
}

function keyJson(k: ApiKeyRow, now = Date.now()) {
  return {
    id: k.id,
    tenant_id: k.tenantId,
    name: k.name,
    prefix: k.prefix,
    status: keyStatus(k, now),
    created_at: iso(k.createdAt),
    expires_at: iso(k.expiresAt),
    revoked_at: iso(k.revokedAt),
  };
}

/** This isolate forgets the tenant's keys at once (either way); the others within KEY_CACHE_TTL_MS. */
async function forgetTenantKeys(db: ReturnType<typeof openDb>, tenantId: string): Promise<void> {
  for (const k of await db.select({ hash: apiKeys.hash }).from(apiKeys).where(eq(apiKeys.tenantId, tenantId))) forgetKeyHash(k.hash);
}

async function requireTenant(db: ReturnType<typeof openDb>, id: string): Promise<TenantRow> {
  const row = (await db.select().from(tenants).where(eq(tenants.id, id)).limit(1))[0];
  if (!row) throw new ApiError(404, `Tenant '${id}' does not exist.`, { param: "tenant", code: "tenant_not_found" });
  return row;
}

export const tenantRoutes = new Hono<AppEnv>()
  .post("/tenants", async (c) => {
    const body = await adminBody(c, createTenant);
    const db = openDb(c.env.DB);
    const id = body.id ?? newId("ten");
    const clash = await db.select({ id: tenants.id, name: tenants.name }).from(tenants).where(eq(tenants.name, body.name)).limit(1);
    if (clash.length > 0 || (await db.select({ id: tenants.id }).from(tenants).where(eq(tenants.id, id)).limit(1)).length > 0) {
      throw new ApiError(409, `A tenant with that ${clash.length > 0 ? "name" : "id"} already exists.`, { param: clash.length > 0 ? "name" : "id", code: "tenant_exists" });
    }
    const row: TenantRow = {
      id,
      name: body.name,
      createdAt: Date.now(),
      disabledAt: null,
      weight: body.weight ?? 1,
      rpmLimit: null,
      tpmLimit: null,
      tokenBudget: null,
      budgetPeriod: "month",
      defaultMaxTokens: null,
      ...limitColumns(body),
    };
    await db.insert(tenants).values(row);
    return c.json(tenantJson(row), 201);
  })
  .get("/tenants", async (c) => {
    const rows = await openDb(c.env.DB).select().from(tenants).orderBy(tenants.createdAt);
    return c.json(list(rows.map(tenantJson)));
  })
  .get("/tenants/:id", async (c) => c.json(tenantJson(await requireTenant(openDb(c.env.DB), c.req.param("id")))))
  .patch("/tenants/:id", async (c) => {
    const body = await adminBody(c, updateTenant);
    const db = openDb(c.env.DB);
    const t = await requireTenant(db, c.req.param("id"));
    if (body.name !== undefined && body.name !== t.name) {
      const clash = await db.select({ id: tenants.id }).from(tenants).where(eq(tenants.name, body.name)).limit(1);
      if (clash.length > 0) throw new ApiError(409, "A tenant with that name already exists.", { param: "name", code: "tenant_exists" });
    }
    const changes = { name: body.name ?? t.name, weight: body.weight ?? t.weight, ...limitColumns(body) };
    const next = { ...t, ...changes };
    await db.update(tenants).set(changes).where(eq(tenants.id, t.id));
    await forgetTenantKeys(db, t.id);
    return c.json(tenantJson(next));
  })
  .get("/tenants/:id/usage", async (c) => {
    const t = await requireTenant(openDb(c.env.DB), c.req.param("id"));
    return c.json(await usageReport(c.env, t.id, c.req.query()));
  })
  .post("/tenants/:id/disable", async (c) => {
    const db = openDb(c.env.DB);
    const t = await requireTenant(db, c.req.param("id"));
    const disabledAt = t.disabledAt ?? Date.now();
    await db.update(tenants).set({ disabledAt }).where(eq(tenants.id, t.id));
    await forgetTenantKeys(db, t.id);
    return c.json(tenantJson({ ...t, disabledAt }));
  })
  .post("/tenants/:id/enable", async (c) => {
    const db = openDb(c.env.DB);
    const t = await requireTenant(db, c.req.param("id"));
    await db.update(tenants).set({ disabledAt: null }).where(eq(tenants.id, t.id));
    await forgetTenantKeys(db, t.id);
    return c.json(tenantJson({ ...t, disabledAt: null }));
  })
  .post("/tenants/:id/keys", async (c) => {
    const body = await adminBody(c, createKey, { optional: true });
    if (body.expires_in_days !== undefined && body.expires_at !== undefined) {
      throw new ApiError(400, "Give expires_in_days or expires_at, not both.", { param: "expires_at", code: "invalid_value" });
    }
    const db = openDb(c.env.DB);
    const tenant = await requireTenant(db, c.req.param("id"));
    const now = Date.now();
    const expiresAt = body.expires_in_days !== undefined ? now + body.expires_in_days * 86_400_000 : body.expires_at ? Date.parse(body.expires_at) : null;
    if (expiresAt !== null && expiresAt <= now) throw new ApiError(400, "'expires_at' is in the past.", { param: "expires_at", code: "invalid_value" });
    const issued = await issueKey();
    const row: ApiKeyRow = {
      id: issued.id,
      tenantId: tenant.id,
      name: body.name ?? "default",
      prefix: issued.prefix,
      hash: issued.hash,
      createdAt: now,
      expiresAt,
      revokedAt: null,
    };
    await db.insert(apiKeys).values(row);
    // The only time the plaintext exists outside the caller.
    return c.json({ ...keyJson(row, now), key: issued.plaintext }, 201);
  })
  .get("/tenants/:id/keys", async (c) => {
    const db = openDb(c.env.DB);
    const tenant = await requireTenant(db, c.req.param("id"));
    const rows = await db.select().from(apiKeys).where(eq(apiKeys.tenantId, tenant.id)).orderBy(apiKeys.createdAt);
    return c.json(list(rows.map((k) => keyJson(k))));
  })
  .get("/keys/:id", async (c) => {
    const row = (await openDb(c.env.DB).select().from(apiKeys).where(eq(apiKeys.id, c.req.param("id"))).limit(1))[0];
    if (!row) throw new ApiError(404, `Key '${c.req.param("id")}' does not exist.`, { param: "key", code: "key_not_found" });
    return c.json(keyJson(row));
  })
  .post("/keys/:id/revoke", async (c) => {
    const db = openDb(c.env.DB);
    const id = c.req.param("id");
    const row = (await db.select().from(apiKeys).where(eq(apiKeys.id, id)).limit(1))[0];
    if (!row) throw new ApiError(404, `Key '${id}' does not exist.`, { param: "key", code: "key_not_found" });
    const revokedAt = row.revokedAt ?? Date.now();
    await db.update(apiKeys).set({ revokedAt }).where(and(eq(apiKeys.id, id)));
    // This isolate forgets at once; the others within KEY_CACHE_TTL_MS.
    forgetKeyHash(row.hash);
    return c.json(keyJson({ ...row, revokedAt }));
  });
