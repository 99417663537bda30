/**
 * One pool object per model pool: the single writer for the pool's node registry (fed by agent
 * heartbeats), the requests in flight on each node (counted at decision time, released when the
 * stream ends or breaks) and the routing decision itself. State is in the object's SQLite so a
 * restart loses neither the registry nor the in-flight leases; hot copies live in memory.
 */
import { DurableObject } from "cloudflare:workers";
import { DEFAULT_HEARTBEAT_INTERVAL_MS, HEARTBEAT_MISSES } from "../../protocol/heartbeat";
import type { Env } from "../env";
import { numberVar } from "../env";
import { decide } from "../routing/decide";
import { buildStrategies } from "../routing/registry";
import { formatStrategySpec } from "../routing/spec";
import type { NodeView, RoutingContext, RoutingStrategy } from "../routing/strategy";
import { migrate } from "./storage";
import type { NodeStatus, PoolHeartbeat, PoolNodeSnapshot, PoolSnapshot, ReleaseInput, RouteInput, RouteResult } from "./types";

interface NodeEntry {
  nodeId: string;
  model: string;
  region: string;
  url: string;
  engine: string;
  healthy: boolean;
  running: number;
  waiting: number;
  maxConcurrency: number;
  kvUsage: number;
  kvCapacityTokens: number;
  lastHeartbeatAt: number;
  sentAt: number;
  draining: boolean;
  leftAt: number | null;
  failedAt: number | null;
}

interface Lease {
  nodeId: string;
  model: string;
  tenantId: string;
  startedAt: number;
  expiresAt: number;
}

/** A request lease outlives any sane stream; expiry only cleans up after a lost release. */
const LEASE_MS = 30 * 60_000;
/** After a failed attempt, a node gets no traffic for this long unless it proves itself again. */
const FAILURE_COOLDOWN_MS = 5_000;
/** Nodes silent this long are forgotten entirely (they re-register with their next heartbeat). */
const FORGET_AFTER_MS = 10 * 60_000;
const SWEEP_INTERVAL_MS = 15_000;

const key = (nodeId: string, model: string) => `${nodeId}\u0000${model}`;

