/**
 * The L2 cache server: holds KV chunks in memory for the node agents of a region, behind the wire
 * protocol of ../l2/protocol.ts on any Transport (TCP by default), with Prometheus metrics on a
 * separate HTTP port. Run it with `switchyard cache-server` (cli/commands/cache-server.ts).
 *
 * Every request is answered synchronously from memory, so replies on one connection leave in the
 * order requests arrived; the protocol lets them be reordered (clients match request ids) and a
 * future server that reads from disk or RDMA may do so.
 *
 * @example
 * const server = await CacheServer.start({ port: 7400, capacityBytes: 8 * 2 ** 30, policy: "s3fifo" });
 * // ... later
 * await server.close();
 */
import { performance } from "node:perf_hooks";
import { parseConfig } from "../../lib/config-error";
import { createLogger, type Logger } from "../../lib/log";
import { createEvictionPolicy } from "../eviction/index";
import { BufferPool } from "../l2/buffer-pool";
import {
  encodeFrame,
  encodeShardMap,
  Flag,
  type Frame,
  type FrameHeader,
  FrameReader,
  type FramingError,
  frameBody,
  frameKey,
  KEY_BYTES,
  MAX_CONTROL_BODY_BYTES,
  Op,
  OP_NAMES,
  shardOf,
  Status,
  STATUS_NAMES,
} from "../l2/protocol";
import type { EvictionPolicy } from "../tier";
import { TcpTransport } from "../transport/tcp";
import type { Endpoint, Transport, TransportConnection, TransportListener } from "../transport/transport";
import { type CacheServerConfig, type CacheServerConfigInput, cacheServerConfigSchema } from "./config";
import { CacheServerMetrics, startMetricsServer } from "./metrics";
import { KvStore, type StoredObject, type StoreStats } from "./store";

export interface CacheServerOptions extends CacheServerConfigInput {
  /** Default: TCP. */
  transport?: Transport;
  /** Overrides `policy` (tests, custom policies). */
  evictionPolicy?: EvictionPolicy;
  logger?: Logger;
}

export interface CacheServerStats extends StoreStats {
  connections: number;
  uptimeSeconds: number;
}

interface ServerConnection {
  conn: TransportConnection;
  reader: FrameReader;
  /** Paused because its replies are not being read fast enough. */
  backpressured: boolean;
}

export class CacheServer {
  readonly config: CacheServerConfig;
  readonly store: KvStore;
  readonly metrics: CacheServerMetrics;
  /** Receive buffers: evicted values' memory is reused for the next PUT of the same size. */
  readonly pool: BufferPool;
  private readonly connections = new Set<ServerConnection>();
  private readonly log: Logger;
  private readonly startedAt = Date.now();
  private listener: TransportListener | undefined;
  private metricsServer: { port: number; close(): Promise<void> } | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;
  /** Every shard's data port, in shard order (one shard: our own), once known; SHARDS answers with it. */
  private shardPorts: number[] | undefined;

  private constructor(
    config: CacheServerConfig,
    private readonly transport: Transport,
    policy: EvictionPolicy,
    logger: Logger,
  ) {
    this.config = config;
    this.log = logger;
    this.pool = new BufferPool({ maxIdleBytes: config.receivePoolBytes });
    this.store = new KvStore(config.capacityBytes, policy, (_key, obj) => this.releaseIfUnused(obj));
    this.metrics = new CacheServerMetrics(
      () => this.store.stats(),
      () => this.connections.size,
    );
  }

  /** Validates the options (ConfigError naming the field), then listens on the data and metrics ports. */
  static async start(options: CacheServerOptions): Promise<CacheServer> {
    const { transport, evictionPolicy, logger, ...input } = options;
    const config = parseConfig(cacheServerConfigSchema, input, "cache-server options");
    const policy = evictionPolicy ?? createEvictionPolicy({ name: config.policy, capacityBytes: config.capacityBytes });
    const server = new CacheServer(config, transport ?? new TcpTransport(), policy, logger ?? createLogger({ component: "cache-server" }));
    await server.listen();
    return server;
  }

