/**
 * The node agent's KV tiers: one L1 DRAM tier per agent, optionally an L2 client on the region's
 * cache servers, shared by the agent's engines (keys carry the model identity, so engines of
 * different models never meet). Engines get a handle, `EngineKvTiers`, that looks prompts up and
 * stores computed chunks; the agent reports the tiers in heartbeats and metrics.
 *
 * Lookup: L1's longest prefix first, then L2's for the rest (one PREFIX per server), then GETs of
 * those chunks in parallel. Chunks from L2 are copied into L1 so the next request finds them here.
 *
 * Ingestion into L2 (`l2Ingestion`, AIBrix's names): `all` (default) writes every chunk stored in
 * L1 through to L2 as it arrives, so another agent of the region can load it at once; `hot` writes
 * the chunks L1's policy marks hot; `evicted` writes chunks as L1 evicts them (L2 as a victim
 * cache: least traffic, but a prefix reaches other agents only once this one runs out of room).
 * Writes are never awaited: at most `l2MaxWritesInFlight` run per server, more wait in a queue of
 * at most `l2MaxQueuedBytes`, and beyond that they are dropped (L2 is best effort, the chunk can be
 * computed again). The chunks one L1 operation hands over are written head first: L1 stores a chain
 * tail first (for its eviction order), but in L2 a chain is only as useful as its head, so a
 * backlog must never hold a chain's tail while its head is dropped. Chunks known to be in L2
 * already (fetched from it, or written) are not written again.
 *
 * Failures are misses: the L2 client never throws for a server's sake, and a lookup that times out
 * or is aborted returns the prefix found so far.
 */
import { setMaxListeners } from "node:events";
import { z } from "zod";
import { Counter, Gauge, type Registry } from "prom-client";
import type { CacheServerList, KvCacheReport, KvTierReport } from "../../protocol/heartbeat";
import { createLogger, type Logger } from "../lib/log";
import { evictionPolicyNameSchema } from "./eviction/index";
import { s3fifoOptionsSchema } from "./eviction/s3fifo";
import { chunkKeys, DEFAULT_CHUNK_TOKENS, modelIdentityFromName } from "./keys";
import { DramTier, L1_S3FIFO_DEFAULTS } from "./l1/dram-tier";
import { BufferPool } from "./l2/buffer-pool";
import { l2ClientConfigSchema } from "./l2/config";
import { L2Client } from "./l2/l2-client";
import { tierMetrics, type KvTierMetrics } from "./metrics";
import { parseByteSize } from "./server/config";
import type { KvKey, KvTier } from "./tier";

/** `4GiB`, `512MiB`, or a number of bytes. */
const byteSize = z.union([z.number(), z.string()], { error: "must be a number of bytes or a size such as 4GiB" }).transform((v, ctx) => {
  let n: number;
  try {
    n = typeof v === "number" ? v : parseByteSize(v);
  } catch (err) {
    ctx.addIssue({ code: "custom", message: err instanceof Error ? err.message : String(err) });
    return z.NEVER;
  }
  if (!Number.isSafeInteger(n) || n < 1) {
    ctx.addIssue({ code: "custom", message: `must be a whole number of bytes, at least 1 (got ${v})` });
    return z.NEVER;
  }
  return n;
});

/** What a model's KV bytes are a function of (keys.ts): a name at a pinned revision, or the model file's SHA-256. */
const modelIdentitySchema = z.union([
  z.literal("file"),
  z.strictObject({ name: z.string().min(1).max(512), revision: z.string().min(1).max(256) }),
]);
export type ModelIdentityConfig = z.infer<typeof modelIdentitySchema>;

