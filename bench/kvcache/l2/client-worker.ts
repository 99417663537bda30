/**
 * One client thread of the L2 benchmark (run.ts): its own L2Client and its own RespClient, each
 * with the same number of data connections, driving closed loops on command. Several threads let
 * the client side use several cores, for both systems alike.
 */
import { createHash } from "node:crypto";
import { parentPort, threadId, workerData } from "node:worker_threads";
import { BufferPool } from "../../../dataplane/kvcache/l2/buffer-pool";
import { L2Client } from "../../../dataplane/kvcache/l2/l2-client";
import type { Logger } from "../../../dataplane/lib/log";
import { RespClient } from "./resp-client";

export type System = "switchyard-l2" | "redis";
export type OpName = "put" | "get";

export interface ClientWorkerData {
  l2Port: number;
  redisPort: number;
  /** Data connections to each system (L2: spread evenly over its shards). */
  connections: number;
  shards: number;
  valueBytes: number;
}

/** Main → worker. */
export type ToClient =
  | { type: "fill"; system: System; count: number }
  | { type: "flush" }
  | { type: "prepare-gets"; system: System; count: number }
  | { type: "cell"; system: System; op: OpName; concurrency: number; seconds: number };
/** Worker → main. */
export type FromClient =
  | { type: "ready" }
  | { type: "done" }
  | { type: "cell"; latencies: number[]; errors: number; seconds: number }
  | { type: "failed"; message: string };

interface Driver {
  put(key: string, value: Uint8Array): Promise<boolean>;
  get(key: string, size: number): Promise<boolean>;
}

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };
const port = parentPort;
if (port === null) throw new Error("client-worker.ts runs in a worker thread (see run.ts)");
const cfg = workerData as ClientWorkerData;
const MiB = 1024 * 1024;

let keySeq = 0;
const freshKey = (tag: string) => createHash("sha256").update(`${tag}:${process.pid}:${threadId}:${keySeq++}`).digest("hex");

// Both clients read GET values into pooled buffers and give them back once checked (what an agent
// does after copying a chunk to the engine), so neither pays fresh-page faults per value.
const l2Pool = new BufferPool({ maxIdleBytes: 1024 * MiB });
const redisPool = new BufferPool({ maxIdleBytes: 1024 * MiB });
const l2 = new L2Client({
  servers: [`127.0.0.1:${cfg.l2Port}`],
  bufferPool: l2Pool,
  dataConnections: Math.max(1, Math.round(cfg.connections / cfg.shards)),
  // The benchmark queues up to 16 × 32 MiB per server: no timeouts, measure the queueing instead.
  timeoutBaseMs: 120_000,
  statsRefreshMs: 0,
  logger: quiet,
});
const redis = await RespClient.connect({ host: "127.0.0.1", port: cfg.redisPort }, cfg.connections, redisPool);
const drivers: Record<System, Driver> = {
  "switchyard-l2": {
    put: (k, v) => l2.tryPut(k, v),
    get: async (k, size) => {
      const v = await l2.get(k);
      if (v === undefined) return false;
      l2.release(v);
      return v.length === size;
    },
  },
  redis: {
    put: async (k, v) => (await redis.set(k, v)).kind === "simple",
    get: async (k, size) => {
      const r = await redis.get(k, size);
      if (r.kind !== "bulk") return false;
      redisPool.release(r.value);
      return r.value.length === size;
    },
  },
};
const value = Buffer.allocUnsafe(cfg.valueBytes);
for (let i = 0; i < cfg.valueBytes; i += 4096) value[i] = (i * 31) & 0xff;
const getKeys: Record<System, string[]> = { "switchyard-l2": [], redis: [] };

/** Closed loop: `concurrency` workers, each issuing its next op when the previous completes. */
async function measure(drive: (i: number) => Promise<boolean>, concurrency: number, seconds: number): Promise<FromClient> {
  if (concurrency === 0) return { type: "cell", latencies: [], errors: 0, seconds: 0 };
  // Warm-up: one round per worker, unmeasured.
  await Promise.all(Array.from({ length: concurrency }, (_, i) => drive(i)));
  const latencies: number[] = [];
  let errors = 0;
  let next = 0;
  const start = performance.now();
  const deadline = start + seconds * 1000;
  let end = start;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        const i = next++;
        const t0 = performance.now();
        const ok = await drive(i);
        const t1 = performance.now();
        // Only successful ops count: a miss or failure moves no value.
        if (ok) latencies.push(t1 - t0);
        else errors++;
        if (t1 > end) end = t1;
      }
    }),
  );
  return { type: "cell", latencies, errors, seconds: (end - start) / 1000 };
}

async function handle(m: ToClient): Promise<FromClient> {
  if (m.type === "fill") {
    const d = drivers[m.system];
    for (let i = 0; i < m.count; i += 4) await Promise.all([0, 1, 2, 3].map(() => d.put(freshKey(`${m.system}-fill`), value)));
    return { type: "done" };
  }
  if (m.type === "flush") {
    await redis.simple("FLUSHALL");
    return { type: "done" };
  }
  if (m.type === "prepare-gets") {
    getKeys[m.system] = Array.from({ length: m.count }, () => freshKey(`${m.system}-get`));
    for (const k of getKeys[m.system]) await drivers[m.system].put(k, value);
    return { type: "done" };
  }
  const d = drivers[m.system];
  if (m.op === "put") return measure(() => d.put(freshKey(`${m.system}-put`), value), m.concurrency, m.seconds);
  const keys = getKeys[m.system];
  return measure((i) => d.get(keys[i % keys.length] as string, cfg.valueBytes), m.concurrency, m.seconds);
}

port.on("message", (m: ToClient | { type: "close" }) => {
  if (m.type === "close") {
    void l2.close();
    redis.close();
    port.close();
    return;
  }
  handle(m).then(
    (r) => port.postMessage(r),
    (err: Error) => port.postMessage({ type: "failed", message: err.message } satisfies FromClient),
  );
});
port.postMessage({ type: "ready" } satisfies FromClient);
