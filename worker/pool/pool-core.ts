/**
 * The pool's logic without the Durable Object: node registry fed by heartbeats, in-flight leases
 * counted at decision time, the routing state strategies consult (prefix index, recent load), and
 * the routing decision. The Durable Object wraps it with SQLite persistence; the emulator's
 * discrete-event mode runs it on a virtual clock with no storage, so studies exercise exactly the
 * code production runs.
 */
import { AdmissionQueue, type Waiting } from "../fairness/admission-queue";
import { DEFAULT_VTC_WEIGHTS, VirtualTokenCounters } from "../fairness/vtc";
import { decide } from "../routing/decide";
import { NodeLoad } from "../routing/node-load";
import { PREBLE_WINDOW_MS } from "../routing/prefix-cache-preble";
import { PREFILL_TOKENS_PER_MS } from "../routing/prefix-cache";
import { PrefixIndex, type PrefixIndexOptions } from "../routing/prefix-index";
import { buildStrategies } from "../routing/registry";
import { TenantTokens } from "../routing/tenant-tokens";
import { formatStrategySpec } from "../routing/spec";
import type { NodeView, PoolRoutingState, RoutingContext, RoutingStrategy } from "../routing/strategy";
import type { KvCacheReport } from "../../protocol/heartbeat";
import { type AdmissionSettings, DEFAULT_VTC_HEADROOM, type NodeStatus, type PoolHeartbeat, type PoolHeartbeatReply, type PoolNodeSnapshot, type PoolSnapshot, type PoolTenantCounters, type ReleaseInput, type RouteInput, type RouteResult } from "./types";
import type { RequestPriority } from "../../protocol/priority";

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
  /** Engine's running total of evicted KV tokens at the last beat, and its cache epoch. */
  kvEvictedTokens: number | null;
  kvEpoch: string | null;
  /** The node's advertised L2 cache server and its last KV-tier report (the same on each of its rows). */
  cacheServer: string | null;
  kvCache: KvCacheReport | null;
}

export interface Lease {
  nodeId: string;
  model: string;
  tenantId: string;
  startedAt: number;
  expiresAt: number;
  /** Estimated prompt tokens, of which `cachedTokens` were expected cached on the node. */
  promptTokens: number;
  cachedTokens: number;
  /** VTC charge made so far (admission, progress), replaced by the real service at release. */
  charged: number;
  tenantWeight: number;
  /** Output tokens already charged (predicted at admission, raised by progress reports). */
  outputCharged: number;
}

/** Where the core's durable state goes; every call happens inside the state change it records. */
export interface PoolStore {
  putNode(n: NodeEntry): void;
  deleteNode(nodeId: string, model: string): void;
  putLease(requestId: string, lease: Lease): void;
  deleteLease(requestId: string): void;
  putCounters(entries: Array<[string, number]>): void;
}

export const memoryStore: PoolStore = { putNode() {}, deleteNode() {}, putLease() {}, deleteLease() {}, putCounters() {} };

/** A request waiting for room, and who to tell when it is admitted or refused. */
interface Pending {
  input: RouteInput;
  done: (result: RouteResult) => void;
}

/** Completion tokens assumed for a tenant before any of its requests finished. */
const DEFAULT_PREDICTED_OUTPUT = 256;

/** Requests a node may run over its limit for tenants below their share (0 turns it off). */
export function headroomSlots(limit: number, fraction: number): number {
  return fraction > 0 ? Math.max(1, Math.ceil(limit * fraction)) : 0;
}

/** Whether admission lets tenants below their share go over the limit at all. */
function hasHeadroom(admission: AdmissionSettings | undefined): boolean {
  return (admission?.headroom ?? DEFAULT_VTC_HEADROOM) > 0;
}

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
  /**
   * Leases older than this are checked against what their node's heartbeats say it runs; those it
   * cannot account for are dropped (see `dropOrphans`). Absent: only lease expiry cleans up.
   */
  orphanLeaseAfterMs?: number;
  prefixIndex?: PrefixIndexOptions;
}

const key = (nodeId: string, model: string) => `${nodeId}\u0000${model}`;

/** Prefill work routed to a node and not yet done, draining at the calibrated prefill rate. */
interface Backlog {
  tokens: number;
  at: number;
}

