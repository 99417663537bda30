/**
 * The KV-tier contract shared by every layer of the agent's KV cache: the engine's own (GPU) cache
 * offloads into an L1 DRAM tier, which spills into L2 cache servers on a consistent-hash ring.
 *
 * A KV chunk is addressed by a key derived from its prompt tokens (keys.ts): chunks of N tokens
 * hashed in a chain, namespaced by model identity and by the tenant's cache namespace, so a key
 * names exactly one (model, namespace, token prefix) and tenants never read each other's KV.
 * Values are opaque bytes (an engine's serialized KV state for that chunk).
 */

/** A chunk key: 32 bytes, written as 64 lowercase hex characters. */
export type KvKey = string;

export interface TierStats {
  hits: number;
  misses: number;
  /** Bytes read out of the tier by gets. */
  bytesOut: number;
  /** Bytes written into the tier by puts. */
  bytesIn: number;
  evictions: number;
  /** Bytes currently held (L1), or last known (remote). */
  bytesUsed: number;
  capacityBytes: number;
}

export interface KvTier {
  /** "l1", "l2", ... (metrics label). */
  readonly name: string;
  /** The value, or undefined on a miss (never a wrong value: keys and checksums are verified). */
  get(key: KvKey, signal?: AbortSignal): Promise<Uint8Array | undefined>;
  put(key: KvKey, value: Uint8Array): Promise<void>;
  /**
   * How many of `keys`, from the first, the tier holds without a gap: one round trip answers "how
   * much of this prompt's prefix can be loaded instead of recomputed".
   */
  longestPrefix(keys: readonly KvKey[], signal?: AbortSignal): Promise<number>;
  delete(key: KvKey): Promise<void>;
  stats(): TierStats;
  close(): Promise<void>;
}

/** Chooses what a byte-bounded cache drops. One implementation per file in eviction/. */
export interface EvictionPolicy {
  readonly name: string;
  /** A new entry of `size` bytes was inserted. */
  onInsert(key: KvKey, size: number): void;
  /** An existing entry was read. */
  onAccess(key: KvKey): void;
  /** The entry left the cache for another reason (deleted, replaced). */
  onRemove(key: KvKey): void;
  /** Picks the next entry to evict, or undefined when empty. The caller removes it. */
  victim(): KvKey | undefined;
}
