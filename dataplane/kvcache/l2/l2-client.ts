/**
 * The agent's L2 tier: KV chunks on remote cache servers placed by a consistent-hash ring.
 *
 * - Placement: `HashRing` over `host:port` ids (from config or `setMembers`, which the agent calls
 *   when the edge distributes a new membership); with `replicas: r` a key lives on the r distinct
 *   servers clockwise from it.
 * - Shards: a server may run several shards (threads, each on its own port; server/sharded-server.ts).
 *   On first use the client asks the advertised port for the shard ports (SHARDS) and sends each
 *   key to its shard (protocol.ts shardOf); a WRONG_SHARD reply is a miss and refreshes the map.
 *   Membership (config, the edge) still names one `host:port` per server.
 * - Connections: per shard, `dataConnections` pipelined connections for GET/PUT (the one with the
 *   fewest bytes in flight is used) plus one control connection for PREFIX/DELETE/STATS, so a probe
 *   never waits behind a 32 MiB value.
 * - Failures are misses: a request that times out, fails, or gets a corrupt reply (key echo,
 *   length or checksum wrong) is a miss/0 and the caller recomputes; nothing here throws for a
 *   server's sake. A connection error marks the server down at once, `failureThreshold`
 *   consecutive timeouts do too (per shard: one dead shard costs only its keys); while down its keys
 *   are misses without a round trip, and after `downMs` (doubling up to `maxDownMs` while it keeps
 *   failing) requests try it again.
 * - Zero copy: a PUT's value is written from the caller's buffer (do not modify it until put()
 *   resolves); a GET returns the buffer the reply was read into.
 *
 * @example
 * const l2 = new L2Client({ servers: ["10.0.0.7:7400", "10.0.0.8:7400"], replicas: 1 });
 * const hit = await l2.longestPrefix(keys);           // one PREFIX per server, in parallel
 * for (const key of keys.slice(0, hit)) await l2.get(key);
 * await l2.put(keys[hit], kvBytes);
 */
import { parseConfig } from "../../lib/config-error";
import { createLogger, type Logger } from "../../lib/log";
import { HashRing, type RingMember } from "../ring/hash-ring";
import type { KvKey, KvTier, TierStats } from "../tier";
import { TcpTransport } from "../transport/tcp";
import { type Endpoint, formatEndpoint, parseEndpoint, type Transport } from "../transport/transport";
import type { BufferPool } from "./buffer-pool";
import { Channel, type Outcome } from "./channel";
import { type L2ClientConfig, type L2ClientConfigInput, l2ClientConfigSchema } from "./config";
import { checksumAsync, Flag, keyToBytes, MAX_CONTROL_BODY_BYTES, Op, type ProtocolLimits, readPrefixReply, readShardsReply, shardOf, Status, verifyGetReply } from "./protocol";

export interface L2ClientOptions extends L2ClientConfigInput {
  /** Default: TCP. */
  transport?: Transport;
  logger?: Logger;
  /**
   * Where GET replies are read into. With a pool, a caller that is done with a value (copied it
   * to the engine, dropped it from L1) hands it back with `release(value)` and the next GET of the
   * same size reuses the memory instead of faulting in fresh pages. Default: none (fresh memory).
   */
  bufferPool?: BufferPool;
}

/** Counters beyond TierStats, for the agent's metrics. */
export interface L2ClientStats extends TierStats {
  gets: number;
  puts: number;
  /** PUTs no replica accepted (down, timeout, error, refused). */
  putFailures: number;
  prefixQueries: number;
  /** Sum of longestPrefix results. */
  prefixKeysFound: number;
  deletes: number;
  timeouts: number;
  /** Connection errors and error statuses. */
  errors: number;
  /** Replies that failed verification (key echo, length, checksum): counted as misses. */
  corruptReplies: number;
  /** Requests not sent because their server was marked down. */
  skippedDown: number;
  lateReplies: number;
  servers: ServerHealth[];
}

export interface ShardHealth {
  /** `host:port` of the shard. */
  id: string;
  up: boolean;
  /** Epoch ms until which the shard is considered down (0 when up). */
  downUntil: number;
  consecutiveFailures: number;
  inFlight: number;
}