export class PoolCore {
  private readonly nodes = new Map<string, NodeEntry>();
  private readonly leases = new Map<string, Lease>();
  private readonly inflightByNode = new Map<string, number>();
  /** Requests in flight per tenant, and the weight each was admitted with (fair shares of slots). */
  private readonly inflightByTenant = new Map<string, number>();
  private readonly tenantWeights = new Map<string, number>();
  private readonly backlog = new Map<string, Backlog>();
  /** Uncached prompt tokens routed to each node since its last heartbeat (not yet in its KV report). */
  private readonly routedSinceBeat = new Map<string, number>();
  readonly routing: PoolRoutingState;
  private readonly strategies: Map<string, RoutingStrategy>;
  readonly vtc = new VirtualTokenCounters();
  private readonly queue = new AdmissionQueue<Pending>(this.vtc);
  /** Average completion length per tenant (VTC's length prediction). */
  private readonly outputAverage = new Map<string, number>();
  private readonly store: PoolStore;
  private readonly now: () => number;
  private readonly random: () => number;
  readonly staleAfterMs: number;
  private readonly leaseMs: number;
  private readonly failureCooldownMs: number;
  private readonly forgetAfterMs: number;
  private readonly orphanLeaseAfterMs: number | undefined;
  /** Operator statistics per tenant since `countersSince` (soft state, like the prefix index). */
  private readonly tenantCounters = new Map<string, PoolTenantCounters>();
  private readonly countersSince: number;

  constructor(opts: PoolCoreOptions) {
    this.staleAfterMs = opts.staleAfterMs;
    this.store = opts.store ?? memoryStore;
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
    this.leaseMs = opts.leaseMs ?? 30 * 60_000;
    this.failureCooldownMs = opts.failureCooldownMs ?? 5_000;
    this.forgetAfterMs = opts.forgetAfterMs ?? 10 * 60_000;
    this.orphanLeaseAfterMs = opts.orphanLeaseAfterMs;
    this.countersSince = this.now();
    this.routing = {
      prefixIndex: new PrefixIndex(opts.prefixIndex),
      recentLoad: new NodeLoad(60_000),
      windowLoad: new NodeLoad(PREBLE_WINDOW_MS),
      tenantTokens: new TenantTokens(),
    };
    this.strategies = buildStrategies(this.routing);
  }

  /** Restores persisted state (no store writes). The prefix index and load windows are soft state. */
  restore(nodes: Iterable<NodeEntry>, leases: Iterable<[string, Lease]>, counters: Iterable<[string, number]> = []): void {
    this.vtc.restore(counters);
    for (const n of nodes) {
      this.nodes.set(key(n.nodeId, n.model), n);
      this.routing.prefixIndex.setCapacity(n.nodeId, n.kvCapacityTokens);
    }
    for (const [id, lease] of leases) this.addLease(id, lease);
  }

  private addLease(requestId: string, lease: Lease): void {
    this.leases.set(requestId, lease);
    this.inflightByNode.set(lease.nodeId, (this.inflightByNode.get(lease.nodeId) ?? 0) + 1);
    this.inflightByTenant.set(lease.tenantId, (this.inflightByTenant.get(lease.tenantId) ?? 0) + 1);
    this.tenantWeights.set(lease.tenantId, lease.tenantWeight);
  }

  private dropLease(requestId: string): Lease | undefined {
    const lease = this.leases.get(requestId);
    if (!lease) return undefined;
    this.leases.delete(requestId);
    const left = (this.inflightByNode.get(lease.nodeId) ?? 1) - 1;
    if (left <= 0) this.inflightByNode.delete(lease.nodeId);
    else this.inflightByNode.set(lease.nodeId, left);
    const mine = (this.inflightByTenant.get(lease.tenantId) ?? 1) - 1;
    if (mine <= 0) {
      this.inflightByTenant.delete(lease.tenantId);
      this.tenantWeights.delete(lease.tenantId);
    } else this.inflightByTenant.set(lease.tenantId, mine);
    this.store.deleteLease(requestId);
    return lease;
  }

  private backlogTokens(nodeId: string, now: number): number {
    const b = this.backlog.get(nodeId);
    if (!b) return 0;
    return Math.max(0, b.tokens - (now - b.at) * PREFILL_TOKENS_PER_MS);
  }