export const agentKvCacheConfigSchema = z.strictObject({
  /** Tokens per chunk key; every agent and cache server of a region must use the same value. */
  chunkTokens: z.number().int().min(16).max(65_536).default(DEFAULT_CHUNK_TOKENS),
  l1: z.strictObject({
    /** The L1 byte budget (`4GiB`, `512MiB`, or a number). */
    bytes: byteSize,
    policy: evictionPolicyNameSchema.default("s3fifo"),
    s3fifo: s3fifoOptionsSchema.extend({ smallRatio: z.number().gt(0).lt(1).default(L1_S3FIFO_DEFAULTS.smallRatio) }).optional(),
  }),
  /** The L2 client (docs/kv-cache.md "L2 client"); `{}` takes the membership from the edge. Absent: no L2. */
  l2: l2ClientConfigSchema.optional(),
  /** Which L1 chunks are written to L2 (see the file comment). */
  l2Ingestion: z.enum(["all", "hot", "evicted"]).default("all"),
  /** L2 writes in flight per server (primary); more wait in the queue. */
  l2MaxWritesInFlight: z.number().int().min(1).max(1024).default(8),
  /** Bytes of L2 writes waiting (all servers) beyond which new ones are dropped. */
  l2MaxQueuedBytes: byteSize.default(256 * 1024 * 1024),
  /**
   * Model identity per engine model (the key namespace of its KV). Default: `llamacpp`, the GGUF's
   * SHA-256 (`"file"`); `sim`, its name and modelShape.
   */
  modelIdentity: z.record(z.string().min(1), modelIdentitySchema).default({}),
  /** The window over which heartbeats report hit rates. */
  windowMs: z.number().int().min(1_000).max(3_600_000).default(60_000),
});
export type AgentKvCacheConfig = z.output<typeof agentKvCacheConfigSchema>;
export type AgentKvCacheConfigInput = z.input<typeof agentKvCacheConfigSchema>;

/** A prefix found in the tiers. Call `done()` once the values have been used (they may be pooled L2 buffers). */
export interface TierLookup {
  /** The chunks' values in chain order: `values[i]` belongs to `keys[i]`. */
  values: Uint8Array[];
  /** How many came from L1 (the first `fromL1`), and from L2 (the rest). */
  fromL1: number;
  fromL2: number;
  done(): void;
}

/** Per-engine lookup accounting (tokens). */
export interface EngineTierCounters {
  /** Prompt tokens the engine's own cache lacked and the tiers were asked for. */
  queriedTokens: number;
  l1Tokens: number;
  l2Tokens: number;
  /** Chunks stored into L1 by this engine. */
  storedChunks: number;
}

/** What an engine sees of the agent's tiers. */
export interface EngineKvTiers {
  readonly model: string;
  readonly chunkTokens: number;
  /** The configured identity (already formatted), when the agent config names one. */
  readonly configuredIdentity: string | undefined;
  readonly log: Logger;
  /** The chunk keys of `tokens` (full chunks only) under `identity` and `namespace`. */
  keys(tokens: ArrayLike<number>, identity: string, namespace: string): KvKey[];
  /** Whether L1 holds `key` (a probe: no stats, no eviction effect). */
  inL1(key: KvKey): boolean;
  /** The values of L1's longest prefix of `keys`, synchronously (counts hits and a miss per key after it). */
  l1GetPrefix(keys: readonly KvKey[]): Uint8Array[];
  /** The longest prefix of `keys` held by L1 then L2. Never rejects. */
  lookup(keys: readonly KvKey[], signal?: AbortSignal): Promise<TierLookup>;
  /** Copies L2's longest prefix of `keys` into L1; resolves to its length (0 without L2). Never rejects. */
  prefetchFromL2(keys: readonly KvKey[], signal?: AbortSignal): Promise<number>;
  /** Stores chunks into L1 (copied; the last first), from where ingestion may write them to L2. */
  store(keys: readonly KvKey[], values: readonly Uint8Array[]): number;
  /** Accounts one lookup: `queried` tokens asked, `l1`/`l2` tokens supplied. */
  record(queried: number, l1: number, l2: number): void;
  counters(): EngineTierCounters;
}

interface Sample {
  at: number;
  values: number[];
}

/** Differences of cumulative counters over the last `windowMs` (sampled at each report). */
export class CounterWindow {
  private readonly samples: Sample[];
  /** Counting starts from zero at `start`: the first report covers everything since then. */
  constructor(
    private readonly windowMs: number,
    start: number,
  ) {
    this.samples = [{ at: start, values: [] }];
  }