export class PoolObject extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private readonly nodes = new Map<string, NodeEntry>();
  private readonly leases = new Map<string, Lease>();
  private readonly inflightByNode = new Map<string, number>();
  private readonly strategies: Map<string, RoutingStrategy> = buildStrategies();
  private readonly staleAfterMs: number;
  private poolName = "";

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    const interval = numberVar(env.HEARTBEAT_INTERVAL_MS, DEFAULT_HEARTBEAT_INTERVAL_MS);
    this.staleAfterMs = interval * HEARTBEAT_MISSES + 1_000;
    // SQLite in a Durable Object is synchronous, so the object is fully loaded before the
    // constructor returns and no event can see it half-built.
    migrate(this.sql);
    this.load();
  }

  private load(): void {
    for (const r of this.sql.exec("SELECT * FROM pool_nodes")) {
      const entry: NodeEntry = {
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
      };
      this.nodes.set(key(entry.nodeId, entry.model), entry);
    }
    for (const r of this.sql.exec("SELECT * FROM inflight")) {
      this.addLease(String(r.request_id), {
        nodeId: String(r.node_id),
        model: String(r.model),
        tenantId: String(r.tenant_id),
        startedAt: Number(r.started_at),
        expiresAt: Number(r.expires_at),
      });
    }
    const name = this.sql.exec("SELECT value FROM pool_meta WHERE key = 'name'").toArray()[0];
    if (name) this.poolName = String(name.value);
  }

  private rememberName(pool: string | undefined): void {
    if (!pool || this.poolName === pool) return;
    this.poolName = pool;
    this.sql.exec("INSERT OR REPLACE INTO pool_meta (key, value) VALUES ('name', ?)", pool);
  }

  private addLease(requestId: string, lease: Lease): void {
    this.leases.set(requestId, lease);
    this.inflightByNode.set(lease.nodeId, (this.inflightByNode.get(lease.nodeId) ?? 0) + 1);
  }

  private dropLease(requestId: string): Lease | undefined {
    const lease = this.leases.get(requestId);
    if (!lease) return undefined;
    this.leases.delete(requestId);
    const left = (this.inflightByNode.get(lease.nodeId) ?? 1) - 1;
    if (left <= 0) this.inflightByNode.delete(lease.nodeId);
    else this.inflightByNode.set(lease.nodeId, left);
    this.sql.exec("DELETE FROM inflight WHERE request_id = ?", requestId);
    return lease;
  }

  private status(n: NodeEntry, now: number): NodeStatus {
    if (n.leftAt !== null && n.leftAt >= n.lastHeartbeatAt) return "left";
    if (now - n.lastHeartbeatAt > this.staleAfterMs) return "lost";
    if (!n.healthy) return "unhealthy";
    if (n.draining) return "draining";
    if (n.failedAt !== null && now - n.failedAt < FAILURE_COOLDOWN_MS) return "failing";
    return "healthy";
  }

  private async ensureSweep(): Promise<void> {
    if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(Date.now() + SWEEP_INTERVAL_MS);
  }

  /** Records a heartbeat for every engine of the node that serves a model of this pool. */
  async heartbeat(hb: PoolHeartbeat, pool?: string): Promise<{ draining: boolean }> {
    this.rememberName(pool);
    const now = Date.now();
    const reported = new Set<string>();
    for (const e of hb.engines) {
      const k = key(hb.nodeId, e.model);
      reported.add(k);
      const prev = this.nodes.get(k);
      if (prev && hb.sentAt < prev.sentAt) continue;
      const entry: NodeEntry = {
        nodeId: hb.nodeId,
        model: e.model,
        region: hb.region,
        url: hb.url,
        engine: e.engine,
        healthy: e.healthy,
        running: e.running,
        waiting: e.waiting,
        maxConcurrency: e.maxConcurrency,
        kvUsage: e.kvUsage,
        kvCapacityTokens: e.kvCapacityTokens,
        lastHeartbeatAt: now,
        sentAt: hb.sentAt,
        draining: hb.drained,
        leftAt: hb.leaving ? now : null,
        // The cool-down after a failed attempt runs its course even while beats arrive: an agent can
        // beat while its request path is broken.
        failedAt: prev?.failedAt ?? null,
      };
      this.nodes.set(k, entry);
      this.sql.exec(
        `INSERT OR REPLACE INTO pool_nodes (node_id, model, region, url, engine, healthy, running, waiting, max_concurrency,
           kv_usage, kv_capacity_tokens, last_heartbeat_at, sent_at, draining, left_at, failed_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        entry.nodeId, entry.model, entry.region, entry.url, entry.engine, entry.healthy ? 1 : 0, entry.running, entry.waiting,
        entry.maxConcurrency, entry.kvUsage, entry.kvCapacityTokens, entry.lastHeartbeatAt, entry.sentAt, entry.draining ? 1 : 0,
        entry.leftAt, entry.failedAt,
      );
    }
    // Models the node stopped reporting are gone from it.
    for (const [k, n] of this.nodes) {
      if (n.nodeId === hb.nodeId && !reported.has(k)) this.forget(n);
    }
    await this.ensureSweep();
    return { draining: hb.drained };
  }

  private forget(n: NodeEntry): void {
    this.nodes.delete(key(n.nodeId, n.model));
    this.sql.exec("DELETE FROM pool_nodes WHERE node_id = ? AND model = ?", n.nodeId, n.model);
  }

  private views(model: string, now: number, exclude: ReadonlySet<string>): { candidates: NodeView[]; known: number } {
    const candidates: NodeView[] = [];
    let known = 0;
    for (const n of this.nodes.values()) {
      if (n.model !== model) continue;
      known++;
      if (exclude.has(n.nodeId) || this.status(n, now) !== "healthy") continue;
      candidates.push({
        id: n.nodeId,
        region: n.region,
        url: n.url,
        inflight: this.inflightByNode.get(n.nodeId) ?? 0,
        running: n.running,
        waiting: n.waiting,
        maxConcurrency: n.maxConcurrency,
        kvUsage: n.kvUsage,
        kvCapacityTokens: n.kvCapacityTokens,
        lastHeartbeatAt: n.lastHeartbeatAt,
      });
    }
    // Stable order keeps tie-breaking and weighted combination independent of Map history.
    candidates.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return { candidates, known };
  }

  /** Picks a node and counts the request against it before answering. */
  async route(input: RouteInput): Promise<RouteResult> {
    const now = Date.now();
    const { candidates, known } = this.views(input.model, now, new Set(input.exclude ?? []));
    const ctx: RoutingContext = { requestId: input.requestId, tenantId: input.tenantId, model: input.model, now, random: Math.random };
    const decision = decide(ctx, candidates, input.strategies, this.strategies);
    if (!decision) {
      return { ok: false, reason: known === 0 ? "no_nodes" : "no_healthy_nodes", retryAfterSeconds: Math.ceil(this.staleAfterMs / 1000) };
    }
    const { node, used } = decision;
    for (const s of used) s.onRouted?.(ctx, node);
    const lease: Lease = { nodeId: node.id, model: input.model, tenantId: input.tenantId, startedAt: now, expiresAt: now + LEASE_MS };
    this.dropLease(input.requestId); // a retried request holds at most one lease
    this.addLease(input.requestId, lease);
    this.sql.exec(
      "INSERT OR REPLACE INTO inflight (request_id, node_id, model, tenant_id, started_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
      input.requestId, lease.nodeId, lease.model, lease.tenantId, lease.startedAt, lease.expiresAt,
    );
    await this.ensureSweep();
    return { ok: true, nodeId: node.id, url: node.url, region: node.region, strategy: formatStrategySpec(input.strategies) };
  }

  /** The request's stream ended (completed, cancelled or broken): its node is free of it. */
  async release(input: ReleaseInput): Promise<{ released: boolean }> {
    return { released: this.dropLease(input.requestId) !== undefined };
  }

  /** An attempt on `nodeId` failed before any byte came back: release it and cool the node down. */
  async reportFailure(requestId: string, nodeId: string): Promise<void> {
    this.dropLease(requestId);
    const now = Date.now();
    for (const n of this.nodes.values()) {
      if (n.nodeId !== nodeId) continue;
      n.failedAt = now;
      this.sql.exec("UPDATE pool_nodes SET failed_at = ? WHERE node_id = ?", now, nodeId);
    }
  }

  /** Operator drain: takes effect at once rather than at the node's next heartbeat. */
  async setDrained(nodeId: string, drained: boolean): Promise<void> {
    for (const n of this.nodes.values()) if (n.nodeId === nodeId) n.draining = drained;
    this.sql.exec("UPDATE pool_nodes SET draining = ? WHERE node_id = ?", drained ? 1 : 0, nodeId);
  }

  async removeNode(nodeId: string): Promise<void> {
    for (const n of [...this.nodes.values()]) if (n.nodeId === nodeId) this.forget(n);
  }

  async snapshot(): Promise<PoolSnapshot> {
    const now = Date.now();
    const nodes: PoolNodeSnapshot[] = [...this.nodes.values()]
      .map((n) => ({
        nodeId: n.nodeId,
        model: n.model,
        region: n.region,
        url: n.url,
        engine: n.engine,
        status: this.status(n, now),
        inflight: this.inflightByNode.get(n.nodeId) ?? 0,
        running: n.running,
        waiting: n.waiting,
        maxConcurrency: n.maxConcurrency,
        kvUsage: n.kvUsage,
        kvCapacityTokens: n.kvCapacityTokens,
        lastHeartbeatAt: n.lastHeartbeatAt,
      }))
      .sort((a, b) => a.nodeId.localeCompare(b.nodeId) || a.model.localeCompare(b.model));
    return { pool: this.poolName, nodes, inflight: this.leases.size };
  }

  /** Periodic sweep: expire leases whose release was lost, forget long-silent nodes. */
  override async alarm(): Promise<void> {
    const now = Date.now();
    for (const [id, lease] of [...this.leases]) if (lease.expiresAt <= now) this.dropLease(id);
    for (const n of [...this.nodes.values()]) if (now - n.lastHeartbeatAt > FORGET_AFTER_MS) this.forget(n);
    if (this.nodes.size > 0 || this.leases.size > 0) await this.ctx.storage.setAlarm(now + SWEEP_INTERVAL_MS);
  }
}
