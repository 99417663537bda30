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
  weight: number;
  rpm_limit: number | null;
  tpm_limit: number | null;
  token_budget: number | null;
  budget_period: "day" | "month";
  default_max_tokens: number | null;
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
  admission_policy: "vtc" | "fcfs" | "off";
  max_queue_wait_ms: number;
  node_limit: number | null;
  vtc_input_weight: number;
  vtc_output_weight: number;
  vtc_headroom: number;
  created_at: string | null;
}

export interface UsageResultJson {
  model: string | null;
  num_model_requests: number;
  input_tokens: number;
  output_tokens: number;
  input_cached_tokens: number;
  estimated_requests: number;
  failed_requests: number;
}

export interface UsageJson {
  tenant_id: string;
  start_time: number;
  end_time: number;
  bucket_width: "1h" | "1d";
  data: Array<{ start_time: number; end_time: number; results: UsageResultJson[] }>;
  totals: UsageResultJson;
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
