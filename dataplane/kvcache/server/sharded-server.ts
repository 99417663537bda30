/**
 * A cache server on several cores: `shards` worker threads (shard-worker.ts), each a CacheServer
 * holding capacityBytes / shards behind its own data port (port + i, or ephemeral ports when port
 * is 0). One Node event loop moves bytes at a few GB/s at most; N shards move them on N cores.
 *
 * - Clients need only the first port (the one agents advertise): every shard answers SHARDS with
 *   all the ports, and the client sends each key straight to its shard (protocol.ts shardOf); a key
 *   sent to the wrong shard is refused with WRONG_SHARD, never stored where no GET would look.
 * - A shard that dies is restarted on its port after `restartDelayMs`, empty: until then its keys
 *   are misses (the client's circuit breaker), the other shards keep serving.
 * - Metrics: one `/metrics` on the supervisor, the shards' registries summed (prom-client's
 *   AggregatorRegistry), plus the supervisor's own shard gauges.
 *
 * docs/kv-cache.md "Shards".
 */
import { Worker } from "node:worker_threads";
import { AggregatorRegistry, Registry } from "prom-client";
import { parseConfig } from "../../lib/config-error";
import { createLogger, type Logger } from "../../lib/log";
import type { Endpoint } from "../transport/transport";
import { CacheServer, type CacheServerOptions } from "./cache-server";
import { type CacheServerConfig, cacheServerConfigSchema } from "./config";
import { ShardSupervisorMetrics, startMetricsServer } from "./metrics";
import type { FromShard, ShardWorkerData, ToShard } from "./shard-worker";

export interface ShardedCacheServerOptions extends Omit<CacheServerOptions, "transport" | "evictionPolicy"> {
  /** Delay before a dead shard is started again (default 1 s). */
  restartDelayMs?: number;
  /** The worker script (default: shard-worker.mjs beside this module; a bundle ships its own). */
  workerUrl?: URL;
}

/** One shard's `registry.getMetricsAsJSON()`. */
type ShardMetrics = Parameters<typeof AggregatorRegistry.aggregate>[0][number];

interface ShardSlot {
  index: number;
  port: number;
  worker: Worker | undefined;
  ready: boolean;
}

/** Starts one shard and resolves with its worker once it listens, or rejects with its start error. */
function spawnShard(url: URL, options: ShardWorkerData["options"], log: Logger, onMessage: (m: FromShard) => void): Promise<{ worker: Worker; port: number }> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(url, { workerData: { options } satisfies ShardWorkerData });
    let settled = false;
    worker.on("message", (m: FromShard) => {
      if (m.type === "log") return log[m.level](m.event, m.fields);
      if (!settled && m.type === "listening") {
        settled = true;
        return resolve({ worker, port: m.port });
      }
      if (!settled && m.type === "failed") {
        settled = true;
        return reject(Object.assign(new Error(m.message), { code: m.code }));
      }
      onMessage(m);
    });
    worker.once("error", (err) => {
      if (!settled) {
        settled = true;
        reject(err);
      }
    });
    worker.once("exit", (code) => {
      if (!settled) {
        settled = true;
        reject(new Error(`shard worker exited with code ${code} before listening`));
      }
    });
  });
}

export class ShardedCacheServer {
  readonly config: CacheServerConfig;
  private readonly slots: ShardSlot[];
  private readonly log: Logger;
  private readonly workerUrl: URL;
  private readonly restartDelayMs: number;
  private readonly metrics: ShardSupervisorMetrics;
  private metricsServer: { port: number; close(): Promise<void> } | undefined;
  private closing: Promise<void> | undefined;
  private readonly restartTimers = new Set<NodeJS.Timeout>();
  private metricsSeq = 0;
  private readonly metricsWaiters = new Map<number, (json: ShardMetrics | undefined) => void>();

  private constructor(config: CacheServerConfig, log: Logger, workerUrl: URL, restartDelayMs: number) {
    this.config = config;
    this.log = log;
    this.workerUrl = workerUrl;
    this.restartDelayMs = restartDelayMs;
    this.slots = Array.from({ length: config.shards }, (_, index) => ({ index, port: config.port === 0 ? 0 : config.port + index, worker: undefined, ready: false }));
    this.metrics = new ShardSupervisorMetrics(() => ({ configured: this.slots.length, up: this.slots.filter((s) => s.ready).length }));
  }

