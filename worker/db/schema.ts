/**
 * D1 schema (drizzle). The slow-path source of truth: tenants, their API keys (hashes only),
 * models and who may use them, and the nodes the edge may route to. Nothing here changes per
 * token; hot state lives in pool Durable Objects. Every table is described in docs/storage-schema.md.
 */
import { index, integer, primaryKey, real, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";

export const tenants = sqliteTable(
  "tenants",
  {
    id: text("id").primaryKey(),
    name: text("name").notNull(),
    createdAt: integer("created_at").notNull(),
    /** Set when the tenant is disabled: every key of it stops working. */
    disabledAt: integer("disabled_at"),
    /** Fair-share weight: a tenant of weight 2 gets twice the service of weight 1 under contention. */
    weight: real("weight").notNull().default(1),
    /** Requests per minute (sliding 60 s); null: unlimited. */
    rpmLimit: integer("rpm_limit"),
    /** Tokens (prompt + completion) per minute (sliding 60 s); null: unlimited. */
    tpmLimit: integer("tpm_limit"),
    /** Tokens per budget period; null: unlimited. */
    tokenBudget: integer("token_budget"),
    /** Calendar period of the token budget, in UTC. */
    budgetPeriod: text("budget_period", { enum: ["day", "month"] }).notNull().default("month"),
    /** Completion tokens reserved for a request that sets no max_tokens; null: the edge default. */
    defaultMaxTokens: integer("default_max_tokens"),
  },
  (t) => [uniqueIndex("tenants_name_unique").on(t.name)],
);

export const apiKeys = sqliteTable(
  "api_keys",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    /** First characters of the key, shown in listings so operators can tell keys apart. */
    prefix: text("prefix").notNull(),
    /** SHA-256 (hex) of the whole key; the plaintext is never stored. */
    hash: text("hash").notNull(),
    createdAt: integer("created_at").notNull(),
    expiresAt: integer("expires_at"),
    revokedAt: integer("revoked_at"),
  },
  (t) => [uniqueIndex("api_keys_hash_unique").on(t.hash), index("api_keys_tenant_idx").on(t.tenantId)],
);

export const models = sqliteTable("models", {
  /** Name clients put in `model`. */
  name: text("name").primaryKey(),
  /** Pool object that routes this model (several models may share one). */
  pool: text("pool").notNull(),
  /** Strategy used when the request names none (`routing-strategy` header). */
  defaultStrategy: text("default_strategy").notNull(),
  /** 1: every tenant may use it; 0: only tenants listed in model_access. */
  allowAllTenants: integer("allow_all_tenants", { mode: "boolean" }).notNull(),
  /**
   * Whose prompt prefixes a request may match: `tenant` (default: each tenant only its own, so no
   * tenant can probe another's cached prompts) or `shared` (one namespace, for public system prompts).
   */
  prefixSharing: text("prefix_sharing", { enum: ["tenant", "shared"] }).notNull().default("tenant"),
  /**
   * How requests wait when no node has room: `vtc` (fair between tenants), `fcfs` (first come,
   * first served) or `off` (never wait at the edge: nodes queue).
   */
  admissionPolicy: text("admission_policy", { enum: ["vtc", "fcfs", "off"] }).notNull().default("vtc"),
  /** Longest wait at the edge before 429. */
  maxQueueWaitMs: integer("max_queue_wait_ms").notNull().default(30_000),
  /** Requests in flight per node before new ones wait; null: what each node reports it can run. */
  nodeLimit: integer("node_limit"),
  /** VTC's charge per input token (w_p) and per output token (w_q). */
  vtcInputWeight: real("vtc_input_weight").notNull().default(1),
  vtcOutputWeight: real("vtc_output_weight").notNull().default(2),
  /** How far over its limit a node may go for tenants below their fair share (fraction of the limit; 0: off). */
  vtcHeadroom: real("vtc_headroom").notNull().default(0.1),
  createdAt: integer("created_at").notNull(),
  updatedAt: integer("updated_at").notNull(),
});

export const modelAccess = sqliteTable(
  "model_access",
  {
    model: text("model")
      .notNull()
      .references(() => models.name, { onDelete: "cascade" }),
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id, { onDelete: "cascade" }),
  },
  (t) => [primaryKey({ columns: [t.model, t.tenantId] }), index("model_access_tenant_idx").on(t.tenantId)],
);

export const nodes = sqliteTable("nodes", {
  id: text("id").primaryKey(),
  region: text("region").notNull(),
  /** Where the edge reaches the agent; when null the agent's advertised URL is used. */
  url: text("url"),
  /**
   * The node's active signing secret as a reference, never the secret itself:
   * `derived:<version>:<salt>` (an HMAC of the NODE_SECRET_KEY Worker secret; worker/nodes/node-secrets.ts).
   */
  secretRef: text("secret_ref").notNull(),
  /** A rotated secret not yet in use: promoted when the agent first signs a heartbeat with it. */
  nextSecretRef: text("next_secret_ref"),
  /** Drained nodes finish what they run but get no new requests. */
  drained: integer("drained", { mode: "boolean" }).notNull(),
  createdAt: integer("created_at").notNull(),
  updatedAt: integer("updated_at").notNull(),
});

export const nodeModels = sqliteTable(
  "node_models",
  {
    nodeId: text("node_id")
      .notNull()
      .references(() => nodes.id, { onDelete: "cascade" }),
    /** A model name; need not be configured yet (the node is simply not used for it until it is). */
    model: text("model").notNull(),
  },
  (t) => [primaryKey({ columns: [t.nodeId, t.model] }), index("node_models_model_idx").on(t.model)],
);

export type TenantRow = typeof tenants.$inferSelect;
export type ApiKeyRow = typeof apiKeys.$inferSelect;
export type ModelRow = typeof models.$inferSelect;
export type NodeRow = typeof nodes.$inferSelect;

export const regions = sqliteTable("regions", {
  /** Region slug, as nodes are registered with. */
  id: text("id").primaryKey(),
  /** Where the region's nodes are, for sending callers to the nearest region. */
  latitude: real("latitude").notNull(),
  longitude: real("longitude").notNull(),
  createdAt: integer("created_at").notNull(),
  updatedAt: integer("updated_at").notNull(),
});

export type RegionRow = typeof regions.$inferSelect;

/**
 * Usage per tenant, model and hour (UTC), aggregated from tenant ledgers. Every request is counted
 * exactly once: ledgers flush in numbered batches and `usage_flushes` refuses a batch twice.
 */
export const usageHourly = sqliteTable(
  "usage_hourly",
  {
    tenantId: text("tenant_id").notNull(),
    model: text("model").notNull(),
    /** Start of the hour, epoch ms. */
    hour: integer("hour").notNull(),
    requests: integer("requests").notNull(),
    promptTokens: integer("prompt_tokens").notNull(),
    completionTokens: integer("completion_tokens").notNull(),
    cachedTokens: integer("cached_tokens").notNull(),
    /** Requests whose counts were estimated (the stream broke before the engine's usage arrived). */
    estimatedRequests: integer("estimated_requests").notNull(),
    /** Requests that ended in an error or were cut off. */
    failedRequests: integer("failed_requests").notNull(),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.model, t.hour] })],
);

/** Ledger flush batches already applied to usage_hourly (the idempotency key of a flush). */
export const usageFlushes = sqliteTable("usage_flushes", {
  batchId: text("batch_id").primaryKey(),
  tenantId: text("tenant_id").notNull(),
  events: integer("events").notNull(),
  flushedAt: integer("flushed_at").notNull(),
});