  /** Records `values` at `now` and returns their increase since the oldest sample inside the window. */
  delta(values: number[], now: number): number[] {
    this.samples.push({ at: now, values: [...values] });
    // Keep one sample at or before the window's start, so the delta covers the whole window.
    while (this.samples.length > 2 && (this.samples[1] as Sample).at <= now - this.windowMs) this.samples.shift();
    const base = (this.samples[0] as Sample).values;
    return values.map((v, i) => Math.max(0, v - (base[i] ?? 0)));
  }
}

export interface AgentKvTiersOptions {
  log?: Logger;
  /** Default: Date.now (tests). */
  now?: () => number;
}

/** The agent's tiers. `knownInL2` holds L1-resident keys (and queued writes) only, so it is bounded by L1. */
export class AgentKvTiers {
  readonly config: AgentKvCacheConfig;
  readonly chunkTokens: number;
  readonly l1: DramTier;
  readonly l2: L2Client | undefined;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly knownInL2 = new Set<KvKey>();
  private readonly writesInFlight = new Map<string, number>();
  private readonly pendingWrites = new Set<Promise<void>>();
  /** Writes waiting for a server's in-flight slot, per server, oldest first. */
  private readonly queued = new Map<string, { key: KvKey; value: Buffer }[]>();
  private queuedBytes = 0;
  /** Chunks L1 handed over during the current synchronous operation, in L1's order (a chain's tail first). */
  private batch: { key: KvKey; value: Buffer }[] = [];
  private readonly idleWaiters: (() => void)[] = [];
  readonly spills = { sent: 0, dropped: 0 };
  private readonly engines = new Map<string, { counters: EngineTierCounters; window: CounterWindow }>();
  private readonly tierWindows = new Map<string, CounterWindow>();
  private metrics: KvTierMetrics | undefined;
  private l2Timed: KvTier | undefined;
  /** The membership last applied, normalized, so an unchanged list from the edge costs nothing. */
  private appliedMembers: string;
  private closed = false;
  private readonly createdAt: number;

  constructor(config: AgentKvCacheConfigInput | AgentKvCacheConfig, opts: AgentKvTiersOptions = {}) {
    this.config = agentKvCacheConfigSchema.parse(config);
    this.chunkTokens = this.config.chunkTokens;
    this.log = opts.log ?? createLogger({ component: "kv-tiers" });
    this.now = opts.now ?? Date.now;
    this.createdAt = this.now();
    const ingestion = this.config.l2Ingestion;
    this.l1 = new DramTier(
      {
        capacityBytes: this.config.l1.bytes,
        policy: this.config.l1.policy,
        ...(this.config.l1.s3fifo ? { s3fifo: this.config.l1.s3fifo } : {}),
      },
      {
        onPut: ingestion === "all" ? (key, value) => this.offerToL2(key, value) : undefined,
        onHotAccess: ingestion === "hot" ? (key, value) => this.offerToL2(key, value) : undefined,
        onEvict: (key, value) => {
          if (ingestion === "evicted") this.offerToL2(key, value);
          this.knownInL2.delete(key);
        },
        onCallbackError: (error, callback, key) => this.log.warn("kv_tier_callback_failed", { callback, key: key.slice(0, 16), error: String(error) }),
      },
    );
    if (this.config.l2) {
      this.l2 = new L2Client({ ...this.config.l2, bufferPool: new BufferPool(), logger: this.log.child({ component: "kv-l2" }) });
    }
    this.l2Timed = this.l2;
    this.appliedMembers = membershipKey(this.config.l2?.servers ?? []);
  }

  /** The tiers, L1 first (for metrics). */
  tiers(): KvTier[] {
    return this.l2 ? [this.l1, this.l2] : [this.l1];
  }

