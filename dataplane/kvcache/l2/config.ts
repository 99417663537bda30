/**
 * L2 client configuration (the `l2` part of the agent's KV-cache config). Defaults are documented
 * in docs/kv-cache.md ("L2 client"); the timeout defaults are sized for 32 MiB values over TCP.
 */
import { z } from "zod";
import { parseEndpoint } from "../transport/transport";
import { DEFAULT_LIMITS, HARD_LIMITS } from "./protocol";

const endpoint = z.string().refine(
  (s) => {
    try {
      parseEndpoint(s);
      return true;
    } catch {
      return false;
    }
  },
  { message: "expected host:port (e.g. 10.0.0.7:7400)" },
);

export const l2ClientConfigSchema = z.strictObject({
  /** Cache servers, `host:port`. May be empty and set later with `setMembers` (the edge distributes membership). */
  servers: z.array(z.union([endpoint, z.strictObject({ id: endpoint, weight: z.number().positive().optional() })])).default([]),
  /** Copies of each value, on distinct servers (1 = no replication). */
  replicas: z.number().int().min(1).max(8).default(1),
  /** Ring points per server of weight 1. */
  virtualNodes: z.number().int().min(1).max(10_000).default(160),
  /** Pipelined connections per server for GET/PUT; one more carries PREFIX/DELETE/STATS so probes never queue behind values. */
  dataConnections: z.number().int().min(1).max(64).default(2),
  connectTimeoutMs: z.number().int().positive().default(1_000),
  /**
   * Per-request timeout = timeoutBaseMs + bytes / timeoutMinBytesPerSec, where bytes is the PUT's
   * value or `expectedValueBytes` for a GET. Defaults: 250 ms + 32 MiB at 1 Gb/s ≈ 520 ms for a
   * 32 MiB chunk, 270 ms for a 2 MiB block, 250 ms for a PREFIX probe. Past it the lookup is a
   * miss and the caller recomputes.
   */
  timeoutBaseMs: z.number().int().positive().default(250),
  timeoutMinBytesPerSec: z.number().positive().default(125_000_000),
  expectedValueBytes: z.number().int().positive().default(32 * 1024 * 1024),
  /** Consecutive timeouts that mark a server down (a connection error marks it down at once). */
  failureThreshold: z.number().int().min(1).default(3),
  /** First down period; doubles while the server keeps failing, up to maxDownMs. */
  downMs: z.number().int().positive().default(1_000),
  maxDownMs: z.number().int().positive().default(30_000),
  /** How often stats() refreshes the remote part (bytes used, capacity, evictions) with STATS; 0 = only on refreshServerStats(). */
  statsRefreshMs: z.number().int().min(0).default(10_000),
  /** Must not exceed the servers' limits. */
  maxKeys: z.number().int().positive().max(HARD_LIMITS.maxKeys).default(DEFAULT_LIMITS.maxKeys),
  maxValueBytes: z.number().int().positive().max(HARD_LIMITS.maxValueBytes).default(DEFAULT_LIMITS.maxValueBytes),
});
export type L2ClientConfigInput = z.input<typeof l2ClientConfigSchema>;
export type L2ClientConfig = z.output<typeof l2ClientConfigSchema>;
