/**
 * One pool object per model pool: the Durable Object around PoolCore. It is the single writer for
 * the pool's node registry, in-flight leases and routing decisions, persists them in its SQLite
 * (so a restart loses neither), and keeps a sweep alarm armed while there is anything to sweep.
 */
import { DurableObject } from "cloudflare:workers";
import { DEFAULT_HEARTBEAT_INTERVAL_MS, HEARTBEAT_MISSES, type KvCacheReport, kvCacheReportSchema } from "../../protocol/heartbeat";
import type { Env } from "../env";
import { numberVar } from "../env";
import { type Lease, type NodeEntry, PoolCore, type PoolStore } from "./pool-core";
import { migrate } from "./storage";
import type { PoolHeartbeat, PoolHeartbeatReply, PoolSnapshot, ReleaseInput, RouteInput, RouteResult } from "./types";

const SWEEP_INTERVAL_MS = 15_000;

function sqlStore(sql: SqlStorage): PoolStore {
  return {
    putNode: (n) =>
      sql.exec(
        `INSERT OR REPLACE INTO pool_nodes (node_id, model, region, url, engine, healthy, running, waiting, max_concurrency,
           kv_usage, kv_capacity_tokens, last_heartbeat_at, sent_at, draining, left_at, failed_at, kv_evicted_tokens, kv_epoch,
           cache_server, kv_cache)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        n.nodeId, n.model, n.region, n.url, n.engine, n.healthy ? 1 : 0, n.running, n.waiting, n.maxConcurrency, n.kvUsage,
        n.kvCapacityTokens, n.lastHeartbeatAt, n.sentAt, n.draining ? 1 : 0, n.leftAt, n.failedAt, n.kvEvictedTokens, n.kvEpoch,
        n.cacheServer, n.kvCache === null ? null : JSON.stringify(n.kvCache),
      ),
    deleteNode: (nodeId, model) => sql.exec("DELETE FROM pool_nodes WHERE node_id = ? AND model = ?", nodeId, model),
    putLease: (id, l) =>
      sql.exec(
        `INSERT OR REPLACE INTO inflight (request_id, node_id, model, tenant_id, started_at, expires_at, prompt_tokens, cached_tokens, charged, tenant_weight, output_charged)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        id, l.nodeId, l.model, l.tenantId, l.startedAt, l.expiresAt, l.promptTokens, l.cachedTokens, l.charged, l.tenantWeight, l.outputCharged,
      ),
    deleteLease: (id) => sql.exec("DELETE FROM inflight WHERE request_id = ?", id),
    putCounters: (entries) => {
      for (const [tenant, counter] of entries) sql.exec("INSERT OR REPLACE INTO vtc_counters (tenant_id, counter) VALUES (?, ?)", tenant, counter);
    },
  };
}

/** A stored tier report; one that no longer parses (schema moved on) is dropped, not fatal. */
function parseKvCache(v: SqlStorageValue | undefined): KvCacheReport | null {
  if (typeof v !== "string") return null;
  try {
    const r = kvCacheReportSchema.safeParse(JSON.parse(v));
    return r.success ? r.data : null;
  } catch {
    return null;
  }
}

function readNodes(sql: SqlStorage): NodeEntry[] {
  return sql.exec("SELECT * FROM pool_nodes").toArray().map((r) => ({
    nodeId: String(r.node_id),
    model: String(r.model),
    region: String(r.region),
    url: String(r.url),
    engine: String(r.engine),
    healthy: r.healthy === 1,
    running: Number(r.running),
    waiting: Number(r.waiting),
    maxConcurrency: Number(r.max_concurrency),
    kvUsage: Number(r.kv_usage),
    kvCapacityTokens: Number(r.kv_capacity_tokens),
    lastHeartbeatAt: Number(r.last_heartbeat_at),
    sentAt: Number(r.sent_at),
    draining: r.draining === 1,
    leftAt: r.left_at === null ? null : Number(r.left_at),
    failedAt: r.failed_at === null ? null : Number(r.failed_at),
    kvEvictedTokens: r.kv_evicted_tokens === null ? null : Number(r.kv_evicted_tokens),
    kvEpoch: r.kv_epoch === null ? null : String(r.kv_epoch),
    cacheServer: r.cache_server === null ? null : String(r.cache_server),
    kvCache: parseKvCache(r.kv_cache),
  }));
}

