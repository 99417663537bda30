/** What the edge knows about the caller once its API key checks out. */
export interface AuthenticatedTenant {
  tenantId: string;
  tenantName: string;
  keyId: string;
  /** Epoch ms, or null for keys that never expire. */
  expiresAt: number | null;
  /** Fair-share weight. */
  weight: number;
}