  private addBacklog(nodeId: string, tokens: number, now: number): void {
    this.backlog.set(nodeId, { tokens: this.backlogTokens(nodeId, now) + tokens, at: now });
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
  heartbeat(hb: PoolHeartbeat): PoolHeartbeatReply {
    const now = this.now();
    const reported = new Set<string>();
    for (const e of hb.engines) {
      const k = key(hb.nodeId, e.model);
      reported.add(k);
      const prev = this.nodes.get(k);
      if (prev && hb.sentAt < prev.sentAt) continue;
      this.applyCacheFeedback(hb.nodeId, prev, e.kvEvictedTokens, e.kvEpoch);
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
        kvEvictedTokens: e.kvEvictedTokens ?? null,
        kvEpoch: e.kvEpoch ?? null,
        cacheServer: hb.cacheServer ?? null,
        kvCache: hb.kvCache ?? null,
      };
      this.nodes.set(k, entry);
      this.dropOrphans(hb.nodeId, e.model, e.running + e.waiting, now);
      this.routedSinceBeat.delete(hb.nodeId);
      this.routing.prefixIndex.setCapacity(hb.nodeId, e.kvCapacityTokens);
      this.store.putNode(entry);
    }
    // Models the node stopped reporting are gone from it.
    for (const [k, n] of this.nodes) if (n.nodeId === hb.nodeId && !reported.has(k)) this.forget(n);
    // A node that came back, or whose engine stopped queueing, has room for waiting requests.
    if (this.queue.size > 0) this.dispatch();
    const cacheServers = this.cacheServersOf(hb.region, now);
    return cacheServers.length > 0 ? { draining: hb.drained, cacheServers } : { draining: hb.drained };
  }

  /**
   * Drops leases on a node that its agent no longer holds: the edge isolate that would have released
   * them died mid-request (a runtime restart, wrangler dev killed), and without this each would
   * count as in flight until it expires. Only leases older than `orphanLeaseAfterMs` are looked at:
   * a live request is either at the agent by then, and counted in its `running + waiting`, or
   * finished and released moments after. So if more old leases exist than the agent runs, at least
   * the surplus are orphans; the oldest that many are dropped (the count is what routing uses).
   * A live request whose lease went is still released and recorded as usual, to no effect here.
   */
  private dropOrphans(nodeId: string, model: string, atAgent: number, now: number): void {
    if (this.orphanLeaseAfterMs === undefined) return;
    const before = now - this.orphanLeaseAfterMs;
    const old: Array<[string, number]> = [];
    for (const [id, l] of this.leases) if (l.nodeId === nodeId && l.model === model && l.startedAt < before) old.push([id, l.startedAt]);
    const surplus = old.length - atAgent;
    if (surplus <= 0) return;
    old.sort((a, b) => a[1] - b[1]);
    for (const [id] of old.slice(0, surplus)) this.dropLease(id);
  }

  /**
   * The L2 membership the edge hands a region's agents: what its live nodes advertise. Lost and
   * left nodes drop out (their server may be gone with them); unhealthy or draining ones stay, as
   * their agent — and the cache server beside it — still beats.
   */
  cacheServersOf(region: string, now = this.now()): string[] {
    const servers = new Set<string>();
    for (const n of this.nodes.values()) {
      if (n.region !== region || n.cacheServer === null) continue;
      const s = this.status(n, now);
      if (s !== "lost" && s !== "left") servers.add(n.cacheServer);
    }
    return [...servers].sort();
  }

  /** What the engine dropped since the last beat leaves the prefix index too. */
  private applyCacheFeedback(nodeId: string, prev: NodeEntry | undefined, evicted: number | undefined, epoch: string | undefined): void {
    if (!prev) return;
    if (epoch !== undefined && prev.kvEpoch !== null && epoch !== prev.kvEpoch) {
      this.routing.prefixIndex.clearNode(nodeId);
      return;
    }
    if (evicted !== undefined && prev.kvEvictedTokens !== null && evicted > prev.kvEvictedTokens) {
      this.routing.prefixIndex.evictTokens(nodeId, evicted - prev.kvEvictedTokens);
    }
  }

