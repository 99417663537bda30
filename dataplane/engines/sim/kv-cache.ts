/**
 * Paged KV memory with prefix caching, as vLLM V1's BlockPool + KVCacheManager do it: a fixed number
 * of blocks of `blockSize` tokens; a full block of a request gets a hash chained from its parent
 * block's hash and its own token ids, and is found again by that hash; blocks are ref-counted (those
 * of running requests are pinned); free blocks sit in one LRU queue, cached or not, and allocation
 * takes from its head, evicting the cached block it finds there. A finished request's blocks go to
 * the queue's tail in reverse order, so a chain's tail is evicted before its head.
 *
 * Events use vLLM's content (BlockStored / BlockRemoved / AllBlocksCleared, medium "GPU"). Hashes are
 * the emulator's own (52-bit, JSON-safe integers; see `hashBlock`), not vLLM's sha256: consumers only
 * need them to be consistent between events and lookups.
 *
 * Cache namespaces work as vLLM's `cache_salt`: a request's chain starts from `namespaceSeed(ns)`
 * instead of ROOT_HASH, so every block hash of the request depends on its namespace and two
 * namespaces never share a block (lookups, events and lower-tier offers all carry the salted hashes).
 * No namespace: the chain starts from ROOT_HASH, as before.
 *
 * All block operations are O(1) over typed arrays; nothing is allocated per block unless someone
 * listens to events or a lower tier is attached.
 */

/** A block without a hash (not cached). */
export const NO_HASH = -1;
/** Parent hash of a chain's first block (vLLM's NONE_HASH role). */
export const ROOT_HASH = 0x5eed_1e55;

export interface BlockStoredEvent {
  type: "BlockStored";
  block_hashes: number[];
  parent_block_hash: number | null;
  token_ids: number[];
  block_size: number;
  lora_id: null;
  medium: "GPU";
}
export interface BlockRemovedEvent {
  type: "BlockRemoved";
  block_hashes: number[];
  medium: "GPU";
}
export interface AllBlocksClearedEvent {
  type: "AllBlocksCleared";
}
export type KvEvent = BlockStoredEvent | BlockRemovedEvent | AllBlocksClearedEvent;

/** vLLM's EventBatch: `ts` in seconds, the events of one engine step. */
export interface KvEventBatch {
  ts: number;
  events: KvEvent[];
  data_parallel_rank: null;
}

/** A block leaving GPU memory, offered to the tier below. */
export interface KvTierBlock {
  hash: number;
  /** Hash of the block before it in its chain; null for a chain's first block. */
  parentHash: number | null;
  /** The block's tokens (a copy the tier may keep). */
  tokenIds: Int32Array;
}

/**
 * The next KV tier down (host DRAM, remote cache), as the engine sees it. Issue 6 implements real
 * tiers; the engine only offers evicted blocks and asks how much of a prefix the tier can load.
 */
export interface KvLowerTier {
  /** A cached block is being evicted from GPU memory; the tier may keep it. */
  offer(block: KvTierBlock): void;
  /**
   * How many of `hashes[from..to)` the tier holds, counting from `from` and stopping at the first
   * miss. The engine then loads that many blocks at the calibrated host→GPU cost.
   */
  lookup(hashes: ArrayLike<number>, from: number, to: number): number;
  /**
   * Optional: the engine is loading `hashes[from, from + count)`, which `lookup` just reported, at
   * model time `atMs`. Lets a tier say where the blocks come from, since a remote tier moves them
   * over its own network link rather than only the host→GPU copy: `h2dBlocks` of them are copied
   * from host memory over the engine's host→GPU link (queued there, at the calibrated cost), the
   * other `count − h2dBlocks` are delivered by the tier itself (e.g. RDMA into GPU memory),
   * complete at `readyMs` (≥ atMs). The load ends when both parts are done. Tiers count accesses
   * here and not in `lookup`, which the scheduler repeats while a request waits for memory.
   * Without `fetch`, all `count` blocks are host→GPU copies (a DRAM tier).
   */
  fetch?(hashes: ArrayLike<number>, from: number, count: number, atMs: number): { h2dBlocks: number; readyMs: number };
  /**
   * Optional, for a tier with a part the engine cannot ask synchronously (a remote store): before a
   * request is queued, bring what that part holds of `hashes[from, to)` where `lookup` can see it.
   * The request is queued once this settles, so the wait is part of its time to first token. Never
   * rejects; a miss just leaves the blocks to be computed.
   */
  prefetch?(hashes: ArrayLike<number>, from: number, to: number, signal?: AbortSignal): Promise<void>;
}

