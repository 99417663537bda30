/**
 * API key → tenant, with a short in-isolate cache so that a busy tenant costs one D1 query per TTL,
 * not one per request. Negative answers are cached briefly too, so a flood of bad keys cannot turn
 * into a flood of D1 queries.
 */
import { and, eq, isNull } from "drizzle-orm";
import type { Db } from "../db/client";
import { apiKeys, tenants } from "../db/schema";
import { TtlCache } from "../lib/ttl-cache";
import { hashKey, looksLikeKey } from "./api-keys";
import type { AuthenticatedTenant } from "./tenant";

type CachedKey = AuthenticatedTenant | "invalid";

let cache = new TtlCache<CachedKey>(5_000, 50_000);
let cacheTtl = 5_000;

/** Applies the configured TTL (KEY_CACHE_TTL_MS); a change rebuilds the cache. */
export function configureKeyCache(ttlMs: number): void {
  if (ttlMs === cacheTtl) return;
  cacheTtl = ttlMs;
  cache = new TtlCache<CachedKey>(ttlMs, 50_000);
}

/** Drops a key from this isolate's cache (other isolates forget it within the TTL). */
export function forgetKeyHash(hash: string): void {
  cache.delete(hash);
}

export type KeyCheck = { ok: true; tenant: AuthenticatedTenant } | { ok: false; reason: "malformed" | "unknown" | "expired" };

export async function authenticateKey(db: Db, plaintext: string, now = Date.now()): Promise<KeyCheck> {
  if (!looksLikeKey(plaintext)) return { ok: false, reason: "malformed" };
  const hash = await hashKey(plaintext);
  const entry = await cache.getOrLoad(hash, async () => {
    const rows = await db
      .select({
        keyId: apiKeys.id,
        tenantId: tenants.id,
        tenantName: tenants.name,
        expiresAt: apiKeys.expiresAt,
        weight: tenants.weight,
        rpm: tenants.rpmLimit,
        tpm: tenants.tpmLimit,
        tokenBudget: tenants.tokenBudget,
        budgetPeriod: tenants.budgetPeriod,
        defaultMaxTokens: tenants.defaultMaxTokens,
      })
      .from(apiKeys)
      .innerJoin(tenants, eq(apiKeys.tenantId, tenants.id))
      .where(and(eq(apiKeys.hash, hash), isNull(apiKeys.revokedAt), isNull(tenants.disabledAt)))
      .limit(1);
    const row = rows[0];
    if (!row) return "invalid";
    const { rpm, tpm, tokenBudget, budgetPeriod, ...rest } = row;
    return { ...rest, expiresAt: row.expiresAt ?? null, limits: { rpm, tpm, tokenBudget, budgetPeriod } };
  });
  if (entry === "invalid") return { ok: false, reason: "unknown" };
  // Expiry is checked on every request, cached or not.
  if (entry.expiresAt !== null && entry.expiresAt <= now) return { ok: false, reason: "expired" };
  return { ok: true, tenant: entry };
}