/** A server: up when all its known shards are (the fields are the worst, or the sum, over them). */
export interface ServerHealth extends ShardHealth {
  shards: ShardHealth[];
}

/** What a cache server reports to STATS (server/cache-server.ts CacheServerStats). */
export interface RemoteServerStats {
  objects: number;
  bytesUsed: number;
  capacityBytes: number;
  evictions: number;
  hits: number;
  misses: number;
  [field: string]: unknown;
}

type Lane = "data" | "control";

/** One shard of a cache server (the whole server when it runs one): its connections and its circuit breaker. */
class ShardHandle {
  readonly endpoint: Endpoint;
  private readonly control: Channel;
  private readonly data: Channel[];
  downUntil = 0;
  consecutiveFailures = 0;
  private backoffMs: number;
  private closed = false;

  constructor(
    readonly id: string,
    private readonly config: L2ClientConfig,
    transport: Transport,
    limits: ProtocolLimits,
    private readonly log: Logger,
    pool: BufferPool | undefined,
  ) {
    this.endpoint = parseEndpoint(id);
    const allocate = pool ? (length: number) => pool.acquire(length) : undefined;
    const opts = { transport, endpoint: this.endpoint, limits, connectTimeoutMs: config.connectTimeoutMs, allocate };
    this.control = new Channel(opts);
    this.data = Array.from({ length: config.dataConnections }, () => new Channel(opts));
    this.backoffMs = config.downMs;
  }

  isUp(now = Date.now()): boolean {
    return now >= this.downUntil;
  }

  get inFlight(): number {
    return this.control.inFlight + this.data.reduce((n, c) => n + c.inFlight, 0);
  }

  get lateReplies(): number {
    return this.control.lateReplies + this.data.reduce((n, c) => n + c.lateReplies, 0);
  }

  async call(lane: Lane, spec: Parameters<Channel["request"]>[0], timeoutMs: number, expectBytes: number, signal?: AbortSignal): Promise<Outcome> {
    const channel = lane === "control" ? this.control : this.leastLoaded();
    const outcome = await channel.request(spec, timeoutMs, expectBytes, signal);
    if (outcome.kind === "reply") this.succeeded();
    else if (outcome.kind === "error") this.markDown(outcome.error.message);
    else if (outcome.kind === "timeout" && ++this.consecutiveFailures >= this.config.failureThreshold) this.markDown(`${this.consecutiveFailures} consecutive timeouts`);
    return outcome;
  }

  close(): void {
    this.closed = true;
    this.control.close();
    for (const c of this.data) c.close();
  }

  private leastLoaded(): Channel {
    let best = this.data[0] as Channel;
    for (const c of this.data) if (c.outstandingBytes < best.outstandingBytes || (c.outstandingBytes === best.outstandingBytes && c.inFlight < best.inFlight)) best = c;
    return best;
  }

  private succeeded(): void {
    if (this.downUntil !== 0) this.log.info("l2_server_up", { server: this.id });
    this.consecutiveFailures = 0;
    this.downUntil = 0;
    this.backoffMs = this.config.downMs;
  }

  markDown(reason: string): void {
    const now = Date.now();
    // Already down (failures of requests sent before are not news), or closed by us.
    if (now < this.downUntil || this.closed) return;
    this.downUntil = now + this.backoffMs;
    this.log.warn("l2_server_down", { server: this.id, reason, down_ms: this.backoffMs });
    this.backoffMs = Math.min(this.backoffMs * 2, this.config.maxDownMs);
    this.consecutiveFailures = 0;
    // Whatever is still in flight there is as good as lost: fail it now rather than at its timeout.
    const err = new Error(`server ${this.id} marked down`);
    this.control.reset(err);
    for (const c of this.data) c.reset(err);
  }

  health(now: number): ShardHealth {
    const up = this.isUp(now);
    return { id: this.id, up, downUntil: up ? 0 : this.downUntil, consecutiveFailures: this.consecutiveFailures, inFlight: this.inFlight };
  }
}

/** Discovery is retried at most this often after a WRONG_SHARD. */
const REDISCOVER_MIN_MS = 1_000;