  private forget(n: NodeEntry): void {
    this.nodes.delete(key(n.nodeId, n.model));
    this.store.deleteNode(n.nodeId, n.model);
    if (![...this.nodes.values()].some((x) => x.nodeId === n.nodeId)) {
      this.routing.prefixIndex.removeNode(n.nodeId);
      this.routing.recentLoad.removeNode(n.nodeId);
      this.routing.windowLoad.removeNode(n.nodeId);
      this.backlog.delete(n.nodeId);
      this.routedSinceBeat.delete(n.nodeId);
    }
  }

  /** Estimated KV use now: the last report plus prefill routed to the node since that report. */
  private kvUsageNow(n: NodeEntry): number {
    if (n.kvCapacityTokens <= 0) return n.kvUsage;
    return Math.min(1, n.kvUsage + (this.routedSinceBeat.get(n.nodeId) ?? 0) / n.kvCapacityTokens);
  }

  private healthy(input: RouteInput, now: number): { healthy: NodeView[]; known: number } {
    const exclude = new Set(input.exclude ?? []);
    const healthy: NodeView[] = [];
    let known = 0;
    for (const n of this.nodes.values()) {
      if (n.model !== input.model) continue;
      known++;
      if (exclude.has(n.nodeId) || this.status(n, now) !== "healthy") continue;
      healthy.push({
        id: n.nodeId,
        region: n.region,
        url: n.url,
        inflight: this.inflightByNode.get(n.nodeId) ?? 0,
        prefillBacklogTokens: this.backlogTokens(n.nodeId, now),
        running: n.running,
        waiting: n.waiting,
        maxConcurrency: n.maxConcurrency,
        kvUsage: this.kvUsageNow(n),
        kvCapacityTokens: n.kvCapacityTokens,
        lastHeartbeatAt: n.lastHeartbeatAt,
      });
    }
    // Stable order keeps tie-breaking and weighted combination independent of Map history.
    healthy.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return { healthy, known };
  }

  /**
   * Whether a node can take one more request now: below its in-flight limit, and its engine not
   * queueing (a heartbeat reporting waiting requests counts until this pool has since released
   * below what the engine was running).
   */
  private hasRoom(n: NodeView, admission: AdmissionSettings | undefined, headroom = false): boolean {
    const limit = admission?.nodeLimit ?? n.maxConcurrency;
    // Within the headroom a short engine queue is accepted: that is what going over the limit means.
    if (headroom) return n.inflight < limit + headroomSlots(limit, admission?.headroom ?? DEFAULT_VTC_HEADROOM);
    return n.inflight < limit && (n.waiting === 0 || n.inflight < n.running);
  }

  /**
   * The nodes a request may go to now: the nearest region with room, its nodes that have room.
   * Empty when no node anywhere has room (the request waits) — unless admission is off, when the
   * nearest region's healthy nodes are used regardless.
   */
  private candidates(input: RouteInput, healthy: NodeView[], headroom = false): NodeView[] {
    const order = input.regions ?? [];
    const rank = new Map(order.map((r, i) => [r, i]));
    const regionRank = (r: string) => rank.get(r) ?? order.length;
    const byRegion = new Map<string, NodeView[]>();
    for (const c of healthy) {
      let list = byRegion.get(c.region);
      if (!list) byRegion.set(c.region, (list = []));
      list.push(c);
    }
    const regions = [...byRegion.keys()].sort((a, b) => regionRank(a) - regionRank(b) || (a < b ? -1 : 1));
    const off = !input.admission || input.admission.policy === "off";
    for (const r of regions) {
      const roomy = (byRegion.get(r) as NodeView[]).filter((n) => this.hasRoom(n, input.admission, headroom));
      if (roomy.length > 0) return off ? (byRegion.get(r) as NodeView[]) : roomy;
    }
    if (!off) return [];
    // Admission off and every region full: the nearest region's nodes, and the strategy decides.
    return order.length > 0 && regions[0] !== undefined ? (byRegion.get(regions[0]) as NodeView[]) : healthy;
  }

