/**
 * S3-FIFO (Yang et al., SOSP'23; reference/kvcache.md §6), byte-aware:
 *
 * - three FIFO queues: small S (`smallRatio` of the capacity in bytes: 10 % by default here, as in
 *   the paper; the L1 tier's config defaults to AIBrix's 30 %, see l1/dram-tier.ts), main M (the
 *   rest) and ghost G (keys only, remembering as many bytes' worth of objects as M holds);
 * - every resident entry has a 2-bit access counter `freq` (0..3);
 * - access (read hit): `freq = min(freq + 1, 3)`; nothing moves (lazy promotion);
 * - insert: into M if the key is in G (it leaves G: a ghost hit is still a miss), else into S, with
 *   freq 0;
 * - victim: if S holds at least its share (or M is empty), evict from S, else from M (the paper's
 *   rule; libCacheSim instead checks whether M is over its share, which differs only while the
 *   cache is not in steady state):
 *   - from S: take S's tail; if `freq ≥ threshold` move it to M's head with freq 0 (and if that
 *     puts M over its share, the victim comes from M), else it leaves the cache and its key goes to
 *     G's head (G forgets its oldest keys beyond its budget); repeat until one entry has left;
 *   - from M (CLOCK-like): take M's tail; if `freq ≥ 1` reinsert it at M's head with freq − 1,
 *     else it leaves the cache; repeat until one has left.
 *
 * The promotion threshold is configurable: 1 (paper, blog, AIBrix default: "accessed at least
 * once while in S") or 2 (libCacheSim's current default); AIBrix allows 1..3.
 *
 * Each operation is O(1) amortized: a victim() call may move entries from S to M or round M, but an
 * entry is moved S→M at most once per residency and reinserted into M at most 3 times per access it
 * received. Not implemented: libCacheSim's "insert into M while S is full but nothing has been
 * evicted yet" warm-up tweak.
 *
 * Hot entries (`onHot`, AIBrix's on_hot_access, which HOT ingestion copies to L2): an entry of S
 * whose access makes it reach the promotion threshold, and an entry inserted because of a ghost hit.
 */
import { z } from "zod";
import type { EvictionPolicy, KvKey } from "../tier";
import { DList, type ListNode } from "./dlist";

export const s3fifoOptionsSchema = z.strictObject({
  /** Share of the capacity (bytes) for the small FIFO, in (0, 1). Paper: 0.1; AIBrix: 0.3. */
  smallRatio: z.number().gt(0).lt(1).default(0.1),
  /** Accesses while in the small FIFO needed to move to main instead of leaving: 1 (paper, AIBrix) .. 3. */
  threshold: z.number().int().min(1).max(3).default(1),
  /** Bytes' worth of keys the ghost remembers, as a fraction of the capacity (default: main's share; 0 = no ghost). */
  ghostRatio: z.number().min(0).max(10).optional(),
});
export type S3FifoConfig = z.infer<typeof s3fifoOptionsSchema>;

export interface S3FifoOptions {
  capacityBytes: number;
  smallRatio?: number;
  threshold?: number;
  ghostRatio?: number;
  /** Called (synchronously) when an entry becomes hot (see the file comment). */
  onHot?: (key: KvKey) => void;
}

const SMALL = 0;
const MAIN = 1;
const GHOST = 2;
type Where = typeof SMALL | typeof MAIN | typeof GHOST;

interface S3Node extends ListNode {
  key: KvKey;
  size: number;
  freq: number;
  where: Where;
}

/** A ghost entry counts at least one byte, so zero-sized entries cannot make the ghost unbounded. */
const ghostWeight = (n: S3Node) => Math.max(1, n.size);

export class S3FifoPolicy implements EvictionPolicy {
  readonly name = "s3fifo";
  readonly capacityBytes: number;
  readonly smallCapacityBytes: number;
  readonly mainCapacityBytes: number;
  readonly ghostCapacityBytes: number;
  readonly threshold: number;
  private readonly nodes = new Map<KvKey, S3Node>();
  private readonly small = new DList<S3Node>();
  private readonly main = new DList<S3Node>();
  private readonly ghost = new DList<S3Node>();
  private readonly onHot: ((key: KvKey) => void) | undefined;