/** One ring member: a cache server at its advertised `host:port`, and the shards it told us about. */
class ServerHandle {
  readonly endpoint: Endpoint;
  /** In shard order once discovered; before, only the advertised endpoint's. */
  shards: ShardHandle[];
  private discovered = false;
  private discovering: Promise<void> | undefined;
  private lastDiscoveryAt = 0;
  private retired = 0;

  constructor(
    readonly id: string,
    private readonly make: (id: string) => ShardHandle,
    private readonly discoveryTimeoutMs: number,
    private readonly log: Logger,
  ) {
    this.endpoint = parseEndpoint(id);
    this.shards = [make(id)];
  }

  /** Whether the shard map is known. */
  get mapped(): boolean {
    return this.discovered;
  }

  /** The shard that holds `key` when the shard map is known; undefined before discovery. */
  shardForSync(kb: Uint8Array): ShardHandle | undefined {
    return this.discovered ? this.shards[shardOf(kb, this.shards.length)] : undefined;
  }

  /** The shard that holds `key`, discovering the shard map first if needed; undefined when the server does not answer. */
  async shardFor(kb: Uint8Array): Promise<ShardHandle | undefined> {
    if (!this.discovered) await this.discover();
    return this.shardForSync(kb);
  }

  /** Asks a shard that is up for the shard ports (one request at a time). */
  discover(): Promise<void> {
    this.discovering ??= this.runDiscovery().finally(() => {
      this.discovering = undefined;
    });
    return this.discovering;
  }

  /** A shard said a key is not its own: the server was restarted with another shard count. */
  staleMap(): void {
    if (Date.now() - this.lastDiscoveryAt >= REDISCOVER_MIN_MS) void this.discover();
  }

  get lateReplies(): number {
    return this.retired + this.shards.reduce((n, s) => n + s.lateReplies, 0);
  }

  health(now: number): ServerHealth {
    const shards = this.shards.map((s) => s.health(now));
    return {
      id: this.id,
      up: shards.every((s) => s.up),
      downUntil: Math.max(...shards.map((s) => s.downUntil)),
      consecutiveFailures: Math.max(...shards.map((s) => s.consecutiveFailures)),
      inFlight: shards.reduce((n, s) => n + s.inFlight, 0),
      shards,
    };
  }

  close(): void {
    for (const s of this.shards) s.close();
  }

  private async runDiscovery(): Promise<void> {
    this.lastDiscoveryAt = Date.now();
    const via = this.shards.find((s) => s.isUp());
    if (via === undefined) return;
    const out = await via.call("control", { op: Op.SHARDS }, this.discoveryTimeoutMs, 256);
    if (out.kind !== "reply") return;
    const map = readShardsReply(out.frame);
    if (map === undefined) {
      // Not ready yet, or not a server we understand: its keys are misses until the next try.
      via.markDown(`no shard map (status ${out.frame.header.status})`);
      return;
    }
    const byId = new Map(this.shards.map((s) => [s.id, s]));
    const next = map.ports.map((port) => {
      const id = formatEndpoint({ host: this.endpoint.host, port });
      const known = byId.get(id);
      byId.delete(id);
      return known ?? this.make(id);
    });
    for (const gone of byId.values()) {
      this.retired += gone.lateReplies;
      gone.close();
    }
    if (next.length !== this.shards.length || !this.discovered) this.log.info("l2_server_shards", { server: this.id, shards: next.length });
    this.shards = next;
    this.discovered = true;
  }
}

export class L2Client implements KvTier {
  readonly name = "l2";
  readonly config: L2ClientConfig;
  private readonly ring: HashRing;
  private readonly handles = new Map<string, ServerHandle>();
  private readonly transport: Transport;
  private readonly limits: ProtocolLimits;
  private readonly log: Logger;
  private readonly pool: BufferPool | undefined;
  private closed = false;
  private statsTimer: NodeJS.Timeout | undefined;
  private retiredLateReplies = 0;
  private readonly counters = { hits: 0, misses: 0, bytesOut: 0, bytesIn: 0, gets: 0, puts: 0, putFailures: 0, prefixQueries: 0, prefixKeysFound: 0, deletes: 0, timeouts: 0, errors: 0, corruptReplies: 0, skippedDown: 0 };
  private remote = { evictions: 0, bytesUsed: 0, capacityBytes: 0 };

