/**
 * L1: KV chunks in the agent's own memory (AIBrix's L1 DRAM cache, reference/aibrix.md §4.2), a
 * byte budget enforced with a pluggable eviction policy (S3-FIFO by default, LRU).
 *
 * Values and aliasing. `put` copies the caller's bytes into a Buffer the tier owns (the caller may
 * reuse its array as soon as put returns). `get` hands out that stored Buffer itself, not a copy:
 * a 32 MiB chunk is not duplicated on every hit. The rule that makes this safe: a stored Buffer is
 * immutable. The tier never writes into it after put (a later put of the same key stores a new
 * Buffer) and never recycles its memory, and callers must never write into what get returned (it
 * would change the value for every later reader). A Buffer obtained from get stays valid after the
 * entry is evicted, replaced or deleted: the tier only drops its reference, and the memory is
 * reclaimed by the GC once the last holder lets go. Callers that need a mutable copy copy it.
 * The same Buffer is what onEvict / onHotAccess / onPut receive.
 *
 * Accounting. `bytesUsed` is the sum of the stored values' byteLength; it never exceeds
 * `capacityBytes`. Not counted: per-entry overhead (~200 B of key and map entry, noise next to
 * 32 MiB chunks) and evicted Buffers not yet collected (or still held by a reader or an L2 spill).
 * A value larger than the whole capacity is refused (not stored, counted in `refused`).
 *
 * What counts as what:
 * - get: a hit (bytesOut += size, and the policy sees an access) or a miss;
 * - put: bytesIn += size; a put of a resident key replaces the value and counts as an access
 *   (the prompt needed that chunk again) when the size is unchanged, else as remove + insert;
 *   a caller that knows the content is identical can check `has` first and skip the copy;
 * - longestPrefix and has: probes, with no effect on stats or eviction order;
 * - delete: removes without calling onEvict; close: drops everything, later calls are no-ops
 *   (get misses without counting, put stores nothing).
 *
 * Callbacks (AIBrix on_evict / on_hot_access / on_put; the agent uses them to feed L2 with EVICTED,
 * HOT or ALL ingestion) run synchronously after the operation has completed, so they may call the
 * tier again. They must not block: start the L2 write and return. An exception from a callback is
 * reported to `onCallbackError` (default: a process warning) and does not fail the operation.
 *
 * Chains. The policy sees independent chunks, and a chunk is useless without its parents. Report
 * a request's chunks tail first (getPrefix / putChain do: the last chunk first), so that LRU's
 * recency and S3-FIFO's queue order evict a chain's tail before its head. Measured on the traces in
 * bench/results/kv-eviction: head first, up to 4.5 % of chunk hits sit behind an evicted parent
 * (useless) at small cache sizes; tail first cuts that to ≤ 3 % (0 for LRU) and gains up to 1.5
 * points of usable hit ratio. Small, so the tier does not track parent links; tail first is free.
 */
import { z } from "zod";
import { evictionConfigSchema, policyFromConfig, s3fifoOptionsSchema } from "../eviction/index";
import type { EvictionPolicy, KvKey, KvTier, TierStats } from "../tier";

const GiB = 2 ** 30;

/**
 * L1's S3-FIFO defaults: small FIFO 30 %, threshold 1 (AIBrix's L1 defaults), chosen on the traces
 * of bench/results/kv-eviction. The paper's 10 % small FIFO loses up to 7.5 points of byte hit
 * ratio to LRU on multi-turn chat (a turn's new chunks leave the small FIFO before the next turn
 * re-reads them), 15 behind an engine cache; LRU loses up to 12 (24 behind an engine) to S3-FIFO on
 * shared-prefix traffic full of one-hit suffixes. 30 % / 1 has the smallest worst case over both:
 * 3.2 points (6.9 behind an engine). Threshold 2 was never better than 1 by more than 0.5.
 */
export const L1_S3FIFO_DEFAULTS = { smallRatio: 0.3, threshold: 1 } as const;

export const l1TierConfigSchema = evictionConfigSchema
  .extend({
    s3fifo: s3fifoOptionsSchema.extend({ smallRatio: z.number().gt(0).lt(1).default(L1_S3FIFO_DEFAULTS.smallRatio) }).default({ ...L1_S3FIFO_DEFAULTS }),
    /** The byte budget; give this or capacityGiB. */
    capacityBytes: z.number().int().positive().max(Number.MAX_SAFE_INTEGER).optional(),
    /** The byte budget in GiB (2^30 bytes), e.g. 10 like AIBrix's default; give this or capacityBytes. */
    capacityGiB: z.number().positive().max(2 ** 23).optional(),
  })
  .superRefine((c, ctx) => {
    if ((c.capacityBytes === undefined) === (c.capacityGiB === undefined)) {
      ctx.addIssue({ code: "custom", path: ["capacityBytes"], message: "give exactly one of capacityBytes and capacityGiB" });
    }
  })
  .transform((c) => ({
    capacityBytes: c.capacityBytes ?? Math.floor((c.capacityGiB as number) * GiB),
    policy: c.policy,
    s3fifo: c.s3fifo,
  }));
