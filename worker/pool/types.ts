/** RPC payloads of the pool Durable Object (worker ↔ PoolObject). */
import type { EngineLoadReport, KvCacheReport } from "../../protocol/heartbeat";
import type { TokenUsage } from "../../protocol/usage";
import type { PromptInfo, WeightedStrategy } from "../routing/strategy";
import type { RequestPriority } from "../../protocol/priority";

export interface PoolHeartbeat {
  nodeId: string;
  region: string;
  /** Address to reach the agent (registered URL, else the advertised one). */
  url: string;
  /** Operator's drain flag from D1. */
  drained: boolean;
  /** Agent clock when sent; older beats than the last one seen are ignored (replays, reordering). */
  sentAt: number;
  leaving: boolean;
  /** Engines of this node for models of this pool. */
  engines: EngineLoadReport[];
  /** The L2 cache server the node advertises (`host:port`). */
  cacheServer?: string;
  /** The node's KV tiers at this beat (capacity, hit rates). */
  kvCache?: KvCacheReport;
}

export interface PoolHeartbeatReply {
  draining: boolean;
  /**
   * Cache servers advertised by the live (not lost, not left) nodes of the beating node's region in
   * this pool, sorted; absent when none of them advertises one.
   */
  cacheServers?: string[];
}

export interface RouteInput {
  requestId: string;
  tenantId: string;
  model: string;
  strategies: WeightedStrategy[];
  /** Nodes already tried for this request (failed before the first byte). */
  exclude?: string[];
  /** Prompt blocks and size (computed by the worker, so the pool object spends no CPU on hashing). */
  prompt?: PromptInfo;
  sessionKey?: string;
  /** Regions nearest the caller first; nodes elsewhere come after. */
  regions?: string[];
  /** Edge admission: how requests wait when no node has room (absent: never wait). */
  admission?: AdmissionSettings;
  /** The tenant's fairness weight (default 1). */
  tenantWeight?: number;
}

export const DEFAULT_VTC_HEADROOM = 0.1;

export interface AdmissionSettings {
  /** `vtc`: fair between tenants; `fcfs`: first come, first served; `off`: route at once, never wait. */
  policy: "vtc" | "fcfs" | "off";
  /** Longest wait before the request is refused with 429. */
  maxWaitMs: number;
  /** Requests in flight per node before new ones wait (default: the node's reported concurrency). */
  nodeLimit?: number;
  /**
   * VTC only: how far over its limit a node may go (a fraction of the limit, at least one request)
   * for a request whose tenant has nothing waiting and fewer requests in flight than its fair share
   * of the pool's slots. Such a tenant is below its share: it gets a slot at once instead of
   * waiting out a slot turnover behind a flood. Backlogged tenants are still admitted only below
   * the limit and in counter order, so VTC's bound between them holds. Default
   * {@link DEFAULT_VTC_HEADROOM}.
   */
  headroom?: number;
  /** VTC charges per input and output token (w_p, w_q). */
  inputWeight?: number;
  outputWeight?: number;
  /**
   * Charge a predicted completion length at admission, corrected by progress and at release.
   * Default off: output is charged as progress reports it (VTC's per-token accounting); a refunded
   * prediction would leave tenants lifted to the inflated counter behind.
   */
  predictOutput?: boolean;
}

export type RouteResult =
  | {
      ok: true;
      nodeId: string;
      url: string;
      region: string;
      strategy: string;
      prefixBlocks: { matched: number; total: number };
      /** How the engine should rank it against other tenants' work (protocol/priority.ts). */
      priority: RequestPriority;
    }
  | { ok: false; reason: "no_nodes" | "no_healthy_nodes" | "queue_timeout" | "cancelled"; retryAfterSeconds: number };

export type ReleaseOutcome = "completed" | "cancelled" | "failed";

export interface ReleaseInput {
  requestId: string;
  outcome: ReleaseOutcome;
  usage?: TokenUsage;
  ttftMs?: number;
}

export type NodeStatus = "healthy" | "unhealthy" | "lost" | "draining" | "failing" | "left";

export interface PoolNodeSnapshot {
  nodeId: string;
  model: string;
  region: string;
  url: string;
  engine: string;
  status: NodeStatus;
  inflight: number;
  running: number;
  waiting: number;
  maxConcurrency: number;
  kvUsage: number;
  kvCapacityTokens: number;
  lastHeartbeatAt: number;
  /** Prefix blocks the pool believes the node holds. */
  prefixBlocks: number;
  /** Prefill tokens routed there and not yet worked off (estimate). */
  prefillBacklogTokens: number;
  /** The cache server the node advertises, if any. */
  cacheServer: string | null;
  /** The node's last KV-tier report, if its agent runs tiers. */
  kvCache: KvCacheReport | null;
}

/**
 * A tenant's service and refusals in one pool since the pool object started. Kept in memory only:
 * operator statistics, not billing (the tenant ledger has the exact usage).
 */
export interface PoolTenantCounters {
  /** Requests that ended on a node (released), with the engine's token counts when it reported them. */
  requests: number;
  promptTokens: number;
  completionTokens: number;
  /** Refused with 429 after waiting `max_queue_wait_ms` for room. */
  queueTimeouts: number;
  /** Left the admission queue because the client went away. */
  cancelled: number;
  /** Refused with 503: no healthy node served the model. */
  noHealthyNode: number;
}

/**
 * What the pool object keeps in memory per request: leases (until release), the load windows'
 * entries (until they age out of their window) and the tenant token tracker's estimates (until the
 * request's release settles them). Each is bounded by requests in flight or by the arrival rate
 * times a window; one that only grows is a leak.
 */
export interface PoolMemory {
  leases: number;
  /** Requests in the 60 s load window and in Preble's window (entries, summed). */
  loadWindowEntries: number;
  /** Routed requests whose tenant token estimate awaits its release. */
  tenantTokenEstimates: number;
  /** Tenants with VTC counters, per-tenant statistics or averages held. */
  tenants: number;
}

export interface PoolSnapshot {
  pool: string;
  nodes: PoolNodeSnapshot[];
  inflight: number;
  /** (block, node) pairs in the prefix index. */
  prefixEntries: number;
  /** Sizes of the pool object's in-memory request state (operators: each must stay bounded). */
  memory: PoolMemory;
  /** Requests waiting at the edge for room, by tenant. */
  waiting: Record<string, number>;
  /** Virtual token counters of tenants seen (fairness). */
  vtc: Record<string, number>;
  /** Requests in flight, by tenant. */
  inflightByTenant: Record<string, number>;
  /** Per-tenant counters since `countersSince` (epoch ms: when this pool object started). */
  tenants: Record<string, PoolTenantCounters>;
  countersSince: number;
}