  /**
   * Routes the request, or queues it until a node has room. `done` is called exactly once: with
   * the decision, or with a refusal (no healthy node, wait bound passed, cancelled).
   */
  submit(input: RouteInput, notify: (result: RouteResult) => void): void {
    // Every refusal, now or after waiting, passes here: counted once per request for operators.
    const done = (result: RouteResult) => {
      if (!result.ok) this.countRefusal(input.tenantId, result.reason);
      notify(result);
    };
    const now = this.now();
    const { healthy, known } = this.healthy(input, now);
    if (healthy.length === 0) {
      done({ ok: false, reason: known === 0 ? "no_nodes" : "no_healthy_nodes", retryAfterSeconds: Math.ceil(this.staleAfterMs / 1000) });
      return;
    }
    const policy = input.admission?.policy ?? "off";
    // Someone already waits: the newcomer queues behind in policy order (dispatch may admit it at once).
    if (policy === "off" || this.queue.size === 0) {
      const candidates = this.candidates(input, healthy);
      if (candidates.length > 0) {
        done(this.commit(input, candidates, healthy, now));
        return;
      }
    }
    // A tenant below its fair share of slots, with nothing waiting, goes over the limit by at most
    // the headroom rather than queue behind the tenants that fill the pool.
    if (policy === "vtc" && !this.queue.arrive(input.tenantId) && hasHeadroom(input.admission) && this.belowFairShare(input.tenantId, input.tenantWeight ?? 1, input, healthy)) {
      const candidates = this.candidates(input, healthy, true);
      if (candidates.length > 0) {
        done(this.commit(input, candidates, healthy, now));
        return;
      }
    }
    this.queue.enqueue(input.requestId, input.tenantId, now, input.admission?.maxWaitMs ?? 0, { input, done }, policy === "fcfs" ? "fcfs" : "vtc");
    this.dispatch();
  }

  /**
   * Whether one more request keeps `tenant` within its max-min fair share of the pool's slots:
   * water-filling over the tenants with requests in flight or waiting (other waiting tenants want
   * unlimited slots), by weight. Tenants that use less than their share leave the rest to the
   * others, so the level rises above slots / tenants when light tenants are light.
   */
  private belowFairShare(tenant: string, weight: number, input: RouteInput, healthy: NodeView[]): boolean {
    let slots = 0;
    for (const n of healthy) slots += input.admission?.nodeLimit ?? n.maxConcurrency;
    const demand = new Map<string, { want: number; weight: number }>();
    for (const [t, count] of this.inflightByTenant) demand.set(t, { want: count, weight: this.tenantWeights.get(t) ?? 1 });
    for (const [t, waiting] of this.queue.waitingTenants()) demand.set(t, { want: Number.POSITIVE_INFINITY, weight: waiting.input.tenantWeight ?? 1 });
    demand.set(tenant, { want: (this.inflightByTenant.get(tenant) ?? 0) + 1, weight });
    const order = [...demand.entries()].sort(([, a], [, b]) => a.want / a.weight - b.want / b.weight);
    let left = slots;
    let weights = 0;
    for (const [, d] of order) weights += d.weight;
    for (const [t, d] of order) {
      if (d.want / d.weight > left / weights) return false; // this one and everyone after are above the level
      if (t === tenant) return true;
      left -= d.want;
      weights -= d.weight;
    }
    return false;
  }

  private counters(tenantId: string): PoolTenantCounters {
    let c = this.tenantCounters.get(tenantId);
    if (!c) this.tenantCounters.set(tenantId, (c = { requests: 0, promptTokens: 0, completionTokens: 0, queueTimeouts: 0, cancelled: 0, noHealthyNode: 0 }));
    return c;
  }

  private countRefusal(tenantId: string, reason: Extract<RouteResult, { ok: false }>["reason"]): void {
    const c = this.counters(tenantId);
    if (reason === "queue_timeout") c.queueTimeouts++;
    else if (reason === "cancelled") c.cancelled++;
    else c.noHealthyNode++;
  }

  /** Routes at once, never waiting (the decision the pool would make if room were unlimited). */
  route(input: RouteInput): RouteResult {
    let result: RouteResult | undefined;
    this.submit({ ...input, admission: undefined }, (r) => (result = r));
    return result as RouteResult;
  }