const TWO_32 = 4294967296;

/**
 * Two 32-bit murmur3-style lanes over values[start, end), seeded with (h1, h2) and combined into a
 * 52-bit integer (exact in a double, so hashes stay plain numbers).
 */
function lanes52(h1: number, h2: number, values: ArrayLike<number>, start: number, end: number): number {
  for (let i = start; i < end; i++) {
    let k = Math.imul(values[i] as number, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h1 ^= k;
    h1 = (h1 << 13) | (h1 >>> 19);
    h1 = (Math.imul(h1, 5) + 0xe6546b64) | 0;
    h2 ^= k;
    h2 = (h2 << 17) | (h2 >>> 15);
    h2 = (Math.imul(h2, 0x2545f491) + 0x6b43a9b5) | 0;
  }
  h1 ^= end - start;
  h2 ^= h1;
  h1 ^= h1 >>> 16;
  h1 = Math.imul(h1, 0x85ebca6b);
  h1 ^= h1 >>> 13;
  h1 = Math.imul(h1, 0xc2b2ae35);
  h1 ^= h1 >>> 16;
  h2 ^= h2 >>> 15;
  h2 = Math.imul(h2, 0x735a2d97);
  h2 ^= h2 >>> 15;
  h2 = Math.imul(h2, 0x0bef6c35);
  h2 ^= h2 >>> 16;
  return (h2 >>> 12) * TWO_32 + (h1 >>> 0);
}

/** Hash of a full block: chained from `parent` (ROOT_HASH for the first block) over tokens[start, start + blockSize). */
export function hashBlock(parent: number, tokens: ArrayLike<number>, start: number, blockSize: number): number {
  return lanes52((parent % TWO_32) | 0, Math.floor(parent / TWO_32) ^ 0x9e3779b9, tokens, start, start + blockSize);
}

/**
 * Root of a namespace's chains (vLLM's `cache_salt` mixed into the first block): ROOT_HASH without a
 * namespace (undefined or ""), else a 52-bit hash of the namespace's UTF-16 units. Costs one pass over
 * the (short) namespace string per request; the prompt itself is hashed once, from this seed.
 */
export function namespaceSeed(namespace?: string): number {
  if (!namespace) return ROOT_HASH;
  const units = Array.from({ length: namespace.length }, (_, i) => namespace.charCodeAt(i));
  const seed = lanes52(0x3c6ef372, 0xa54ff53a, units, 0, units.length);
  return seed === ROOT_HASH ? seed + 1 : seed;
}

/**
 * Chained hashes of the full blocks of `tokens` (a partial last block has none), written into `out`
 * from index `from` (continuing the chain from out[from - 1]). The first block's parent is `seed`
 * (`namespaceSeed(namespace)`; default ROOT_HASH: no namespace). Returns `out`.
 */
export function blockHashes(tokens: ArrayLike<number>, blockSize = 16, out?: Float64Array, from = 0, seed = ROOT_HASH): Float64Array {
  const full = Math.floor(tokens.length / blockSize);
  const result = out ?? new Float64Array(full);
  let parent = from > 0 ? (result[from - 1] as number) : seed;
  for (let i = from; i < full && i < result.length; i++) {
    parent = hashBlock(parent, tokens, i * blockSize, blockSize);
    result[i] = parent;
  }
  return result;
}

/**
 * hash → block id, open addressing with linear probing over typed arrays (a Map with 52-bit number
 * keys boxes them and was the DES hot spot). Deletion shifts the probe run back: no tombstones.
 */
export class BlockTable {
  private readonly keys: Float64Array;
  private readonly values: Int32Array;
  private readonly mask: number;
  size = 0;

  constructor(capacity: number) {
    let n = 16;
    while (n < capacity * 2) n *= 2;
    this.keys = new Float64Array(n).fill(NO_HASH);
    this.values = new Int32Array(n);
    this.mask = n - 1;
  }

  get(key: number): number {
    const keys = this.keys;
    const mask = this.mask;
    for (let i = (key >>> 0) & mask; ; i = (i + 1) & mask) {
      const k = keys[i] as number;
      if (k === key) return this.values[i] as number;
      if (k === NO_HASH) return -1;
    }
  }

  set(key: number, value: number): void {
    const keys = this.keys;
    const mask = this.mask;
    let i = (key >>> 0) & mask;
    for (; ; i = (i + 1) & mask) {
      const k = keys[i] as number;
      if (k === key) break;
      if (k === NO_HASH) {
        this.size++;
        break;
      }
    }
    keys[i] = key;
    this.values[i] = value;
  }

  delete(key: number): void {
    const keys = this.keys;
    const values = this.values;
    const mask = this.mask;
    let i = (key >>> 0) & mask;
    for (; ; i = (i + 1) & mask) {
      const k = keys[i] as number;
      if (k === NO_HASH) return;
      if (k === key) break;
    }
    this.size--;
    // Backward-shift deletion: move later entries of the run into the hole when their home allows.
    let hole = i;
    for (let j = (i + 1) & mask; ; j = (j + 1) & mask) {
      const k = keys[j] as number;
      if (k === NO_HASH) break;
      const home = (k >>> 0) & mask;
      const between = hole <= j ? home > hole && home <= j : home > hole || home <= j;
      if (between) continue;
      keys[hole] = k;
      values[hole] = values[j] as number;
      hole = j;
    }
    keys[hole] = NO_HASH;
  }

  clear(): void {
    this.keys.fill(NO_HASH);
    this.size = 0;
  }
}

export interface KvCacheOptions {
  numBlocks: number;
  blockSize: number;
  enablePrefixCaching?: boolean;
  lowerTier?: KvLowerTier;
}

export class KvCache {
  readonly numBlocks: number;
  readonly blockSize: number;
  readonly enablePrefixCaching: boolean;
  readonly lowerTier: KvLowerTier | undefined;
  /** Set while someone listens: events are built only then. */
  recordEvents = false;
  /** Events since the last `takeEvents()`. */
  private pending: KvEvent[] = [];
  /** Cached blocks evicted so far. */
  evictions = 0;

  private readonly ref: Int32Array;
  private readonly hash: Float64Array;
  private readonly parent: Float64Array;
  private readonly prev: Int32Array;
  private readonly next: Int32Array;
  private head = -1;
  private tail = -1;
  private free = 0;
  private readonly byHash: BlockTable;
  private readonly tokens: Int32Array | undefined;
  /** Block ids found by the last `lookup`. */
  readonly lookupIds: number[] = [];
  /** How many of them were free (their reuse takes them out of the free queue). */
  lookupFree = 0;

  constructor(opts: KvCacheOptions) {
    if (!Number.isInteger(opts.numBlocks) || opts.numBlocks < 1) throw new RangeError(`numBlocks must be a positive integer, got ${opts.numBlocks}`);
    this.numBlocks = opts.numBlocks;
    this.blockSize = opts.blockSize;
    this.enablePrefixCaching = opts.enablePrefixCaching ?? true;
    this.lowerTier = opts.lowerTier;
    const n = opts.numBlocks;
    this.byHash = new BlockTable(n);
    this.ref = new Int32Array(n);
    this.hash = new Float64Array(n).fill(NO_HASH);
    this.parent = new Float64Array(n).fill(NO_HASH);
    this.prev = new Int32Array(n);
    this.next = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      this.prev[i] = i - 1;
      this.next[i] = i + 1 < n ? i + 1 : -1;
    }
    this.head = 0;
    this.tail = n - 1;
    this.free = n;
    if (this.lowerTier) this.tokens = new Int32Array(n * opts.blockSize);
  }

  /** Blocks not held by any request (cached ones included: they can be evicted). */
  get freeBlocks(): number {
    return this.free;
  }

  /** Blocks holding a cached prefix (in use or not). */
  get cachedBlocks(): number {
    return this.byHash.size;
  }

  /** vLLM's kv_cache_usage_perc: the fraction of blocks held by requests. */
  usage(): number {
    return 1 - this.free / this.numBlocks;
  }

  /** Whether a block with this hash is cached. */
  has(hash: number): boolean {
    return this.byHash.get(hash) >= 0;
  }

  /**
   * Leading blocks of `hashes[0..count)` that are cached; their ids go to `lookupIds` and how many
   * of them are free to `lookupFree`.
   */
  lookup(hashes: ArrayLike<number>, count: number): number {
    const ids = this.lookupIds;
    ids.length = 0;
    this.lookupFree = 0;
    if (!this.enablePrefixCaching) return 0;
    for (let i = 0; i < count; i++) {
      const id = this.byHash.get(hashes[i] as number);
      if (id < 0) break;
      ids.push(id);
      if (this.ref[id] === 0) this.lookupFree++;
    }
    return ids.length;
  }

  /** Pins the blocks of the last `lookup` for a request: appends them to `blocks`. */
  takeLookup(blocks: number[]): void {
    for (const id of this.lookupIds) {
      if (this.ref[id] === 0) this.unlinkFree(id);
      this.ref[id] = (this.ref[id] as number) + 1;
      blocks.push(id);
    }
  }

  /** Appends `n` fresh blocks to `blocks`, evicting cached ones from the LRU head. Caller checks `freeBlocks`. */
  allocate(blocks: number[], n: number): void {
    if (n > this.free) throw new Error(`KV cache: asked for ${n} blocks, ${this.free} free`);
    let removed: BlockRemovedEvent | undefined;
    for (let k = 0; k < n; k++) {
      const id = this.head;
      this.unlinkFree(id);
      const h = this.hash[id] as number;
      if (h !== NO_HASH) {
        this.evictions++;
        if (this.byHash.get(h) === id) this.byHash.delete(h);
        if (this.recordEvents) {
          if (!removed) {
            removed = { type: "BlockRemoved", block_hashes: [], medium: "GPU" };
            this.pending.push(removed);
          }
          removed.block_hashes.push(h);
        }
        if (this.lowerTier && this.tokens) {
          const p = this.parent[id] as number;
          const at = id * this.blockSize;
          this.lowerTier.offer({ hash: h, parentHash: p === NO_HASH ? null : p, tokenIds: this.tokens.slice(at, at + this.blockSize) });
        }
        this.hash[id] = NO_HASH;
        this.parent[id] = NO_HASH;
      }
      this.ref[id] = 1;
      blocks.push(id);
    }
  }

  /** Releases a request's blocks, last first (so the chain's tail is evicted first). */
  release(blocks: readonly number[]): void {
    for (let i = blocks.length - 1; i >= 0; i--) {
      const id = blocks[i] as number;
      const r = (this.ref[id] as number) - 1;
      this.ref[id] = r;
      if (r === 0) this.appendFree(id);
    }
  }

  /**
   * Caches a request's full blocks `blocks[from..to)`, whose hashes are `hashes[from..to)` and whose
   * tokens start at tokens[from × blockSize]. A hash already cached (another request computed the
   * same block) leaves this copy uncached, as its twin serves future hits.
   */
  store(blocks: readonly number[], from: number, to: number, hashes: ArrayLike<number>, tokens: ArrayLike<number>): void {
    if (!this.enablePrefixCaching) return;
    const bs = this.blockSize;
    let event: BlockStoredEvent | undefined;
    for (let i = from; i < to; i++) {
      const id = blocks[i] as number;
      const h = hashes[i] as number;
      if (this.hash[id] !== NO_HASH || this.byHash.get(h) >= 0) {
        event = undefined;
        continue;
      }
      const parent = i > 0 ? (hashes[i - 1] as number) : NO_HASH;
      this.hash[id] = h;
      this.parent[id] = parent;
      this.byHash.set(h, id);
      if (this.tokens) for (let t = 0; t < bs; t++) this.tokens[id * bs + t] = tokens[i * bs + t] as number;
      if (this.recordEvents) {
        if (!event) {
          event = { type: "BlockStored", block_hashes: [], parent_block_hash: parent === NO_HASH ? null : parent, token_ids: [], block_size: bs, lora_id: null, medium: "GPU" };
          this.pending.push(event);
        }
        event.block_hashes.push(h);
        for (let t = 0; t < bs; t++) event.token_ids.push(tokens[i * bs + t] as number);
      }
    }
  }

  /**
   * Drops every cached prefix (vLLM's reset_prefix_cache). Like vLLM, refuses (returns false) while
   * requests hold blocks.
   */
  reset(): boolean {
    if (this.free !== this.numBlocks) return false;
    this.byHash.clear();
    this.hash.fill(NO_HASH);
    this.parent.fill(NO_HASH);
    if (this.recordEvents) this.pending.push({ type: "AllBlocksCleared" });
    return true;
  }

  /** Events since the last call (empty when nobody records). */
  takeEvents(): KvEvent[] {
    if (this.pending.length === 0) return [];
    const out = this.pending;
    this.pending = [];
    return out;
  }

  private unlinkFree(id: number): void {
    const p = this.prev[id] as number;
    const n = this.next[id] as number;
    if (p >= 0) this.next[p] = n;
    else this.head = n;
    if (n >= 0) this.prev[n] = p;
    else this.tail = p;
    this.prev[id] = -1;
    this.next[id] = -1;
    this.free--;
  }

  private appendFree(id: number): void {
    this.prev[id] = this.tail;
    this.next[id] = -1;
    if (this.tail >= 0) this.next[this.tail] = id;
    else this.head = id;
    this.tail = id;
    this.free++;
  }
}