function readLeases(sql: SqlStorage): Array<[string, Lease]> {
  return sql.exec("SELECT * FROM inflight").toArray().map((r) => [
    String(r.request_id),
    {
      nodeId: String(r.node_id),
      model: String(r.model),
      tenantId: String(r.tenant_id),
      startedAt: Number(r.started_at),
      expiresAt: Number(r.expires_at),
      promptTokens: Number(r.prompt_tokens),
      cachedTokens: Number(r.cached_tokens),
      charged: Number(r.charged),
      tenantWeight: Number(r.tenant_weight),
      outputCharged: Number(r.output_charged),
    },
  ]);
}

export class PoolObject extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private readonly core: PoolCore;
  private poolName = "";

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    const interval = numberVar(env.HEARTBEAT_INTERVAL_MS, DEFAULT_HEARTBEAT_INTERVAL_MS);
    // SQLite in a Durable Object is synchronous, so the object is fully loaded before the
    // constructor returns and no event can see it half-built.
    migrate(this.sql);
    this.core = new PoolCore({
      staleAfterMs: interval * HEARTBEAT_MISSES + 1_000,
      // Releases land milliseconds after a response ends; ten beats is far beyond any lag.
      orphanLeaseAfterMs: Math.max(10_000, 10 * interval),
      store: sqlStore(this.sql),
    });
    this.core.restore(
      readNodes(this.sql),
      readLeases(this.sql),
      this.sql.exec("SELECT tenant_id, counter FROM vtc_counters").toArray().map((r) => [String(r.tenant_id), Number(r.counter)] as [string, number]),
    );
    const name = this.sql.exec("SELECT value FROM pool_meta WHERE key = 'name'").toArray()[0];
    if (name) this.poolName = String(name.value);
  }

  private rememberName(pool: string | undefined): void {
    if (!pool || this.poolName === pool) return;
    this.poolName = pool;
    this.sql.exec("INSERT OR REPLACE INTO pool_meta (key, value) VALUES ('name', ?)", pool);
  }

  private async ensureSweep(): Promise<void> {
    if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(Date.now() + SWEEP_INTERVAL_MS);
  }

  /** Records a heartbeat for every engine of the node that serves a model of this pool. */
  async heartbeat(hb: PoolHeartbeat, pool?: string): Promise<PoolHeartbeatReply> {
    this.rememberName(pool);
    const out = this.core.heartbeat(hb);
    await this.ensureSweep();
    return out;
  }

  /**
   * Picks a node and counts the request against it; when no node has room the call waits in the
   * pool's admission queue (fair between tenants) until one does, its wait bound passes (429), or
   * the worker cancels it because the client left.
   */
  async route(input: RouteInput): Promise<RouteResult> {
    const result = await new Promise<RouteResult>((resolve) => {
      this.core.submit(input, resolve);
      this.armDeadlines();
    });
    if (result.ok) await this.ensureSweep();
    return result;
  }

  /** Output progress of streaming requests, batched per worker isolate. */
  async progress(updates: Array<[string, number]>): Promise<void> {
    this.core.progressBatch(updates);
  }

  /** The client of a waiting request went away: it leaves the queue. */
  async cancelWait(requestId: string): Promise<boolean> {
    return this.core.cancelWait(requestId);
  }

  private deadlineTimer: ReturnType<typeof setTimeout> | undefined;

  /** Wakes up at the earliest wait deadline to refuse what waited too long. */
  private armDeadlines(): void {
    if (this.deadlineTimer !== undefined) return;
    const next = this.core.expireWaiting();
    if (next === undefined) return;
    this.deadlineTimer = setTimeout(() => {
      this.deadlineTimer = undefined;
      this.armDeadlines();
    }, Math.max(1, next - Date.now()));
  }

  async release(input: ReleaseInput): Promise<{ released: boolean }> {
    return this.core.release(input);
  }

  async reportFailure(requestId: string, nodeId: string): Promise<void> {
    this.core.reportFailure(requestId, nodeId);
  }

  async setDrained(nodeId: string, drained: boolean): Promise<void> {
    this.core.setDrained(nodeId, drained);
  }

  async removeNode(nodeId: string): Promise<void> {
    this.core.removeNode(nodeId);
  }

  async snapshot(): Promise<PoolSnapshot> {
    return this.core.snapshot(this.poolName);
  }

  override async alarm(): Promise<void> {
    if (this.core.sweep()) await this.ctx.storage.setAlarm(Date.now() + SWEEP_INTERVAL_MS);
  }
}
