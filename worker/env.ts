import type { PoolObject } from "./pool/pool-object";
import type { TenantLedger } from "./tenants/tenant-ledger";

/** Bindings of the edge worker (wrangler.toml). */
export interface Env {
  DB: D1Database;
  POOL: DurableObjectNamespace<PoolObject>;
  /** One per tenant (named by tenant id): limits and usage. */
  LEDGER: DurableObjectNamespace<TenantLedger>;
  /** Secret: bearer token for /admin. */
  ADMIN_TOKEN?: string;
  /** Secret: master key from which per-node signing secrets are derived (worker/nodes/node-secrets.ts). */
  NODE_SECRET_KEY?: string;
  MAX_BODY_BYTES?: string;
  KEY_CACHE_TTL_MS?: string;
  DEFAULT_REGION?: string;
  /** How long to wait for a node's response headers (its queueing included), ms. */
  UPSTREAM_HEADERS_TIMEOUT_MS?: string;
  /** Heartbeat interval agents are told to use, ms; nodes silent for 3 intervals leave the pool. */
  HEARTBEAT_INTERVAL_MS?: string;
  /**
   * Optional per-region private network bindings (Workers VPC `vpc_networks`), named
   * `VPC_<REGION>` with the region upper-cased and non-alphanumerics as `_`. When present the edge
   * reaches that region's nodes through it; otherwise through plain fetch (local dev, tunnels).
   */
  [binding: `VPC_${string}`]: Fetcher | undefined;
}

export type RequestVars = {
  requestId: string;
  tenant: import("./auth/tenant").AuthenticatedTenant;
};

export type AppEnv = { Bindings: Env; Variables: RequestVars };

/** Reads a numeric var with a default, ignoring garbage rather than failing requests. */
export function numberVar(value: string | undefined, fallback: number): number {
  const n = value === undefined ? Number.NaN : Number(value);
  return Number.isFinite(n) && n > 0 ? n : fallback;
}
