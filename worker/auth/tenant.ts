import type { TenantLimits } from "../tenants/limits";

/** What the edge knows about the caller once its API key checks out. */
export interface AuthenticatedTenant {
  tenantId: string;
  tenantName: string;
  keyId: string;
  /** Epoch ms, or null for keys that never expire. */
  expiresAt: number | null;
  /** Fair-share weight. */
  weight: number;
  /** Rate limits and token budget (all null: unlimited). */
  limits: TenantLimits;
  /** Completion tokens reserved when a request sets no max_tokens; null: the edge default. */
  defaultMaxTokens: number | null;
}