  /**
   * Registers the tier metrics (docs/dashboard.md) on the agent's registry. L1's latency is
   * observed around its synchronous calls; L2's through a timed wrapper.
   */
  registerMetrics(registry: Registry): void {
    if (this.metrics) return;
    this.metrics = tierMetrics(registry, () => this.tiers());
    if (this.l2) this.l2Timed = this.metrics.timed(this.l2);
    const spills = this.spills;
    new Counter({
      name: "switchyard_kv_tier_l2_writes_total",
      help: "Chunks written from L1 to L2 (sent), or dropped because the write queue was full",
      labelNames: ["result"],
      registers: [registry],
      collect() {
        this.reset();
        this.inc({ result: "sent" }, spills.sent);
        this.inc({ result: "dropped" }, spills.dropped);
      },
    });
    const queue = () => this.queuedBytes;
    new Gauge({
      name: "switchyard_kv_tier_l2_write_queue_bytes",
      help: "Bytes of L2 writes waiting for an in-flight slot",
      registers: [registry],
      collect() {
        this.set(queue());
      },
    });
    const engines = this.engines;
    new Counter({
      name: "switchyard_kv_tier_lookup_tokens_total",
      help: "Prompt tokens the engine's own cache lacked, by where they came from: l1, l2, or computed",
      labelNames: ["model", "source"],
      registers: [registry],
      collect() {
        this.reset();
        for (const [model, { counters: c }] of engines) {
          this.inc({ model, source: "l1" }, c.l1Tokens);
          this.inc({ model, source: "l2" }, c.l2Tokens);
          this.inc({ model, source: "computed" }, Math.max(0, c.queriedTokens - c.l1Tokens - c.l2Tokens));
        }
      },
    });
  }

  private observe(op: "get" | "put", start: bigint): void {
    this.metrics?.opSeconds.observe({ tier: "l1", op }, Number(process.hrtime.bigint() - start) / 1e9);
  }

  /** Replaces the L2 membership (from the edge); no-op without L2 or when nothing changed. */
  setMembers(list: CacheServerList): void {
    if (!this.l2 || this.closed) return;
    const applied = membershipKey(list);
    if (applied === this.appliedMembers) return;
    try {
      this.l2.setMembers(list);
      this.appliedMembers = applied;
      this.log.info("kv_l2_members", { servers: this.l2.members() });
    } catch (err) {
      this.log.warn("kv_l2_members_rejected", { error: err instanceof Error ? err.message : String(err) });
    }
  }

  /** A handle for the engine serving `model`. */
  forEngine(model: string, log?: Logger): EngineKvTiers {
    let entry = this.engines.get(model);
    if (!entry) {
      entry = { counters: { queriedTokens: 0, l1Tokens: 0, l2Tokens: 0, storedChunks: 0 }, window: new CounterWindow(this.config.windowMs, this.now()) };
      this.engines.set(model, entry);
    }
    const counters = entry.counters;
    const configured = this.config.modelIdentity[model];
    const chunkTokens = this.chunkTokens;
    return {
      model,
      chunkTokens,
      configuredIdentity: configured && configured !== "file" ? modelIdentityFromName(configured.name, configured.revision) : undefined,
      log: log ?? this.log.child({ model }),
      keys: (tokens, identity, namespace) => chunkKeys(tokens, { chunkTokens, modelIdentity: identity, namespace }),
      inL1: (key) => this.l1.has(key),
      l1GetPrefix: (keys) => {
        if (this.closed) return [];
        const t0 = process.hrtime.bigint();
        const values = this.l1.getPrefix(keys);
        this.observe("get", t0);
        return values;
      },
      lookup: (keys, signal) => this.lookup(keys, signal),
      prefetchFromL2: (keys, signal) => this.prefetchFromL2(keys, signal),
      store: (keys, values) => {
        const n = this.store(keys, values);
        counters.storedChunks += n;
        return n;
      },
      record: (queried, l1, l2) => {
        counters.queriedTokens += queried;
        counters.l1Tokens += l1;
        counters.l2Tokens += l2;
      },
      counters: () => ({ ...counters }),
    };
  }

  /** Whether the configuration asks for the model file's hash as `model`'s identity (the default for llama.cpp). */
  identityFromFile(model: string): boolean {
    const c = this.config.modelIdentity[model];
    return c === undefined || c === "file";
  }

