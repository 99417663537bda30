/**
 * Cache-server configuration: one schema, validated at start-up (the CLI maps its flags onto it).
 */
import { z } from "zod";
import { evictionPolicyNameSchema } from "../eviction/index";
import { DEFAULT_LIMITS, HARD_LIMITS } from "../l2/protocol";

const UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  m: 1e6,
  mb: 1e6,
  g: 1e9,
  gb: 1e9,
  t: 1e12,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/**
 * `8GiB`, `512MiB`, `1.5GB`, `1000000` → bytes. KB/MB/GB/TB are decimal, KiB/MiB/GiB/TiB binary
 * (so `8GiB` = 8,589,934,592 and `8GB` = 8,000,000,000). Throws RangeError on anything else.
 */
export function parseByteSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = m ? UNITS[(m[2] as string).toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new RangeError(`'${text}' is not a size (examples: 8GiB, 512MiB, 2GB, 1048576)`);
  const bytes = Math.floor(Number(m[1]) * unit);
  if (!Number.isSafeInteger(bytes)) throw new RangeError(`'${text}' is too large`);
  return bytes;
}

export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${Number.isInteger(v) ? v : v.toFixed(1)}${units[i]}`;
}

const port = z.number().int().min(0).max(65_535);

export const cacheServerConfigSchema = z.strictObject({
  host: z.string().min(1).default("127.0.0.1"),
  /** Data port (0 = any free port, for tests). */
  port: port.default(7400),
  /** Bytes of values held before eviction. */
  capacityBytes: z.number().int().positive(),
  policy: evictionPolicyNameSchema.default("lru"),
  /** Prometheus `/metrics` port; null disables the HTTP listener. */
  metricsPort: port.nullable().default(9400),
  metricsHost: z.string().min(1).optional(),
  maxValueBytes: z.number().int().positive().max(HARD_LIMITS.maxValueBytes).default(DEFAULT_LIMITS.maxValueBytes),
  maxKeys: z.number().int().positive().max(HARD_LIMITS.maxKeys).default(DEFAULT_LIMITS.maxKeys),
  /** Connections beyond this are closed on accept. Worst-case receive memory = maxConnections × maxValueBytes. */
  maxConnections: z.number().int().positive().default(1024),
  /** A connection that stops mid-frame for this long is closed (a lying length cannot pin memory). */
  frameStallTimeoutMs: z.number().int().positive().default(30_000),
  /** Above this many queued reply bytes on a connection, the server stops reading from it. */
  maxPendingReplyBytes: z.number().int().positive().default(256 * 1024 * 1024),
  /** Idle receive buffers kept for reuse (evicted values' memory; saves page faults on the next PUT). */
  receivePoolBytes: z.number().int().min(0).default(256 * 1024 * 1024),
  /**
   * Recompute the XXH64 of every PUT payload and refuse a mismatch (BAD_CHECKSUM). Off by default:
   * the server stores the client's checksum with the value and serves it with every GET, and the
   * client verifies every GET, so a value damaged on the way in or at rest is caught when read
   * (and deleted by the reader); checking at PUT only catches it earlier, at ~0.15 ms of server
   * CPU per 2 MiB. docs/kv-cache.md "Integrity".
   */
  verifyPutChecksums: z.boolean().default(false),
  /** How long close() lets queued replies flush before cutting connections. */
  shutdownGraceMs: z.number().int().min(0).default(5_000),
  /**
   * Worker threads, each holding capacityBytes / shards of the values behind its own port
   * (port, port + 1, ...; all ephemeral when port is 0). Clients learn the ports with SHARDS and
   * send each key to its shard (docs/kv-cache.md "Shards"). 1 = everything in this thread.
   */
  shards: z.number().int().min(1).max(64).default(1),
  /** Set by the shard supervisor for each worker: which shard this server is, of how many. */
  shard: z.strictObject({ index: z.number().int().min(0), count: z.number().int().min(1).max(64) }).default({ index: 0, count: 1 }),
});
export type CacheServerConfigInput = z.input<typeof cacheServerConfigSchema>;
export type CacheServerConfig = z.output<typeof cacheServerConfigSchema>;