  /** Validates `options` (ConfigError naming the field). */
  constructor(options: L2ClientOptions = {}) {
    const { transport, logger, bufferPool, ...input } = options;
    this.config = parseConfig(l2ClientConfigSchema, input, "l2 client options");
    this.pool = bufferPool;
    this.transport = transport ?? new TcpTransport();
    this.log = logger ?? createLogger({ component: "kv-l2" });
    this.limits = { maxKeys: this.config.maxKeys, maxValueBytes: this.config.maxValueBytes };
    this.ring = new HashRing([], { virtualNodes: this.config.virtualNodes });
    this.setMembers(this.config.servers);
    if (this.config.statsRefreshMs > 0) {
      this.statsTimer = setInterval(() => void this.refreshServerStats().catch(() => {}), this.config.statsRefreshMs);
      this.statsTimer.unref();
    }
  }

  /** The current servers (ring members), as `host:port`. */
  members(): string[] {
    return this.ring.memberIds();
  }

  /**
   * Replaces the membership (`host:port` ids, optionally weighted). Keys move only to or from the
   * servers that changed. Connections to removed servers are closed; their in-flight requests
   * settle as misses.
   */
  setMembers(members: readonly (string | RingMember)[]): void {
    const normalized: RingMember[] = members.map((m) => (typeof m === "string" ? { id: m } : m));
    for (const m of normalized) parseEndpoint(m.id);
    this.ring.setMembers(normalized);
    const ids = new Set(normalized.map((m) => m.id));
    for (const [id, h] of this.handles) {
      if (!ids.has(id)) {
        this.retiredLateReplies += h.lateReplies;
        h.close();
        this.handles.delete(id);
      }
    }
    for (const id of ids) {
      if (this.handles.has(id)) continue;
      const make = (shardId: string) => new ShardHandle(shardId, this.config, this.transport, this.limits, this.log, this.pool);
      this.handles.set(id, new ServerHandle(id, make, this.timeoutFor(0), this.log));
    }
  }

  /** The servers that hold (or would hold) `key`, primary first. */
  serversFor(key: KvKey): string[] {
    return this.ring.replicas(key, this.config.replicas);
  }

  async get(key: KvKey, signal?: AbortSignal): Promise<Uint8Array | undefined> {
    const kb = keyToBytes(key);
    this.counters.gets++;
    if (!this.closed && !signal?.aborted) {
      const timeout = this.timeoutFor(this.config.expectedValueBytes);
      for (const server of this.targets(key)) {
        const h = server.shardForSync(kb) ?? (await server.shardFor(kb));
        if (h === undefined || !h.isUp()) {
          this.counters.skippedDown++;
          continue;
        }
        const out = await h.call("data", { op: Op.GET, keys: [kb] }, timeout, this.config.expectedValueBytes, signal);
        if (out.kind === "reply") {
          const r = verifyGetReply(out.frame, kb);
          if ("value" in r) {
            this.counters.hits++;
            this.counters.bytesOut += r.value.length;
            return r.value;
          }
          if (r.miss === "corrupt") {
            this.counters.corruptReplies++;
            // The server may hold a damaged copy (it stores values unverified): delete it, or it
            // would refuse the good copy the next PUT brings (a stored key is never overwritten).
            void h.call("control", { op: Op.DELETE, keys: [kb] }, this.timeoutFor(0), 0);
          } else if (r.miss === "status") {
            this.counters.errors++;
            if (out.frame.header.status === Status.WRONG_SHARD) server.staleMap();
          }
        } else if (out.kind === "aborted") break;
        else this.countFailure(out);
      }
    }
    this.counters.misses++;
    return undefined;
  }

  /**
   * Writes `value` to each replica (in parallel). Resolves when every replica answered or failed;
   * never rejects for a server's sake (L2 is a cache). Rejects for an invalid key (TypeError) or a
   * value over maxValueBytes (RangeError).
   */
  async put(key: KvKey, value: Uint8Array): Promise<void> {
    await this.tryPut(key, value);
  }

