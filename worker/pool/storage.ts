/**
 * The pool object's SQLite schema. The version is kept in `pool_meta` (DO SQLite refuses
 * `PRAGMA user_version`); migrations run in the constructor under blockConcurrencyWhile.
 * Documented in docs/storage-schema.md ("Pool Durable Object").
 */
const MIGRATIONS: string[] = [
  `CREATE TABLE IF NOT EXISTS pool_nodes (
     node_id TEXT NOT NULL,
     model TEXT NOT NULL,
     region TEXT NOT NULL,
     url TEXT NOT NULL,
     engine TEXT NOT NULL,
     healthy INTEGER NOT NULL,
     running INTEGER NOT NULL,
     waiting INTEGER NOT NULL,
     max_concurrency INTEGER NOT NULL,
     kv_usage REAL NOT NULL,
     kv_capacity_tokens INTEGER NOT NULL,
     last_heartbeat_at INTEGER NOT NULL,
     sent_at INTEGER NOT NULL,
     draining INTEGER NOT NULL,
     left_at INTEGER,
     failed_at INTEGER,
     PRIMARY KEY (node_id, model)
   );
   CREATE TABLE IF NOT EXISTS inflight (
     request_id TEXT PRIMARY KEY,
     node_id TEXT NOT NULL,
     model TEXT NOT NULL,
     tenant_id TEXT NOT NULL,
     started_at INTEGER NOT NULL,
     expires_at INTEGER NOT NULL
   );
   CREATE INDEX IF NOT EXISTS inflight_expiry ON inflight (expires_at);`,
  // v2: token estimates on leases (routing load), engine cache feedback on nodes.
  `ALTER TABLE inflight ADD COLUMN prompt_tokens INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE inflight ADD COLUMN cached_tokens INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE pool_nodes ADD COLUMN kv_evicted_tokens INTEGER;
   ALTER TABLE pool_nodes ADD COLUMN kv_epoch TEXT;`,
  // v3: fairness — VTC counters per tenant; each lease's admission charge and tenant weight.
  `CREATE TABLE IF NOT EXISTS vtc_counters (tenant_id TEXT PRIMARY KEY, counter REAL NOT NULL);
   ALTER TABLE inflight ADD COLUMN charged REAL NOT NULL DEFAULT 0;
   ALTER TABLE inflight ADD COLUMN tenant_weight REAL NOT NULL DEFAULT 1;
   ALTER TABLE inflight ADD COLUMN output_charged INTEGER NOT NULL DEFAULT 0;`,
  // v4: KV tiers — the node's advertised L2 cache server and its last tier report (JSON).
  `ALTER TABLE pool_nodes ADD COLUMN cache_server TEXT;
   ALTER TABLE pool_nodes ADD COLUMN kv_cache TEXT;`,
];

export function migrate(sql: SqlStorage): void {
  sql.exec("CREATE TABLE IF NOT EXISTS pool_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
  const row = sql.exec("SELECT value FROM pool_meta WHERE key = 'schema_version'").toArray()[0];
  const current = row ? Number(row.value) : 0;
  for (let v = current; v < MIGRATIONS.length; v++) {
    sql.exec(MIGRATIONS[v] as string);
    sql.exec("INSERT OR REPLACE INTO pool_meta (key, value) VALUES ('schema_version', ?)", String(v + 1));
  }
}