  /** Validates the options (ConfigError naming the field), starts every shard, then the metrics port. */
  static async start(options: ShardedCacheServerOptions): Promise<ShardedCacheServer> {
    const { logger, restartDelayMs, workerUrl, ...input } = options;
    const config = parseConfig(cacheServerConfigSchema, input, "cache-server options");
    if (config.port !== 0 && config.port + config.shards - 1 > 65_535) throw new RangeError(`ports ${config.port}..${config.port + config.shards - 1} exceed 65535`);
    const server = new ShardedCacheServer(config, logger ?? createLogger({ component: "cache-server" }), workerUrl ?? new URL("./shard-worker.mjs", import.meta.url), restartDelayMs ?? 1_000);
    try {
      await Promise.all(server.slots.map((slot) => server.startShard(slot)));
      server.announcePorts();
      await server.whenAllReady();
      if (config.metricsPort !== null) server.metricsServer = await startMetricsServer(server.metricsRegistryProxy(), config.metricsHost ?? config.host, config.metricsPort);
    } catch (err) {
      await server.close({ graceMs: 0 });
      throw err;
    }
    server.log.info("listening", {
      endpoint: `${config.host}:${server.slots[0]?.port}`,
      shard_ports: server.slots.map((s) => s.port),
      metrics_port: server.metricsServer?.port ?? null,
      capacity_bytes: config.capacityBytes,
      shards: config.shards,
      policy: config.policy,
      max_value_bytes: config.maxValueBytes,
    });
    return server;
  }

  /** The advertised endpoint (shard 0; any shard tells clients about the others). */
  get endpoint(): Endpoint {
    return { host: this.config.host, port: this.slots[0]?.port ?? 0 };
  }

  /** Every shard's endpoint, in shard order. */
  get endpoints(): Endpoint[] {
    return this.slots.map((s) => ({ host: this.config.host, port: s.port }));
  }

  get metricsPort(): number | undefined {
    return this.metricsServer?.port;
  }

  /** Stops one shard's thread at once, as a crash would (fault drills); it is restarted like one. */
  async terminateShard(index: number): Promise<void> {
    const slot = this.slots[index];
    if (slot?.worker === undefined) throw new RangeError(`no running shard ${index}`);
    await slot.worker.terminate();
  }

  /** Closes every shard (each lets its replies flush for `graceMs`), then the metrics port. */
  close(opts: { graceMs?: number } = {}): Promise<void> {
    this.closing ??= this.shutdown(opts.graceMs ?? this.config.shutdownGraceMs);
    return this.closing;
  }

  private shardOptions(slot: ShardSlot): ShardWorkerData["options"] {
    const c = this.config;
    // Shard i gets an equal share; the first shards take the remainder bytes.
    const share = Math.floor(c.capacityBytes / c.shards) + (slot.index < c.capacityBytes % c.shards ? 1 : 0);
    return {
      host: c.host,
      port: slot.port,
      capacityBytes: share,
      policy: c.policy,
      metricsPort: null,
      maxValueBytes: Math.min(c.maxValueBytes, share),
      maxKeys: c.maxKeys,
      maxConnections: c.maxConnections,
      frameStallTimeoutMs: c.frameStallTimeoutMs,
      maxPendingReplyBytes: c.maxPendingReplyBytes,
      receivePoolBytes: Math.floor(c.receivePoolBytes / c.shards),
      verifyPutChecksums: c.verifyPutChecksums,
      shutdownGraceMs: c.shutdownGraceMs,
      shards: 1,
      shard: { index: slot.index, count: c.shards },
    };
  }