  async lookup(keys: readonly KvKey[], signal?: AbortSignal): Promise<TierLookup> {
    const noop = () => {};
    if (this.closed || keys.length === 0) return { values: [], fromL1: 0, fromL2: 0, done: noop };
    const t0 = process.hrtime.bigint();
    const values: Uint8Array[] = this.l1.getPrefix(keys);
    this.observe("get", t0);
    const fromL1 = values.length;
    if (fromL1 === keys.length) return { values, fromL1, fromL2: 0, done: noop };
    const fetched = await this.fromL2(keys.slice(fromL1), signal);
    values.push(...fetched);
    const l2Client = this.l2;
    let released = false;
    return {
      values,
      fromL1,
      fromL2: fetched.length,
      done: () => {
        if (released || !l2Client) return;
        released = true;
        for (const v of fetched) l2Client.release(v);
      },
    };
  }

  /**
   * Copies L2's longest prefix of `keys` into L1 and returns its length. For an engine that reads L1
   * synchronously (the emulator) and so must bring remote chunks up before it asks. Not an access
   * of L1: the engine's own read of L1 is.
   */
  async prefetchFromL2(keys: readonly KvKey[], signal?: AbortSignal): Promise<number> {
    if (this.closed || keys.length === 0) return 0;
    const fetched = await this.fromL2(keys, signal);
    for (const v of fetched) this.l2?.release(v);
    return fetched.length;
  }

  /** L2's longest prefix of `keys`, copied into L1 as well; the values are L2 buffers the caller releases. */
  private async fromL2(rest: readonly KvKey[], signal?: AbortSignal): Promise<Uint8Array[]> {
    const l2 = this.l2Timed;
    if (!this.l2 || !l2 || rest.length === 0 || this.l2.members().length === 0 || signal?.aborted) return [];
    // One listener on the caller's signal, whatever the number of GETs (each GET listens to `scope`).
    const scope = new AbortController();
    setMaxListeners(rest.length + 8, scope.signal);
    const abort = () => scope.abort(signal?.reason);
    signal?.addEventListener("abort", abort, { once: true });
    let got: (Uint8Array | undefined)[];
    try {
      const found = await l2.longestPrefix(rest, scope.signal);
      if (found === 0) return [];
      // The GETs pipeline on the servers' data connections; a miss or timeout cuts the prefix there.
      got = await Promise.all(rest.slice(0, found).map((k) => l2.get(k, scope.signal)));
    } finally {
      signal?.removeEventListener("abort", abort);
    }
    let n = 0;
    while (n < got.length && got[n] !== undefined) n++;
    const fetched = got.slice(0, n) as Uint8Array[];
    const l2Client = this.l2;
    for (const v of got.slice(n)) if (v) l2Client.release(v);
    if (n > 0 && !this.closed) {
      const keysIn = rest.slice(0, n);
      // Known to be in L2 before L1 sees them, so ingestion does not write them back (chunks they evict still go).
      for (const k of keysIn) this.knownInL2.add(k);
      const t1 = process.hrtime.bigint();
      this.l1.putChain(keysIn, fetched);
      this.observe("put", t1);
      for (const k of keysIn) if (!this.l1.has(k)) this.knownInL2.delete(k); // refused by L1: the set tracks L1's keys only
    }
    return fetched;
  }

  store(keys: readonly KvKey[], values: readonly Uint8Array[]): number {
    if (this.closed) return 0;
    const t0 = process.hrtime.bigint();
    const n = this.l1.putChain(keys, values);
    this.observe("put", t0);
    return n;
  }

  /** Collects a chunk L1 hands over; the batch is written once the L1 operation is complete, head first. */
  private offerToL2(key: KvKey, value: Buffer): void {
    if (!this.l2 || this.closed || this.knownInL2.has(key)) return;
    if (this.batch.length === 0) queueMicrotask(() => this.flushBatch());
    this.batch.push({ key, value });
  }

  private flushBatch(): void {
    const batch = this.batch;
    this.batch = [];
    for (let i = batch.length - 1; i >= 0; i--) {
      const { key, value } = batch[i] as { key: KvKey; value: Buffer };
      this.spill(key, value);
    }
  }