  /** put(), resolving with whether at least one replica stored the value (or already held it). */
  async tryPut(key: KvKey, value: Uint8Array): Promise<boolean> {
    const kb = keyToBytes(key);
    if (value.byteLength > this.config.maxValueBytes) throw new RangeError(`value of ${value.byteLength} bytes exceeds maxValueBytes ${this.config.maxValueBytes}`);
    this.counters.puts++;
    if (this.closed) {
      this.counters.putFailures++;
      return false;
    }
    const sum = await checksumAsync(kb, value);
    const timeout = this.timeoutFor(value.byteLength);
    const results = await Promise.all(
      this.targets(key).map(async (server) => {
        const h = server.shardForSync(kb) ?? (await server.shardFor(kb));
        if (h === undefined || !h.isUp()) {
          this.counters.skippedDown++;
          return false;
        }
        const out = await h.call("data", { op: Op.PUT, keys: [kb], body: value, checksum: sum }, timeout, 0);
        if (out.kind !== "reply") {
          this.countFailure(out);
          return false;
        }
        const status = out.frame.header.status;
        if (status !== Status.OK) this.counters.errors++;
        if (status === Status.WRONG_SHARD) server.staleMap();
        return status === Status.OK;
      }),
    );
    const stored = results.some(Boolean);
    if (stored) this.counters.bytesIn += value.byteLength;
    else this.counters.putFailures++;
    return stored;
  }

  /**
   * How many of `keys`, from the first, L2 holds without a gap: the keys are grouped by owning
   * server, one PREFIX goes to each server in parallel, and the prefix ends at the first key its
   * server does not hold (or whose server is down or does not answer in time). Probes at most
   * maxKeys keys.
   */
  async longestPrefix(keys: readonly KvKey[], signal?: AbortSignal): Promise<number> {
    this.counters.prefixQueries++;
    const n = Math.min(keys.length, this.config.maxKeys);
    if (n === 0 || this.closed || signal?.aborted) return 0;
    const groups = new Map<ShardHandle, { positions: number[]; keys: Buffer[] }>();
    let limit = n;
    const kbs = keys.slice(0, n).map((k) => keyToBytes(k));
    // Shard maps first (only on a server's first use), so the keys can then be grouped per shard.
    const unmapped = new Set<ServerHandle>();
    for (let i = 0; i < n; i++) for (const server of this.targets(keys[i] as KvKey)) if (server.shardForSync(kbs[i] as Buffer) === undefined) unmapped.add(server);
    if (unmapped.size > 0) await Promise.all([...unmapped].map((server) => server.discover()));
    const now = Date.now();
    for (let i = 0; i < n; i++) {
      const key = keys[i] as KvKey;
      const kb = kbs[i] as Buffer;
      let h: ShardHandle | undefined;
      for (const server of this.targets(key)) {
        const shard = server.shardForSync(kb);
        if (shard?.isUp(now)) {
          h = shard;
          break;
        }
      }
      if (h === undefined) {
        this.counters.skippedDown++;
        limit = i;
        break;
      }
      let g = groups.get(h);
      if (g === undefined) groups.set(h, (g = { positions: [], keys: [] }));
      g.positions.push(i);
      g.keys.push(kb);
    }
    const present = new Uint8Array(limit);
    const timeout = this.timeoutFor(0);
    await Promise.all(
      [...groups].map(async ([h, g]) => {
        const out = await h.call("control", { op: Op.PREFIX, keys: g.keys }, timeout, 0, signal);
        let count = 0;
        if (out.kind === "reply") {
          const c = readPrefixReply(out.frame, g.keys.length);
          if (c === undefined) this.counters.corruptReplies++;
          else count = c;
        } else this.countFailure(out);
        for (let j = 0; j < count; j++) present[g.positions[j] as number] = 1;
      }),
    );
    if (signal?.aborted) return 0;
    let found = 0;
    while (found < limit && present[found] === 1) found++;
    this.counters.prefixKeysFound += found;
    return found;
  }

  /** Removes the key from every replica that is up (best effort). */
  async delete(key: KvKey): Promise<void> {
    const kb = keyToBytes(key);
    this.counters.deletes++;
    if (this.closed) return;
    await Promise.all(
      this.targets(key).map(async (server) => {
        const h = server.shardForSync(kb) ?? (await server.shardFor(kb));
        if (h === undefined || !h.isUp()) return;
        const out = await h.call("control", { op: Op.DELETE, keys: [kb] }, this.timeoutFor(0), 0);
        if (out.kind !== "reply") this.countFailure(out);
      }),
    );
  }