  /** Admits waiting requests while nodes have room, in the policy's order. */
  dispatch(): void {
    const now = this.now();
    for (;;) {
      const policy = this.policyOf(this.queue);
      const head = this.queue.peek(policy);
      if (!head) return;
      if (this.admitWaiting(head, now, false)) continue;
      // No slot within the limits: a waiting tenant still below its fair share of slots may use the
      // headroom. Slots within the limits always go in counter order — letting a below-share tenant
      // take one ahead of a smaller counter is what broke VTC's bound (issue 5).
      const under =
        policy === "vtc"
          ? this.queue.peek("vtc", (tenant, w) => hasHeadroom(w.item.input.admission) && this.belowFairShare(tenant, w.item.input.tenantWeight ?? 1, w.item.input, this.healthy(w.item.input, now).healthy))
          : undefined;
      if (!under || !this.admitWaiting(under, now, true)) return;
    }
  }

  /** Admits one waiting request if a node has room (or refuses it when no node is healthy). */
  private admitWaiting(w: Waiting<Pending>, now: number, headroom: boolean): boolean {
    const { input, done } = w.item;
    const { healthy, known } = this.healthy(input, now);
    if (healthy.length === 0) {
      this.queue.remove(w.id);
      done({ ok: false, reason: known === 0 ? "no_nodes" : "no_healthy_nodes", retryAfterSeconds: Math.ceil(this.staleAfterMs / 1000) });
      return true;
    }
    const candidates = this.candidates(input, healthy, headroom);
    if (candidates.length === 0) return false;
    this.queue.remove(w.id);
    done(this.commit(input, candidates, healthy, now));
    return true;
  }

  private policyOf(queue: AdmissionQueue<Pending>): "vtc" | "fcfs" {
    const head = queue.peek("fcfs");
    return head?.item.input.admission?.policy === "fcfs" ? "fcfs" : "vtc";
  }

  /** A waiting request's client went away: it leaves the queue, charged nothing. */
  cancelWait(requestId: string): boolean {
    const w = this.queue.remove(requestId);
    if (!w) return false;
    w.item.done({ ok: false, reason: "cancelled", retryAfterSeconds: 0 });
    return true;
  }

  /** Refuses requests that waited past their bound; returns the next deadline, if any. */
  expireWaiting(): number | undefined {
    const now = this.now();
    for (const w of this.queue.expire(now)) {
      w.item.done({ ok: false, reason: "queue_timeout", retryAfterSeconds: Math.max(1, Math.ceil((w.item.input.admission?.maxWaitMs ?? 1000) / 4000)) });
    }
    return this.queue.nextDeadline();
  }

  get waitingCount(): number {
    return this.queue.size;
  }

  private predictedOutput(tenant: string, maxTokens: number): number {
    return Math.min(maxTokens, Math.round(this.outputAverage.get(tenant) ?? DEFAULT_PREDICTED_OUTPUT));
  }

