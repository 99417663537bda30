/**
 * Agent → edge heartbeat: who the node is and how loaded each of its engines is. The edge's
 * pool objects build their node registry from nothing else, so a node that stops sending these
 * leaves the pool, and one that resumes rejoins it.
 */
import { z } from "zod";

export const HEARTBEAT_PATH = "/agent/v1/heartbeat";
/** Default interval between heartbeats; the edge drops a node after `HEARTBEAT_MISSES` of them. */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 2_000;
export const HEARTBEAT_MISSES = 3;

export const engineLoadSchema = z.object({
  /** Model name as the edge knows it (the agent maps it to the engine's own name). */
  model: z.string().min(1).max(256),
  /** Adapter kind: llamacpp | openai | sim | ... */
  engine: z.string().min(1).max(64),
  healthy: z.boolean(),
  /** Requests the engine is executing. */
  running: z.number().int().min(0).max(1_000_000),
  /** Requests queued at the agent or inside the engine. */
  waiting: z.number().int().min(0).max(1_000_000),
  /** Requests the agent lets run at once on this engine. */
  maxConcurrency: z.number().int().min(1).max(1_000_000),
  /** Fraction of the engine's KV cache in use, 0..1. */
  kvUsage: z.number().min(0).max(1),
  /** KV cache capacity in tokens (bounds the edge's view of what the node can hold). */
  kvCapacityTokens: z.number().int().min(0).max(1e12),
  /**
   * Cached KV tokens the engine has evicted since `kvEpoch` began (a running total, so a lost beat
   * loses nothing): the edge forgets as many of the node's oldest prefix blocks.
   */
  kvEvictedTokens: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
  /** Changes whenever the engine's cache was emptied (restart, reset): the edge forgets the node's prefixes. */
  kvEpoch: z.string().max(64).optional(),
  /**
   * Of the prompt tokens the engine's own cache did not hold but the agent's KV tiers were asked
   * for, the fraction the tiers supplied (L1 and L2 together), over the agent's recent window
   * (`kvCache.windowMs`). Absent without tiers or without lookups in the window.
   */
  kvTierHitRate: z.number().min(0).max(1).optional(),
});

/** One KV tier of the agent (docs/kv-cache.md "The agent's tiers"). */
export const kvTierReportSchema = z.object({
  /** "l1" (the agent's DRAM), "l2" (cache servers), ... */
  tier: z.string().min(1).max(32),
  /** Byte budget (L2: the sum over its servers at their last STATS). */
  capacityBytes: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  /** Bytes held (L2: last known). */
  bytesUsed: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  /** Chunk gets in the window, and how many found their chunk. */
  queries: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  hits: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  /** hits / queries over the window; absent when there were no queries. */
  hitRate: z.number().min(0).max(1).optional(),
  /** Entries evicted in the window. */
  evictions: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
  /** L2 only: servers in the membership, and how many are up. */
  servers: z.number().int().min(0).max(100_000).optional(),
  serversUp: z.number().int().min(0).max(100_000).optional(),
});

/** The agent's KV tiers: absent when the agent runs none (older agents never send it). */
export const kvCacheReportSchema = z.object({
  /** Tokens per chunk key: prompts share cached KV in multiples of this. */
  chunkTokens: z.number().int().min(1).max(1_048_576),
  /** The window the counts and rates cover (ms). */
  windowMs: z.number().int().min(0).max(86_400_000),
  tiers: z.array(kvTierReportSchema).max(8),
});

/**
 * `host:port` of a cache server (IPv6 in brackets): what an agent advertises and what the edge hands
 * back. Same grammar as the L2 client's `parseEndpoint`, which the agent applies again.
 */
export const cacheServerAddressSchema = z
  .string()
  .max(300)
  .regex(/^(?:\[[0-9a-fA-F:.]+\]|[^:[\]\s]+):(?:[1-9]\d{0,4})$/, "must be host:port (e.g. 10.0.0.7:7400)")
  .refine((s) => Number(s.slice(s.lastIndexOf(":") + 1)) <= 65_535, "port must be at most 65535");

export const heartbeatSchema = z.object({
  nodeId: z.string().min(1).max(128),
  region: z.string().min(1).max(64).optional(),
  /** Address the agent believes it is reachable at; the registered URL wins when both exist. */
  url: z.url().max(512).optional(),
  agentVersion: z.string().max(64),
  /** Agent clock at sending (ms); lets the edge see skew. */
  sentAt: z.number().int().min(0),
  /** True when the agent is shutting down: the edge removes it at once instead of waiting. */
  leaving: z.boolean().default(false),
  engines: z.array(engineLoadSchema).max(64),
  kvCache: kvCacheReportSchema.optional(),
  /**
   * The L2 cache server this agent runs or sits beside, for the edge to hand to the region's agents
   * (`cacheServers` in the reply). Absent: the agent advertises none.
   */
  cacheServer: cacheServerAddressSchema.optional(),
});

export type EngineLoadReport = z.infer<typeof engineLoadSchema>;
export type KvTierReport = z.infer<typeof kvTierReportSchema>;
export type KvCacheReport = z.infer<typeof kvCacheReportSchema>;
export type Heartbeat = z.infer<typeof heartbeatSchema>;
export type HeartbeatInput = z.input<typeof heartbeatSchema>;

export interface HeartbeatReply {
  ok: true;
  /** Edge's view of the node after this beat. */
  accepted: string[];
  /** Models the agent reported that the edge does not route to this node. */
  ignored: string[];
  draining: boolean;
  intervalMs: number;
  /**
   * The region's L2 cache servers (`host:port`, optionally weighted), when the edge keeps a list:
   * the edge sends those advertised (`cacheServer`) by the live nodes of the agent's region in the
   * agent's pools, and only when at least one advertises. Present, it replaces the agent's L2
   * membership (even empty); absent, the agent keeps its own. Agents that run no L2 ignore it.
   */
  cacheServers?: CacheServerList;
}

/** `cacheServers` of a heartbeat reply: validated by the agent before it touches its ring. */
export const cacheServerListSchema = z
  .array(
    z.union([
      z.string().min(3).max(300),
      z.object({ id: z.string().min(3).max(300), weight: z.number().positive().max(1_000).optional() }),
    ]),
  )
  .max(1_024);
export type CacheServerList = z.infer<typeof cacheServerListSchema>;