  private async startShard(slot: ShardSlot): Promise<void> {
    const log = this.log.child({ shard: slot.index });
    const { worker, port } = await spawnShard(this.workerUrl, this.shardOptions(slot), log, (m) => this.onShardMessage(slot, m));
    slot.worker = worker;
    slot.port = port;
    worker.once("exit", (code) => {
      slot.worker = undefined;
      slot.ready = false;
      if (this.closing !== undefined) return;
      this.metrics.restarts.inc();
      log.error("shard_died", { code, port: slot.port, restart_in_ms: this.restartDelayMs });
      this.scheduleRestart(slot);
    });
  }

  private scheduleRestart(slot: ShardSlot): void {
    const timer = setTimeout(() => {
      this.restartTimers.delete(timer);
      if (this.closing !== undefined) return;
      this.startShard(slot).then(
        () => {
          if (this.closing !== undefined) return void slot.worker?.terminate();
          slot.worker?.postMessage({ type: "ports", ports: this.slots.map((s) => s.port) } satisfies ToShard);
          this.log.info("shard_restarted", { shard: slot.index, port: slot.port });
        },
        (err: Error) => {
          this.log.error("shard_restart_failed", { shard: slot.index, message: err.message });
          this.scheduleRestart(slot);
        },
      );
    }, this.restartDelayMs);
    this.restartTimers.add(timer);
  }

  private onShardMessage(slot: ShardSlot, m: FromShard): void {
    if (m.type === "ready") slot.ready = true;
    else if (m.type === "metrics") {
      this.metricsWaiters.get(m.id)?.(m.json as ShardMetrics);
      this.metricsWaiters.delete(m.id);
    }
  }

  private announcePorts(): void {
    const ports = this.slots.map((s) => s.port);
    for (const s of this.slots) s.worker?.postMessage({ type: "ports", ports } satisfies ToShard);
  }

  private async whenAllReady(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.slots.every((s) => s.ready)) {
      if (Date.now() > deadline) throw new Error("cache-server shards did not become ready");
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** The shards' metrics summed, plus our own: what `/metrics` serves. */
  private async aggregatedMetrics(): Promise<Registry> {
    const parts = await Promise.all(
      this.slots.map(
        (s) =>
          new Promise<ShardMetrics | undefined>((resolve) => {
            if (s.worker === undefined) return resolve(undefined);
            const id = ++this.metricsSeq;
            const timer = setTimeout(() => {
              this.metricsWaiters.delete(id);
              resolve(undefined);
            }, 2_000);
            this.metricsWaiters.set(id, (json) => {
              clearTimeout(timer);
              resolve(json);
            });
            s.worker.postMessage({ type: "metrics", id } satisfies ToShard);
          }),
      ),
    );
    const aggregated = AggregatorRegistry.aggregate(parts.filter((p): p is ShardMetrics => p !== undefined));
    return Registry.merge([aggregated as Registry, this.metrics.registry]);
  }

  /** A registry-shaped object for startMetricsServer whose `metrics()` aggregates on each scrape. */
  private metricsRegistryProxy(): Registry {
    const proxy = Object.create(this.metrics.registry) as Registry;
    Object.defineProperty(proxy, "metrics", { value: async () => (await this.aggregatedMetrics()).metrics() });
    return proxy;
  }

  private async shutdown(graceMs: number): Promise<void> {
    for (const t of this.restartTimers) clearTimeout(t);
    this.restartTimers.clear();
    await Promise.all(
      this.slots.map(async (s) => {
        const w = s.worker;
        if (w === undefined) return;
        const exited = new Promise<void>((r) => w.once("exit", () => r()));
        w.postMessage({ type: "close", graceMs } satisfies ToShard);
        // A shard that does not finish closing in time is stopped.
        const timer = setTimeout(() => void w.terminate(), graceMs + 2_000);
        await exited;
        clearTimeout(timer);
      }),
    );
    await this.metricsServer?.close();
    this.log.info("stopped", { shards: this.slots.length });
  }
}

/** One process-wide entry for the CLI: a plain CacheServer for 1 shard, else a ShardedCacheServer. */
export async function startCacheServer(options: ShardedCacheServerOptions & Pick<CacheServerOptions, "transport" | "evictionPolicy">): Promise<CacheServer | ShardedCacheServer> {
  if ((options.shards ?? 1) <= 1) return CacheServer.start(options);
  return ShardedCacheServer.start(options);
}