  /** The data endpoint (with the real port when 0 was asked for). */
  get endpoint(): Endpoint {
    if (!this.listener) throw new Error("not listening");
    return this.listener.endpoint;
  }

  /** Tells this shard where its siblings listen (the shard supervisor calls it once all listen). */
  setShardPorts(ports: readonly number[]): void {
    if (ports.length !== this.config.shard.count) throw new RangeError(`expected ${this.config.shard.count} shard ports, got ${ports.length}`);
    this.shardPorts = [...ports];
  }

  get metricsPort(): number | undefined {
    return this.metricsServer?.port;
  }

  stats(): CacheServerStats {
    return { ...this.store.stats(), connections: this.connections.size, uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000) };
  }

  /**
   * Stops accepting connections and reading requests, lets queued replies flush for up to
   * `graceMs` (default: config.shutdownGraceMs), then closes every connection. `graceMs: 0` cuts
   * connections at once (what a crash looks like to clients).
   */
  close(opts: { graceMs?: number } = {}): Promise<void> {
    this.closing ??= this.shutdown(opts.graceMs ?? this.config.shutdownGraceMs);
    return this.closing;
  }

  private async listen(): Promise<void> {
    const c = this.config;
    this.listener = await this.transport.listen({ host: c.host, port: c.port }, (conn) => this.accept(conn));
    if (c.shard.count === 1) this.shardPorts = [this.listener.endpoint.port];
    try {
      if (c.metricsPort !== null) this.metricsServer = await startMetricsServer(this.metrics.registry, c.metricsHost ?? c.host, c.metricsPort);
    } catch (err) {
      await this.listener.close();
      throw err;
    }
    this.sweepTimer = setInterval(() => this.sweep(), Math.min(1_000, c.frameStallTimeoutMs)).unref();
    this.log.info("listening", {
      transport: this.transport.kind,
      endpoint: `${this.listener.endpoint.host}:${this.listener.endpoint.port}`,
      metrics_port: this.metricsServer?.port ?? null,
      capacity_bytes: c.capacityBytes,
      ...(c.shard.count > 1 ? { shard: c.shard.index, shards: c.shard.count } : {}),
      policy: this.store.stats().policy,
      max_value_bytes: c.maxValueBytes,
    });
  }

  private accept(conn: TransportConnection): FrameReader {
    const sc: ServerConnection = {
      conn,
      backpressured: false,
      reader: new FrameReader(
        { maxKeys: this.config.maxKeys, maxValueBytes: this.config.maxValueBytes },
        {
          onFrame: (frame) => this.handle(sc, frame),
          onFramingError: (err) => this.framingError(sc, err),
        },
        { allocate: (length) => this.pool.acquire(length), computeChecksums: this.config.verifyPutChecksums },
      ),
    };
    if (this.closing !== undefined || this.connections.size >= this.config.maxConnections) {
      this.metrics.protocolErrors.inc({ reason: this.closing ? "shutting_down" : "too_many_connections" });
      sc.reader.stop();
      conn.destroy();
      return sc.reader;
    }
    this.connections.add(sc);
    this.metrics.connectionsTotal.inc();
    void conn.closed.then(() => {
      this.connections.delete(sc);
      sc.reader.stop();
    });
    return sc.reader;
  }

  private framingError(sc: ServerConnection, err: FramingError): void {
    this.metrics.protocolErrors.inc({ reason: err.code });
    this.log.warn("framing_error", { peer: sc.conn.peer, code: err.code, message: err.message });
    const h = err.header;
    sc.conn.send(encodeFrame({ op: h?.op ?? 0, requestId: h?.requestId ?? 0, status: err.status, flags: Flag.REPLY }));
    sc.conn.end();
  }

  private sweep(): void {
    const now = Date.now();
    for (const sc of this.connections) {
      if (!sc.backpressured && sc.reader.midFrame && now - sc.reader.lastProgressAt > this.config.frameStallTimeoutMs) {
        this.metrics.protocolErrors.inc({ reason: "stalled_frame" });
        this.log.warn("stalled_frame", { peer: sc.conn.peer });
        sc.reader.stop();
        sc.conn.destroy();
      }
    }
  }

  private handle(sc: ServerConnection, frame: Frame): void {
    const start = performance.now();
    const h = frame.header;
    if (this.closing !== undefined) return this.reply(sc, h, start, Status.SHUTTING_DOWN);
    if ((h.flags & Flag.REPLY) !== 0) return this.reply(sc, h, start, Status.BAD_REQUEST);
    const bodyLength = h.payloadLength - h.keyCount * KEY_BYTES;
    const { index: shard, count: shards } = this.config.shard;
    // A key routed to the wrong shard would be stored where no GET looks: refuse it (the client refreshes its map).
    if (shards > 1 && h.keyCount === 1 && (h.op === Op.PUT || h.op === Op.GET || h.op === Op.DELETE) && shardOf(frameKey(frame, 0), shards) !== shard) {
      if (h.op === Op.PUT) this.pool.release(frame.payload);
      return this.reply(sc, h, start, Status.WRONG_SHARD);
    }
    switch (h.op) {
      case Op.PING:
        return this.reply(sc, h, start, h.keyCount === 0 && bodyLength === 0 ? Status.OK : Status.BAD_REQUEST);
      case Op.PUT: {
        if (h.keyCount !== 1) return this.reply(sc, h, start, Status.BAD_REQUEST);
        if (bodyLength > this.config.maxValueBytes) return this.reply(sc, h, start, Status.TOO_LARGE);
        // Without verifyPutChecksums the reader reports the header's checksum: it always matches here.
        if (frame.payloadChecksum !== h.checksum) {
          this.pool.release(frame.payload);
          return this.reply(sc, h, start, Status.BAD_CHECKSUM);
        }
        const key = frame.payload.toString("hex", 0, KEY_BYTES);
        const result = this.store.put(key, frameBody(frame), h.checksum);
        // Not stored: nothing else references the payload, its memory can take the next value.
        if (result !== "stored") this.pool.release(frame.payload);
        if (result === "no-space") return this.reply(sc, h, start, Status.NO_SPACE);
        return this.reply(sc, h, start, Status.OK, { flags: result === "exists" ? Flag.EXISTED : 0 });
      }
      case Op.GET: {
        if (h.keyCount !== 1 || bodyLength !== 0) return this.reply(sc, h, start, Status.BAD_REQUEST);
        const obj = this.store.get(frame.payload.toString("hex", 0, KEY_BYTES));
        const keys = [frameKey(frame, 0)];
        if (obj === undefined) return this.reply(sc, h, start, Status.NOT_FOUND, { keys });
        return this.reply(sc, h, start, Status.OK, { keys, body: obj.value, checksum: obj.checksum, object: obj });
      }
      case Op.PREFIX: {
        if (h.keyCount === 0 || bodyLength !== 0) return this.reply(sc, h, start, Status.BAD_REQUEST);
        // A key of another shard counts as absent: the prefix ends there.
        let n = 0;
        while (n < h.keyCount && (shards === 1 || shardOf(frameKey(frame, n), shards) === shard) && this.store.has(frame.payload.toString("hex", n * KEY_BYTES, (n + 1) * KEY_BYTES))) n++;
        const body = Buffer.allocUnsafe(4);
        body.writeUInt32LE(n, 0);
        return this.reply(sc, h, start, Status.OK, { body });
      }
      case Op.DELETE: {
        if (h.keyCount !== 1 || bodyLength !== 0) return this.reply(sc, h, start, Status.BAD_REQUEST);
        const deleted = this.store.delete(frame.payload.toString("hex", 0, KEY_BYTES));
        return this.reply(sc, h, start, deleted ? Status.OK : Status.NOT_FOUND);
      }
      case Op.STATS: {
        if (h.keyCount !== 0 || bodyLength !== 0) return this.reply(sc, h, start, Status.BAD_REQUEST);
        const body = Buffer.from(JSON.stringify(this.stats()), "utf8");
        return this.reply(sc, h, start, body.length <= MAX_CONTROL_BODY_BYTES ? Status.OK : Status.INTERNAL, { body });
      }
      case Op.SHARDS: {
        if (h.keyCount !== 0 || bodyLength !== 0) return this.reply(sc, h, start, Status.BAD_REQUEST);
        // Before the supervisor has told us our siblings' ports we cannot answer truthfully.
        if (this.shardPorts === undefined) return this.reply(sc, h, start, Status.SHUTTING_DOWN);
        return this.reply(sc, h, start, Status.OK, { body: encodeShardMap({ index: shard, ports: this.shardPorts }) });
      }
      default:
        return this.reply(sc, h, start, Status.BAD_REQUEST);
    }
  }

  private reply(
    sc: ServerConnection,
    h: FrameHeader,
    start: number,
    status: number,
    extra: { keys?: Uint8Array[]; body?: Uint8Array; checksum?: bigint; flags?: number; object?: StoredObject } = {},
  ): void {
    const op = OP_NAMES[h.op] ?? "unknown";
    const parts = encodeFrame({ op: h.op, requestId: h.requestId, status, flags: Flag.REPLY | (extra.flags ?? 0), keys: extra.keys, body: status === Status.OK ? extra.body : undefined, checksum: status === Status.OK ? extra.checksum : 0n });
    this.metrics.requests.inc({ op, status: STATUS_NAMES[status] ?? String(status) });
    // The reply references the stored value until written: its memory must not be reused before.
    const obj = extra.object;
    if (obj) obj.sending++;
    const written = sc.conn.send(parts, (err) => {
      if (obj) {
        obj.sending--;
        this.releaseIfUnused(obj);
      }
      if (!err) this.metrics.duration.observe({ op }, (performance.now() - start) / 1000);
    });
    if (!written && !sc.backpressured && sc.conn.pendingSendBytes > this.config.maxPendingReplyBytes) {
      sc.backpressured = true;
      sc.conn.pauseReceive();
      void sc.conn.whenWritable().then(() => {
        sc.backpressured = false;
        if (this.closing === undefined && !sc.conn.isClosed) sc.conn.resumeReceive();
      });
    }
  }

  /** Returns a removed object's memory to the receive pool once no reply is still sending it. */
  private releaseIfUnused(obj: StoredObject): void {
    if (obj.removed && obj.sending === 0 && !obj.released) {
      obj.released = true;
      this.pool.release(obj.value);
    }
  }

  private async shutdown(graceMs: number): Promise<void> {
    clearInterval(this.sweepTimer);
    await this.listener?.close();
    for (const sc of this.connections) {
      sc.conn.pauseReceive();
      sc.reader.stop();
    }
    const conns = [...this.connections];
    if (graceMs > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all(conns.map((sc) => sc.conn.whenWritable())),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, graceMs);
        }),
      ]);
      clearTimeout(timer);
      for (const sc of conns) {
        // Read again (the reader ignores it all) so the peer's FIN is seen and the socket closes.
        sc.conn.resumeReceive();
        sc.conn.end();
      }
      await Promise.race([Promise.all(conns.map((sc) => sc.conn.closed)), new Promise((resolve) => setTimeout(resolve, Math.min(graceMs, 1_000)).unref())]);
    }
    for (const sc of conns) sc.conn.destroy();
    await Promise.all(conns.map((sc) => sc.conn.closed));
    await this.metricsServer?.close();
    this.log.info("stopped", { ...this.store.stats() });
  }
}
