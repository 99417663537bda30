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
});

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
});

export type EngineLoadReport = z.infer<typeof engineLoadSchema>;
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
}
