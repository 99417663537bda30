/**
 * The cache server's memory: immutable values under a byte budget, evicted through an
 * EvictionPolicy (../tier.ts). No I/O; the network side is cache-server.ts.
 *
 * - A value is stored as the buffer it arrived in (no copy), with the XXH64 of key and value the PUT
 *   carried, so a GET replies without re-hashing.
 * - Objects are immutable once written: a PUT of a key already held is a no-op success (the bytes
 *   are the same by construction, since the key is a hash of what produced them), in the spirit of
 *   Mooncake's put-once objects. A reader holding a value keeps it alive even if it is evicted meanwhile.
 * - The budget counts value bytes only; per-object overhead (the key, the map entry: ~200 bytes)
 *   is not counted, which matters only for values far smaller than the KV chunks this is built for.
 */
import type { EvictionPolicy, KvKey } from "../tier";

export interface StoredObject {
  value: Buffer;
  /** XXH64 of key and value, as the PUT carried it. */
  checksum: bigint;
  /** Replies queued to sockets that still reference `value` (the server tracks them). */
  sending: number;
  /** Left the store (evicted or deleted); its memory may be reused once `sending` is 0. */
  removed: boolean;
  /** Its memory went back to the receive pool (at most once). */
  released: boolean;
}

export interface StoreStats {
  objects: number;
  bytesUsed: number;
  capacityBytes: number;
  hits: number;
  misses: number;
  /** Value bytes accepted by PUTs. */
  bytesIn: number;
  /** Value bytes returned by GETs. */
  bytesOut: number;
  evictions: number;
  evictedBytes: number;
  puts: number;
  /** PUTs of a key already held. */
  putsExisting: number;
  /** PUTs refused because the value could not fit. */
  putsRejected: number;
  deletes: number;
  policy: string;
}

export type PutResult = "stored" | "exists" | "no-space";

/** Values under this size are copied out of a possibly pooled buffer so they do not pin its slab. */
const COPY_BELOW = 8 * 1024;

export class KvStore {
  private readonly objects = new Map<KvKey, StoredObject>();
  private used = 0;
  private readonly counters = { hits: 0, misses: 0, bytesIn: 0, bytesOut: 0, evictions: 0, evictedBytes: 0, puts: 0, putsExisting: 0, putsRejected: 0, deletes: 0 };

  constructor(
    readonly capacityBytes: number,
    private readonly policy: EvictionPolicy,
    /** Called when an object leaves the store, evicted or deleted. */
    private readonly onRemove?: (key: KvKey, obj: StoredObject, reason: "evicted" | "deleted") => void,
  ) {
    if (!(capacityBytes > 0)) throw new RangeError("capacityBytes must be positive");
  }

  get bytesUsed(): number {
    return this.used;
  }

  get size(): number {
    return this.objects.size;
  }

  has(key: KvKey): boolean {
    return this.objects.has(key);
  }

  /** A read: counts a hit or miss and tells the policy. */
  get(key: KvKey): StoredObject | undefined {
    const obj = this.objects.get(key);
    if (obj === undefined) {
      this.counters.misses++;
      return undefined;
    }
    this.counters.hits++;
    this.counters.bytesOut += obj.value.length;
    this.policy.onAccess(key);
    return obj;
  }

  /** Stores `value` (verified against `checksum` by the caller) unless the key is already held. */
  put(key: KvKey, value: Buffer, checksum: bigint): PutResult {
    this.counters.puts++;
    if (this.objects.has(key)) {
      this.counters.putsExisting++;
      return "exists";
    }
    const size = value.length;
    if (size > this.capacityBytes) {
      this.counters.putsRejected++;
      return "no-space";
    }
    if (!this.makeRoom(size)) {
      this.counters.putsRejected++;
      return "no-space";
    }
    const stored = size < COPY_BELOW && value.buffer.byteLength !== size ? Buffer.from(value) : value;
    this.objects.set(key, { value: stored, checksum, sending: 0, removed: false, released: false });
    this.used += size;
    this.counters.bytesIn += size;
    this.policy.onInsert(key, size);
    return "stored";
  }

  /** How many of `keys`, from the first, are held (stops at the first missing). Not an access. */
  prefixCount(keys: readonly KvKey[]): number {
    let n = 0;
    while (n < keys.length && this.objects.has(keys[n] as KvKey)) n++;
    return n;
  }

  delete(key: KvKey): boolean {
    const obj = this.objects.get(key);
    if (obj === undefined) return false;
    this.objects.delete(key);
    this.used -= obj.value.length;
    this.counters.deletes++;
    this.policy.onRemove(key);
    obj.removed = true;
    this.onRemove?.(key, obj, "deleted");
    return true;
  }

  stats(): StoreStats {
    return { objects: this.objects.size, bytesUsed: this.used, capacityBytes: this.capacityBytes, ...this.counters, policy: this.policy.name };
  }

  /** Evicts until `size` more bytes fit; false if the policy runs out of victims first. */
  private makeRoom(size: number): boolean {
    // Bounded: every round removes an object or ends; a policy naming unknown keys cannot spin forever.
    let guard = this.objects.size + 1024;
    while (this.used + size > this.capacityBytes) {
      const victim = this.policy.victim();
      if (victim === undefined || guard-- <= 0) return false;
      const obj = this.objects.get(victim);
      if (obj === undefined) continue;
      this.objects.delete(victim);
      this.used -= obj.value.length;
      this.counters.evictions++;
      this.counters.evictedBytes += obj.value.length;
      obj.removed = true;
      this.onRemove?.(victim, obj, "evicted");
    }
    return true;
  }
}