  constructor(opts: S3FifoOptions) {
    const cfg = s3fifoOptionsSchema.parse({ smallRatio: opts.smallRatio, threshold: opts.threshold, ghostRatio: opts.ghostRatio });
    if (!(opts.capacityBytes > 0) || !Number.isFinite(opts.capacityBytes)) throw new RangeError(`capacityBytes must be a positive number (got ${opts.capacityBytes})`);
    this.capacityBytes = opts.capacityBytes;
    this.smallCapacityBytes = Math.floor(opts.capacityBytes * cfg.smallRatio);
    this.mainCapacityBytes = opts.capacityBytes - this.smallCapacityBytes;
    this.ghostCapacityBytes = cfg.ghostRatio === undefined ? this.mainCapacityBytes : Math.floor(opts.capacityBytes * cfg.ghostRatio);
    this.threshold = cfg.threshold;
    this.onHot = opts.onHot;
  }

  /** Resident entries (S and M). */
  get size(): number {
    return this.small.count + this.main.count;
  }

  /** Sum of the resident entries' sizes. */
  get bytes(): number {
    return this.small.bytes + this.main.bytes;
  }

  has(key: KvKey): boolean {
    const n = this.nodes.get(key);
    return n !== undefined && n.where !== GHOST;
  }

  /** Which queue holds `key` (for tests, benchmarks and debugging). */
  where(key: KvKey): "small" | "main" | "ghost" | undefined {
    const n = this.nodes.get(key);
    return n === undefined ? undefined : n.where === SMALL ? "small" : n.where === MAIN ? "main" : "ghost";
  }

  /** The access counter of a resident entry. */
  frequency(key: KvKey): number | undefined {
    const n = this.nodes.get(key);
    return n === undefined || n.where === GHOST ? undefined : n.freq;
  }

  /** Queue occupancy (for tests and benchmarks). */
  occupancy(): { small: { count: number; bytes: number }; main: { count: number; bytes: number }; ghost: { count: number; bytes: number } } {
    const q = (l: DList<S3Node>) => ({ count: l.count, bytes: l.bytes });
    return { small: q(this.small), main: q(this.main), ghost: q(this.ghost) };
  }

  /**
   * A new entry: into M if its key is in the ghost, else into S. Inserting a resident key (without
   * onRemove first) only updates its size, in place.
   */
  onInsert(key: KvKey, size: number): void {
    const node = this.nodes.get(key);
    if (node === undefined) {
      const fresh: S3Node = { prev: null, next: null, key, size, freq: 0, where: SMALL };
      this.nodes.set(key, fresh);
      this.small.pushHead(fresh, size);
      return;
    }
    if (node.where === GHOST) {
      this.ghost.unlink(node, ghostWeight(node));
      node.size = size;
      node.freq = 0;
      node.where = MAIN;
      this.main.pushHead(node, size);
      this.onHot?.(key);
      return;
    }
    const q = node.where === SMALL ? this.small : this.main;
    q.bytes += size - node.size;
    node.size = size;
  }

  onAccess(key: KvKey): void {
    const node = this.nodes.get(key);
    if (node === undefined || node.where === GHOST) return;
    if (node.where === SMALL && node.freq === this.threshold - 1) this.onHot?.(key);
    if (node.freq < 3) node.freq++;
  }

  /** A resident entry left (deleted, replaced): it is forgotten, and not remembered in the ghost. */
  onRemove(key: KvKey): void {
    const node = this.nodes.get(key);
    if (node === undefined || node.where === GHOST) return;
    (node.where === SMALL ? this.small : this.main).unlink(node, node.size);
    this.nodes.delete(key);
  }

  /** The next key to evict; the policy treats it as gone (a later onRemove of it is a no-op). */
  victim(): KvKey | undefined {
    for (;;) {
      const s = this.small.tail();
      if (s === undefined && this.main.count === 0) return undefined;
      if (s !== undefined && (this.small.bytes >= this.smallCapacityBytes || this.main.count === 0)) {
        this.small.unlink(s, s.size);
        if (s.freq >= this.threshold) {
          s.freq = 0;
          s.where = MAIN;
          this.main.pushHead(s, s.size);
          if (this.main.bytes > this.mainCapacityBytes) return this.evictMain();
          continue;
        }
        s.freq = 0;
        s.where = GHOST;
        this.ghost.pushHead(s, ghostWeight(s));
        this.trimGhost();
        return s.key;
      }
      return this.evictMain();
    }
  }

  private evictMain(): KvKey | undefined {
    for (;;) {
      const m = this.main.tail();
      if (m === undefined) return undefined;
      this.main.unlink(m, m.size);
      if (m.freq >= 1) {
        m.freq--;
        this.main.pushHead(m, m.size);
        continue;
      }
      this.nodes.delete(m.key);
      return m.key;
    }
  }

  private trimGhost(): void {
    while (this.ghost.bytes > this.ghostCapacityBytes) {
      const g = this.ghost.tail() as S3Node;
      this.ghost.unlink(g, ghostWeight(g));
      this.nodes.delete(g.key);
    }
  }
}