  /** Picks a node among `candidates` and counts the request against it. */
  private commit(input: RouteInput, candidates: NodeView[], healthy: NodeView[], now: number): RouteResult {
    const prompt = input.prompt;
    const index = this.routing.prefixIndex;
    let match: Map<string, number> | undefined;
    const ctx: RoutingContext = {
      requestId: input.requestId,
      tenantId: input.tenantId,
      model: input.model,
      now,
      random: this.random,
      prompt,
      sessionKey: input.sessionKey,
      tokensPerBlock: index.tokensPerBlock,
      prefixMatch: () => (match ??= prompt ? index.match(prompt.blocks, candidates.map((c) => c.id)) : new Map()),
    };
    const decision = decide(ctx, candidates, input.strategies, this.strategies);
    if (!decision) return { ok: false, reason: "no_healthy_nodes", retryAfterSeconds: Math.ceil(this.staleAfterMs / 1000) };
    const { node } = decision;
    const matched = ctx.prefixMatch().get(node.id) ?? 0;
    const promptTokens = prompt?.tokens ?? 0;
    const cachedTokens = Math.min(promptTokens, matched * index.tokensPerBlock);
    if (prompt) index.record(prompt.blocks, node.id, now);
    this.addBacklog(node.id, promptTokens - cachedTokens, now);
    this.routedSinceBeat.set(node.id, (this.routedSinceBeat.get(node.id) ?? 0) + promptTokens - cachedTokens);
    const est = { promptTokens, cachedTokens, completionTokens: prompt?.maxTokens ?? 0 };
    this.routing.recentLoad.add(node.id, input.requestId, now, est);
    this.routing.windowLoad.add(node.id, input.requestId, now, est);
    this.routing.tenantTokens.routed(input.requestId, input.tenantId, promptTokens, now);
    // VTC: charge the prompt now; output is charged as progress reports it, and release settles the
    // real counts (a predicted completion can be charged up front, but a later refund would leave
    // tenants lifted to the inflated counter behind).
    this.vtc.setWeights({ inputWeight: input.admission?.inputWeight ?? DEFAULT_VTC_WEIGHTS.inputWeight, outputWeight: input.admission?.outputWeight ?? DEFAULT_VTC_WEIGHTS.outputWeight });
    const tenantWeight = input.tenantWeight ?? 1;
    const outputCharged = input.admission?.predictOutput === true ? this.predictedOutput(input.tenantId, prompt?.maxTokens ?? DEFAULT_PREDICTED_OUTPUT) : 0;
    const charged = this.vtc.cost(promptTokens, outputCharged, tenantWeight);
    this.refund(input.requestId); // a retried request is charged once
    this.vtc.charge(input.tenantId, charged);
    const lease: Lease = {
      nodeId: node.id,
      model: input.model,
      tenantId: input.tenantId,
      startedAt: now,
      expiresAt: now + this.leaseMs,
      promptTokens,
      cachedTokens,
      charged,
      tenantWeight,
      outputCharged,
    };
    this.dropLease(input.requestId); // a retried request holds at most one lease
    const priority = this.priorityOf(input, healthy);
    this.addLease(input.requestId, lease);
    this.store.putLease(input.requestId, lease);
    this.store.putCounters(this.vtc.takeDirty());
    return {
      ok: true,
      nodeId: node.id,
      url: node.url,
      region: node.region,
      strategy: formatStrategySpec(input.strategies),
      prefixBlocks: { matched, total: prompt?.blocks.length ?? 0 },
      priority,
    };
  }

  /**
   * The request's priority at the engine (protocol/priority.ts): `low` while its tenant still has
   * requests waiting, `high` for a tenant below its fair share of slots while others wait, so the
   * engine's scheduler can keep the flood's prompts out of the steps that carry the light tenant's
   * (engine interference, which the edge alone cannot remove: docs/fairness.md). Called before the
   * request counts as in flight.
   */
  private priorityOf(input: RouteInput, healthy: NodeView[]): RequestPriority {
    if (input.admission?.policy !== "vtc") return "normal";
    if (this.queue.waitingOf(input.tenantId) > 0) return "low";
    let othersWait = false;
    for (const t of this.queue.backlogged()) if (t !== input.tenantId) othersWait = true;
    if (!othersWait) return "normal";
    return this.belowFairShare(input.tenantId, input.tenantWeight ?? 1, input, healthy) ? "high" : "normal";
  }

  /** Takes back the admission charge of a request that is being retried or failed before serving. */
  private refund(requestId: string): void {
    const lease = this.leases.get(requestId);
    if (lease && lease.charged !== 0) {
      this.vtc.charge(lease.tenantId, -lease.charged);
      lease.charged = 0;
    }
  }

  /**
   * Output tokens a request has produced so far (reported by the worker as it streams): VTC
   * charges what exceeds what was already charged, so a long answer is paid for as it goes.
   */
  progress(requestId: string, outputTokens: number): void {
    const lease = this.leases.get(requestId);
    if (!lease || outputTokens <= lease.outputCharged) return;
    const amount = this.vtc.cost(0, outputTokens - lease.outputCharged, lease.tenantWeight);
    this.vtc.charge(lease.tenantId, amount);
    lease.charged += amount;
    lease.outputCharged = outputTokens;
  }

  /** Many progress reports at once (what one worker isolate saw in the last interval). */
  progressBatch(updates: ReadonlyArray<readonly [string, number]>): void {
    for (const [id, tokens] of updates) {
      this.progress(id, tokens);
      const lease = this.leases.get(id);
      if (lease) this.store.putLease(id, lease);
    }
    this.store.putCounters(this.vtc.takeDirty());
  }