  /** Starts (or queues) an L2 write of an L1 chunk; L1's buffers are immutable, so the write may read it later. */
  private spill(key: KvKey, value: Buffer): void {
    if (!this.l2 || this.closed || this.knownInL2.has(key)) return;
    const server = this.l2.serversFor(key)[0];
    if (server === undefined) return;
    if ((this.writesInFlight.get(server) ?? 0) < this.config.l2MaxWritesInFlight) {
      this.knownInL2.add(key);
      this.write(server, key, value);
      return;
    }
    if (this.queuedBytes + value.byteLength > this.config.l2MaxQueuedBytes) {
      this.spills.dropped++;
      return;
    }
    this.knownInL2.add(key);
    let q = this.queued.get(server);
    if (!q) this.queued.set(server, (q = []));
    q.push({ key, value });
    this.queuedBytes += value.byteLength;
  }

  private write(server: string, key: KvKey, value: Buffer): void {
    const l2 = this.l2Timed as KvTier;
    this.writesInFlight.set(server, (this.writesInFlight.get(server) ?? 0) + 1);
    this.spills.sent++;
    const write = l2
      .put(key, value)
      .catch((err: unknown) => {
        // Only programmer errors reject (a value over maxValueBytes): say so, never fail a request.
        this.knownInL2.delete(key);
        this.log.warn("kv_l2_write_failed", { key: key.slice(0, 16), error: err instanceof Error ? err.message : String(err) });
      })
      .finally(() => {
        this.pendingWrites.delete(write);
        const left = (this.writesInFlight.get(server) ?? 1) - 1;
        if (left > 0) this.writesInFlight.set(server, left);
        else this.writesInFlight.delete(server);
        const next = this.queued.get(server)?.shift();
        if (next) {
          this.queuedBytes -= next.value.byteLength;
          if (this.queued.get(server)?.length === 0) this.queued.delete(server);
          if (!this.closed) this.write(server, next.key, next.value);
        }
        if (this.pendingWrites.size === 0) for (const w of this.idleWaiters.splice(0)) w();
      });
    this.pendingWrites.add(write);
  }

  /** Resolves when the L2 writes started or queued so far have settled (tests, shutdown). */
  async flushWrites(): Promise<void> {
    await Promise.resolve(); // a batch collected in this tick is handed to spill() first
    if (this.batch.length > 0) this.flushBatch();
    while (this.pendingWrites.size > 0) await new Promise<void>((r) => this.idleWaiters.push(r));
  }

  /** The heartbeat's `kvCache` part; also advances the hit-rate windows (call once per beat). */
  report(): KvCacheReport {
    const now = this.now();
    const tiers: KvTierReport[] = this.tiers().map((tier) => {
      const s = tier.stats();
      let w = this.tierWindows.get(tier.name);
      if (!w) this.tierWindows.set(tier.name, (w = new CounterWindow(this.config.windowMs, this.createdAt)));
      const [hits = 0, misses = 0, evictions = 0] = w.delta([s.hits, s.misses, s.evictions], now);
      const queries = hits + misses;
      const r: KvTierReport = {
        tier: tier.name,
        capacityBytes: Math.max(0, Math.floor(s.capacityBytes)),
        bytesUsed: Math.max(0, Math.floor(s.bytesUsed)),
        queries,
        hits,
        evictions,
        ...(queries > 0 ? { hitRate: hits / queries } : {}),
      };
      if (tier === this.l2 && this.l2) {
        const servers = this.l2.clientStats().servers;
        r.servers = servers.length;
        r.serversUp = servers.filter((x) => x.up).length;
      }
      return r;
    });
    return { chunkTokens: this.chunkTokens, windowMs: this.config.windowMs, tiers };
  }

  /** The engine's tier hit rate over the window (undefined without lookups); call once per beat. */
  engineHitRate(model: string): number | undefined {
    const e = this.engines.get(model);
    if (!e) return undefined;
    const c = e.counters;
    const [queried = 0, hit = 0] = e.window.delta([c.queriedTokens, c.l1Tokens + c.l2Tokens], this.now());
    return queried > 0 ? Math.min(1, hit / queried) : undefined;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.flushWrites();
    this.closed = true;
    await this.l2?.close();
    await this.l1.close();
  }
}

function membershipKey(list: CacheServerList): string {
  const norm = list.map((m) => (typeof m === "string" ? `${m}*1` : `${m.id}*${m.weight ?? 1}`));
  return JSON.stringify(norm.sort());
}