export type L1TierConfig = z.output<typeof l1TierConfigSchema>;
export type L1TierConfigInput = z.input<typeof l1TierConfigSchema>;

export type DramCallbackName = "onEvict" | "onHotAccess" | "onPut";

export interface DramTierCallbacks {
  /** An entry left to make room (not on delete, replace or close): spill it to L2 (EVICTED ingestion). */
  onEvict?: (key: KvKey, value: Buffer) => void;
  /** The policy marked an entry hot (see the policy): copy it to L2 (HOT ingestion, AIBrix's default). */
  onHotAccess?: (key: KvKey, value: Buffer) => void;
  /** A new entry was stored (ALL ingestion). */
  onPut?: (key: KvKey, value: Buffer) => void;
  /** A callback threw; default: process.emitWarning. */
  onCallbackError?: (error: unknown, callback: DramCallbackName, key: KvKey) => void;
}

export interface DramTierStats extends TierStats {
  /** Entries held. */
  entries: number;
  /** Puts not stored because the value is larger than the whole capacity. */
  refused: number;
  /** Bytes of the entries evicted so far. */
  evictedBytes: number;
  /** The eviction policy's name. */
  policy: string;
}

export class DramTier implements KvTier {
  readonly name = "l1";
  readonly capacityBytes: number;
  readonly config: L1TierConfig;
  private readonly entries = new Map<KvKey, Buffer>();
  private readonly policy: EvictionPolicy;
  private readonly callbacks: DramTierCallbacks;
  private bytesUsed = 0;
  private closed = false;
  private readonly counters = { hits: 0, misses: 0, bytesIn: 0, bytesOut: 0, evictions: 0, evictedBytes: 0, refused: 0 };
  /** Work for the callbacks, collected during an operation and run when it is complete. */
  private hot: KvKey[] = [];
  private evicted: [KvKey, Buffer][] = [];

  constructor(config: L1TierConfigInput, callbacks: DramTierCallbacks = {}) {
    this.config = l1TierConfigSchema.parse(config);
    this.capacityBytes = this.config.capacityBytes;
    this.callbacks = callbacks;
    this.policy = policyFromConfig(this.config, this.capacityBytes, (key) => this.hot.push(key));
  }

  // --- KvTier -------------------------------------------------------------------------------

  async get(key: KvKey, signal?: AbortSignal): Promise<Buffer | undefined> {
    signal?.throwIfAborted();
    return this.getSync(key);
  }

  async put(key: KvKey, value: Uint8Array): Promise<void> {
    this.putSync(key, value);
  }

  async longestPrefix(keys: readonly KvKey[], signal?: AbortSignal): Promise<number> {
    signal?.throwIfAborted();
    return this.longestPrefixSync(keys);
  }

  async delete(key: KvKey): Promise<void> {
    this.deleteSync(key);
  }

  stats(): DramTierStats {
    const c = this.counters;
    return {
      hits: c.hits,
      misses: c.misses,
      bytesIn: c.bytesIn,
      bytesOut: c.bytesOut,
      evictions: c.evictions,
      bytesUsed: this.bytesUsed,
      capacityBytes: this.capacityBytes,
      entries: this.entries.size,
      refused: c.refused,
      evictedBytes: c.evictedBytes,
      policy: this.policy.name,
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const key of this.entries.keys()) this.policy.onRemove(key);
    this.entries.clear();
    this.bytesUsed = 0;
  }

  // --- Synchronous forms (the tier does no I/O; these skip a promise per call) -----------------

  /** The stored value (not a copy: see the aliasing rule above), or undefined on a miss. */
  getSync(key: KvKey): Buffer | undefined {
    if (this.closed) return undefined;
    const value = this.entries.get(key);
    if (value === undefined) {
      this.counters.misses++;
      return undefined;
    }
    this.counters.hits++;
    this.counters.bytesOut += value.byteLength;
    this.policy.onAccess(key);
    this.flush();
    return value;
  }

