/**
 * Shapes of the /admin API's JSON as the CLI reads them (worker/admin/*.ts renders them). Kept
 * here rather than imported so the CLI does not compile the worker.
 */

export interface ListBody<T> {
  object: "list";
  data: T[];
}

export interface TenantJson {
  id: string;
  name: string;
  created_at: string | null;
  disabled: boolean;
  disabled_at: string | null;
}

export interface KeyJson {
  id: string;
  tenant_id: string;
  name: string;
  prefix: string;
  status: "active" | "revoked" | "expired" | string;
  created_at: string | null;
  expires_at: string | null;
  revoked_at: string | null;
}

export interface IssuedKeyJson extends KeyJson {
  key: string;
}

export interface LiveJson {
  model: string;
  status: string;
  engine: string;
  url: string;
  inflight: number;
  running: number;
  waiting: number;
  max_concurrency: number;
  kv_usage: number;
  kv_capacity_tokens: number;
  last_heartbeat_at: string | null;
}

export interface NodeJson {
  id: string;
  region: string;
  url: string | null;
  models: string[];
  drained: boolean;
  /** Version of the secret the edge signs with. */
  key_version: number;
  /** Version of a rotated secret waiting for the agent's first heartbeat with it, or null. */
  pending_key_version: number | null;
  created_at: string | null;
  updated_at: string | null;
  live?: LiveJson[];
}

export interface NodeWithSecretJson extends NodeJson {
  /** The node's new secret: shown this once. */
  secret: string;
  /** Registration: advice about models nobody configured yet. */
  warnings?: string[];
  /** Rotation: whether the new secret replaced the old one at once. */
  immediate?: boolean;
}

export interface ModelJson {
  name: string;
  pool: string;
  default_strategy: string;
  allow_all_tenants: boolean;
  /** `tenant`: prompts match only their own tenant's cached prefixes; `shared`: one namespace. */
  prefix_sharing: "tenant" | "shared";
  tenants: string[];
  created_at: string | null;
}

export interface RegionJson {
  id: string;
  latitude: number;
  longitude: number;
  created_at: string | null;
  updated_at: string | null;
}

export interface DeletedJson {
  id?: string;
  name?: string;
  deleted: boolean;
}