  /** The request's stream ended (completed, cancelled or broken): its node is free of it. */
  release(input: ReleaseInput): { released: boolean } {
    const lease = this.leases.get(input.requestId);
    if (input.usage) {
      const real = { promptTokens: input.usage.promptTokens, cachedTokens: input.usage.cachedTokens, completionTokens: input.usage.completionTokens };
      this.routing.recentLoad.settle(input.requestId, real);
      this.routing.windowLoad.settle(input.requestId, real);
      this.routing.tenantTokens.settled(input.requestId, real, this.now());
      if (lease) {
        // VTC: replace the admission estimate by the real service.
        this.vtc.charge(lease.tenantId, this.vtc.cost(real.promptTokens, real.completionTokens, lease.tenantWeight) - lease.charged);
        const avg = this.outputAverage.get(lease.tenantId);
        this.outputAverage.set(lease.tenantId, avg === undefined ? real.completionTokens : 0.9 * avg + 0.1 * real.completionTokens);
      }
    } else {
      // Cancelled or broken before any token: the prompt estimate stands, and the tracker must
      // still forget the request, or every such request stays in it until its size-triggered purge.
      this.routing.tenantTokens.settled(input.requestId, undefined, this.now());
    }
    const released = this.dropLease(input.requestId) !== undefined;
    if (lease && released) {
      const c = this.counters(lease.tenantId);
      c.requests++;
      c.promptTokens += input.usage?.promptTokens ?? 0;
      c.completionTokens += input.usage?.completionTokens ?? 0;
    }
    this.store.putCounters(this.vtc.takeDirty());
    if (released) this.dispatch();
    return { released };
  }

  /** An attempt on `nodeId` failed before any byte came back: release it and cool the node down. */
  reportFailure(requestId: string, nodeId: string): void {
    this.refund(requestId);
    this.routing.tenantTokens.dropped(requestId, this.now());
    this.dropLease(requestId);
    this.store.putCounters(this.vtc.takeDirty());
    const now = this.now();
    for (const n of this.nodes.values()) {
      if (n.nodeId !== nodeId) continue;
      n.failedAt = now;
      this.store.putNode(n);
    }
    this.dispatch();
  }

  /** Operator drain: takes effect at once rather than at the node's next heartbeat. */
  setDrained(nodeId: string, drained: boolean): void {
    for (const n of this.nodes.values()) {
      if (n.nodeId !== nodeId) continue;
      n.draining = drained;
      this.store.putNode(n);
    }
    if (!drained) this.dispatch();
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
        prefixBlocks: this.routing.prefixIndex.blocksOf(n.nodeId),
        prefillBacklogTokens: Math.round(this.backlogTokens(n.nodeId, now)),
        cacheServer: n.cacheServer,
        kvCache: n.kvCache,
      }))
      .sort((a, b) => a.nodeId.localeCompare(b.nodeId) || a.model.localeCompare(b.model));
    const waiting: Record<string, number> = {};
    for (const t of this.queue.backlogged()) waiting[t] = this.queue.waitingOf(t);
    return {
      pool,
      nodes,
      inflight: this.leases.size,
      prefixEntries: this.routing.prefixIndex.size,
      memory: {
        leases: this.leases.size,
        loadWindowEntries: this.routing.recentLoad.heldEntries + this.routing.windowLoad.heldEntries,
        tenantTokenEstimates: this.routing.tenantTokens.pendingCount,
        tenants: new Set([...this.vtc.entries().map(([t]) => t), ...this.tenantCounters.keys(), ...this.outputAverage.keys()]).size,
      },
      waiting,
      vtc: Object.fromEntries(this.vtc.entries()),
      inflightByTenant: Object.fromEntries(this.inflightByTenant),
      tenants: Object.fromEntries([...this.tenantCounters].map(([t, c]) => [t, { ...c }])),
      countersSince: this.countersSince,
    };
  }

  /** Expires leases whose release was lost, forgets long-silent nodes, ages the prefix index. */
  sweep(): boolean {
    const now = this.now();
    for (const [id, lease] of [...this.leases]) if (lease.expiresAt <= now) this.dropLease(id);
    for (const n of [...this.nodes.values()]) if (now - n.lastHeartbeatAt > this.forgetAfterMs) this.forget(n);
    this.routing.prefixIndex.sweep(now);
    return this.nodes.size > 0 || this.leases.size > 0;
  }
}