  /**
   * Hands a value returned by get() back to the buffer pool (no-op without one). Only for values
   * nothing references any more: the memory is overwritten by a later GET.
   */
  release(value: Uint8Array): void {
    this.pool?.release(value);
  }

  /** Round trip to one server (health checks); false when down, failing or timing out. */
  async ping(server: string): Promise<boolean> {
    const h = this.handles.get(server)?.shards[0];
    if (h === undefined || this.closed) return false;
    const out = await h.call("control", { op: Op.PING }, this.timeoutFor(0), 0);
    return out.kind === "reply" && out.frame.header.status === Status.OK && (out.frame.header.flags & Flag.REPLY) !== 0;
  }

  /**
   * Asks every shard of every server that is up for its STATS and updates the remote part of
   * stats() (objects, bytes used, capacity, evictions: sums over the servers that answered). A
   * sharded server's numeric fields are summed over the shards that answered.
   */
  async refreshServerStats(): Promise<Map<string, RemoteServerStats | undefined>> {
    const out = new Map<string, RemoteServerStats | undefined>();
    await Promise.all(
      [...this.handles].map(async ([id, server]) => {
        if (this.closed) return out.set(id, undefined);
        if (!server.mapped) await server.discover();
        const parts = await Promise.all(
          server.shards.map(async (h) => {
            if (!h.isUp()) return undefined;
            const r = await h.call("control", { op: Op.STATS }, this.timeoutFor(0), MAX_CONTROL_BODY_BYTES);
            if (r.kind !== "reply" || r.frame.header.status !== Status.OK) return undefined;
            try {
              return JSON.parse(r.frame.payload.toString("utf8")) as RemoteServerStats;
            } catch {
              this.counters.corruptReplies++;
              return undefined;
            }
          }),
        );
        const known = parts.filter((p): p is RemoteServerStats => p !== undefined);
        if (known.length === 0) return out.set(id, undefined);
        const merged: RemoteServerStats = { ...(known[0] as RemoteServerStats) };
        for (const field of Object.keys(merged)) if (typeof merged[field] === "number") merged[field] = known.reduce((a, p) => a + (Number(p[field]) || 0), 0);
        out.set(id, merged);
      }),
    );
    const known = [...out.values()].filter((s): s is RemoteServerStats => s !== undefined);
    if (known.length > 0) {
      const sum = (f: (s: RemoteServerStats) => number) => known.reduce((a, s) => a + (Number(f(s)) || 0), 0);
      this.remote = { evictions: sum((s) => s.evictions), bytesUsed: sum((s) => s.bytesUsed), capacityBytes: sum((s) => s.capacityBytes) };
    }
    return out;
  }

  stats(): TierStats {
    const c = this.counters;
    return { hits: c.hits, misses: c.misses, bytesOut: c.bytesOut, bytesIn: c.bytesIn, evictions: this.remote.evictions, bytesUsed: this.remote.bytesUsed, capacityBytes: this.remote.capacityBytes };
  }

  clientStats(): L2ClientStats {
    const now = Date.now();
    const handles = [...this.handles.values()];
    return {
      ...this.stats(),
      ...this.counters,
      lateReplies: this.retiredLateReplies + handles.reduce((n, h) => n + h.lateReplies, 0),
      servers: handles.map((h) => h.health(now)),
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.statsTimer);
    for (const h of this.handles.values()) h.close();
  }

  /** The replicas' handles for `key`, primary first. */
  private targets(key: KvKey): ServerHandle[] {
    const ids = this.config.replicas === 1 ? [this.ring.owner(key)] : this.ring.replicas(key, this.config.replicas);
    const out: ServerHandle[] = [];
    for (const id of ids) {
      const h = id === undefined ? undefined : this.handles.get(id);
      if (h) out.push(h);
    }
    return out;
  }

  private timeoutFor(bytes: number): number {
    return this.config.timeoutBaseMs + Math.ceil((bytes * 1000) / this.config.timeoutMinBytesPerSec);
  }

  private countFailure(out: Outcome): void {
    if (out.kind === "timeout") this.counters.timeouts++;
    else if (out.kind === "error") this.counters.errors++;
  }
}