  /** Stores a copy of `value`; false when it was not stored (larger than the capacity, or closed). */
  putSync(key: KvKey, value: Uint8Array): boolean {
    if (this.closed) return false;
    const size = value.byteLength;
    if (size > this.capacityBytes) {
      this.counters.refused++;
      return false;
    }
    const copy = Buffer.allocUnsafeSlow(size);
    copy.set(value);
    const old = this.entries.get(key);
    if (old !== undefined && old.byteLength === size) {
      this.entries.set(key, copy);
      this.counters.bytesIn += size;
      this.policy.onAccess(key);
      this.flush();
      return true;
    }
    if (old !== undefined) this.drop(key, old);
    while (this.bytesUsed + size > this.capacityBytes) {
      const victim = this.policy.victim();
      if (victim === undefined) break;
      const v = this.entries.get(victim);
      if (v === undefined) continue; // the policy named a key this tier does not hold; ask again
      this.entries.delete(victim);
      this.bytesUsed -= v.byteLength;
      this.counters.evictions++;
      this.counters.evictedBytes += v.byteLength;
      this.evicted.push([victim, v]);
    }
    if (this.bytesUsed + size > this.capacityBytes) {
      // Only reachable if the policy lost track of entries: refuse rather than overrun the budget.
      this.counters.refused++;
      this.flush();
      return false;
    }
    this.entries.set(key, copy);
    this.bytesUsed += size;
    this.counters.bytesIn += size;
    this.policy.onInsert(key, size);
    if (this.callbacks.onPut !== undefined) this.call("onPut", this.callbacks.onPut, key, copy);
    this.flush();
    return true;
  }

  /**
   * The values of the longest held prefix of `keys` (a prompt's chunk keys), in chain order. Counts
   * a hit per value returned and a miss per key after it (chunks behind a gap are useless), and
   * tells the policy about the hits tail first, so a chain's head is the last of it to be evicted.
   */
  getPrefix(keys: readonly KvKey[]): Buffer[] {
    const n = this.longestPrefixSync(keys);
    const out = new Array<Buffer>(n);
    for (let i = n - 1; i >= 0; i--) {
      const key = keys[i] as KvKey;
      const value = this.entries.get(key) as Buffer;
      out[i] = value;
      this.counters.hits++;
      this.counters.bytesOut += value.byteLength;
      this.policy.onAccess(key);
    }
    if (!this.closed) this.counters.misses += keys.length - n;
    this.flush();
    return out;
  }

  /**
   * Stores `values[i]` under `keys[i]` for every i, the last chunk first (see getPrefix); typically
   * the chunks a request computed after its loaded prefix. Returns how many were stored.
   */
  putChain(keys: readonly KvKey[], values: readonly Uint8Array[]): number {
    if (keys.length !== values.length) throw new RangeError(`putChain: ${keys.length} keys but ${values.length} values`);
    let stored = 0;
    for (let i = keys.length - 1; i >= 0; i--) if (this.putSync(keys[i] as KvKey, values[i] as Uint8Array)) stored++;
    return stored;
  }

  /** How many of `keys`, from the first, are held without a gap. A probe: no stats, no policy effect. */
  longestPrefixSync(keys: readonly KvKey[]): number {
    if (this.closed) return 0;
    let n = 0;
    while (n < keys.length && this.entries.has(keys[n] as KvKey)) n++;
    return n;
  }

  /** Whether `key` is held. A probe: no stats, no policy effect. */
  has(key: KvKey): boolean {
    return this.entries.has(key);
  }

  /** Removes `key` if held (without onEvict); true when it was. */
  deleteSync(key: KvKey): boolean {
    const v = this.entries.get(key);
    if (v === undefined) return false;
    this.drop(key, v);
    return true;
  }

  private drop(key: KvKey, value: Buffer): void {
    this.entries.delete(key);
    this.bytesUsed -= value.byteLength;
    this.policy.onRemove(key);
  }

  private flush(): void {
    if (this.evicted.length > 0) {
      const evicted = this.evicted;
      this.evicted = [];
      const cb = this.callbacks.onEvict;
      if (cb !== undefined) for (const [k, v] of evicted) this.call("onEvict", cb, k, v);
    }
    if (this.hot.length > 0) {
      const hot = this.hot;
      this.hot = [];
      const cb = this.callbacks.onHotAccess;
      if (cb !== undefined) {
        for (const k of hot) {
          const v = this.entries.get(k);
          if (v !== undefined) this.call("onHotAccess", cb, k, v);
        }
      }
    }
  }

  private call(name: DramCallbackName, cb: (key: KvKey, value: Buffer) => void, key: KvKey, value: Buffer): void {
    try {
      cb(key, value);
    } catch (error) {
      if (this.callbacks.onCallbackError !== undefined) this.callbacks.onCallbackError(error, name, key);
      else process.emitWarning(`KV tier l1: ${name} callback threw for ${key.slice(0, 16)}…: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
}
