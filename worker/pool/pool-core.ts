/**
 * The pool's logic without the Durable Object: node registry fed by heartbeats, in-flight leases
 * counted at decision time, and the routing decision. The Durable Object wraps it with SQLite
 * persistence; the emulator's discrete-event mode runs it on a virtual clock with no storage, so
 * studies exercise exactly the code production runs.
 */
import { decide } from "../routing/decide";
import { buildStrategies } from "../routing/registry";
import { formatStrategySpec } from "../routing/spec";
import type { NodeView, RoutingContext, RoutingStrategy } from "../routing/strategy";
import type { NodeStatus, PoolHeartbeat, PoolNodeSnapshot, PoolSnapshot, ReleaseInput, RouteInput, RouteResult } from "./types";

export interface NodeEntry {
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

export interface Lease {
  nodeId: string;
  model: string;
  tenantId: string;
  startedAt: number;
  expiresAt: number;
}

/** Where the core's durable state goes; every call happens inside the state change it records. */
export interface PoolStore {
  putNode(n: NodeEntry): void;
  deleteNode(nodeId: string, model: string): void;
  putLease(requestId: string, lease: Lease): void;
  deleteLease(requestId: string): void;
}

export const memoryStore: PoolStore = { putNode() {}, deleteNode() {}, putLease() {}, deleteLease() {} };

export interface PoolCoreOptions {
  /** A node silent for longer is `lost`. */
  staleAfterMs: number;
  store?: PoolStore;
  now?: () => number;
  random?: () => number;
  /** A lease outlives any sane stream; expiry only cleans up after a lost release. */
  leaseMs?: number;
  /** After a failed attempt a node gets no traffic for this long. */
  failureCooldownMs?: number;
  /** Nodes silent this long are forgotten entirely. */
  forgetAfterMs?: number;
}

const key = (nodeId: string, model: string) => `${nodeId}\u0000${model}`;

export class PoolCore {
  private readonly nodes = new Map<string, NodeEntry>();
  private readonly leases = new Map<string, Lease>();
  private readonly inflightByNode = new Map<string, number>();
  private readonly strategies: Map<string, RoutingStrategy> = buildStrategies();
  private readonly store: PoolStore;
  private readonly now: () => number;
  private readonly random: () => number;
  readonly staleAfterMs: number;
  private readonly leaseMs: number;
  private readonly failureCooldownMs: number;
  private readonly forgetAfterMs: number;

  constructor(opts: PoolCoreOptions) {
    this.staleAfterMs = opts.staleAfterMs;
    this.store = opts.store ?? memoryStore;
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
    this.leaseMs = opts.leaseMs ?? 30 * 60_000;
    this.failureCooldownMs = opts.failureCooldownMs ?? 5_000;
    this.forgetAfterMs = opts.forgetAfterMs ?? 10 * 60_000;
  }

  /** Restores persisted state (no store writes). */
  restore(nodes: Iterable<NodeEntry>, leases: Iterable<[string, Lease]>): void {
    for (const n of nodes) this.nodes.set(key(n.nodeId, n.model), n);
    for (const [id, lease] of leases) this.addLease(id, lease);
  }

  get size(): { nodes: number; leases: number } {
    return { nodes: this.nodes.size, leases: this.leases.size };
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
    this.store.deleteLease(requestId);
    return lease;
  }

  status(n: NodeEntry, now = this.now()): NodeStatus {
    if (n.leftAt !== null && n.leftAt >= n.lastHeartbeatAt) return "left";
    if (now - n.lastHeartbeatAt > this.staleAfterMs) return "lost";
    if (!n.healthy) return "unhealthy";
    if (n.draining) return "draining";
    if (n.failedAt !== null && now - n.failedAt < this.failureCooldownMs) return "failing";
    return "healthy";
  }

  /** Records a heartbeat for every engine of the node that serves a model of this pool. */
  heartbeat(hb: PoolHeartbeat): { draining: boolean } {
    const now = this.now();
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
      this.store.putNode(entry);
    }
    // Models the node stopped reporting are gone from it.
    for (const [k, n] of this.nodes) if (n.nodeId === hb.nodeId && !reported.has(k)) this.forget(n);
    return { draining: hb.drained };
  }

  private forget(n: NodeEntry): void {
    this.nodes.delete(key(n.nodeId, n.model));
    this.store.deleteNode(n.nodeId, n.model);
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
  route(input: RouteInput): RouteResult {
    const now = this.now();
    const { candidates, known } = this.views(input.model, now, new Set(input.exclude ?? []));
    const ctx: RoutingContext = { requestId: input.requestId, tenantId: input.tenantId, model: input.model, now, random: this.random };
    const decision = decide(ctx, candidates, input.strategies, this.strategies);
    if (!decision) {
      return { ok: false, reason: known === 0 ? "no_nodes" : "no_healthy_nodes", retryAfterSeconds: Math.ceil(this.staleAfterMs / 1000) };
    }
    const { node, used } = decision;
    for (const s of used) s.onRouted?.(ctx, node);
    const lease: Lease = { nodeId: node.id, model: input.model, tenantId: input.tenantId, startedAt: now, expiresAt: now + this.leaseMs };
    this.dropLease(input.requestId); // a retried request holds at most one lease
    this.addLease(input.requestId, lease);
    this.store.putLease(input.requestId, lease);
    return { ok: true, nodeId: node.id, url: node.url, region: node.region, strategy: formatStrategySpec(input.strategies) };
  }

  /** The request's stream ended (completed, cancelled or broken): its node is free of it. */
  release(input: ReleaseInput): { released: boolean } {
    return { released: this.dropLease(input.requestId) !== undefined };
  }

  /** An attempt on `nodeId` failed before any byte came back: release it and cool the node down. */
  reportFailure(requestId: string, nodeId: string): void {
    this.dropLease(requestId);
    const now = this.now();
    for (const n of this.nodes.values()) {
      if (n.nodeId !== nodeId) continue;
      n.failedAt = now;
      this.store.putNode(n);
    }
  }

  /** Operator drain: takes effect at once rather than at the node's next heartbeat. */
  setDrained(nodeId: string, drained: boolean): void {
    for (const n of this.nodes.values()) {
      if (n.nodeId !== nodeId) continue;
      n.draining = drained;
      this.store.putNode(n);
    }
  }

  removeNode(nodeId: string): void {
    for (const n of [...this.nodes.values()]) if (n.nodeId === nodeId) this.forget(n);
  }

  snapshot(pool: string): PoolSnapshot {
    const now = this.now();
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
    return { pool, nodes, inflight: this.leases.size };
  }

  /** Expires leases whose release was lost and forgets long-silent nodes; true while work remains. */
  sweep(): boolean {
    const now = this.now();
    for (const [id, lease] of [...this.leases]) if (lease.expiresAt <= now) this.dropLease(id);
    for (const n of [...this.nodes.values()]) if (now - n.lastHeartbeatAt > this.forgetAfterMs) this.forget(n);
    return this.nodes.size > 0 || this.leases.size > 0;
  }
}
