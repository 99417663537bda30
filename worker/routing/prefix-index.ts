/**
 * Which node holds which prompt prefix blocks, as far as the pool knows. Filled from routing
 * decisions (a node that served a prompt holds its blocks), emptied by what nodes report they
 * dropped, by each node's KV capacity and by age — so it forgets prefixes a node no longer holds
 * instead of trusting its own history.
 *
 * Memory is bounded twice: each node's share by the KV capacity it reports (in blocks), and the
 * whole index by `maxEntries` (block, node) pairs, split between nodes in proportion to capacity.
 * Each node's blocks are kept in LRU order with a chain's tail older than its root, so eviction
 * drops the ends of prompts first (as vLLM does) and a surviving prefix stays matchable.
 *
 * Every operation is O(1) amortized per block and allocates nothing per block: a node's recency
 * order is a FIFO queue of (pair, touch sequence) with lazy deletion (an entry whose sequence is no
 * longer the pair's latest is skipped), compacted when stale entries dominate.
 *
 * Because every record touches a whole chain, tail first and root last, a block is always touched
 * more recently than every block after it in any chain: eviction (oldest first) can never remove an
 * ancestor while a descendant stays. So "a node holds block i" implies it holds blocks 0..i-1, and
 * the longest prefix a node holds is found by binary search: O(log n) probes instead of n.
 */

export interface PrefixIndexOptions {
  /** Total (block, node) pairs kept, across nodes. */
  maxEntries?: number;
  /** Blocks idle longer than this are dropped. */
  ttlMs?: number;
  /** Tokens per block, to turn token capacities and evictions into blocks. */
  tokensPerBlock?: number;
}

import { BlockTable, NO_PAIR } from "./block-table";


/** FIFO of (pair, sequence, time) in growable typed arrays: a node's blocks in touch order. */
class TouchQueue {
  pairs = new Int32Array(256);
  seqs = new Float64Array(256);
  times = new Float64Array(256);
  head = 0;
  tail = 0;

  get length(): number {
    return this.tail - this.head;
  }

  push(pair: number, seq: number, time: number): void {
    if (this.tail === this.pairs.length) this.grow();
    this.pairs[this.tail] = pair;
    this.seqs[this.tail] = seq;
    this.times[this.tail] = time;
    this.tail++;
  }

  private grow(): void {
    const live = this.tail - this.head;
    const size = Math.max(256, live * 2);
    const pairs = new Int32Array(size);
    const seqs = new Float64Array(size);
    const times = new Float64Array(size);
    pairs.set(this.pairs.subarray(this.head, this.tail));
    seqs.set(this.seqs.subarray(this.head, this.tail));
    times.set(this.times.subarray(this.head, this.tail));
    this.pairs = pairs;
    this.seqs = seqs;
    this.times = times;
    this.head = 0;
    this.tail = live;
  }

  /** Keeps only entries `keep` approves, in order. */
  compact(keep: (pair: number, seq: number) => boolean): void {
    let w = 0;
    for (let r = this.head; r < this.tail; r++) {
      const p = this.pairs[r] as number;
      const s = this.seqs[r] as number;
      if (!keep(p, s)) continue;
      this.pairs[w] = p;
      this.seqs[w] = s;
      this.times[w] = this.times[r] as number;
      w++;
    }
    this.head = 0;
    this.tail = w;
  }
}

interface NodeBlocks {
  index: number;
  /** Pairs this node holds. */
  count: number;
  queue: TouchQueue;
  /** Blocks this node may hold here (from its KV capacity and the global cap). */
  cap: number;
  capacityBlocks: number;
}

export class PrefixIndex {
  private readonly table = new BlockTable();
  private readonly nodes = new Map<string, NodeBlocks>();
  private readonly names: string[] = [];
  private readonly freeIndexes: number[] = [];
  private seq = 0;
  /** Scratch for match(): which node indexes are candidates (by index). */
  private candidateMark = new Uint8Array(64);
  readonly maxEntries: number;
  readonly ttlMs: number;
  readonly tokensPerBlock: number;

  constructor(opts: PrefixIndexOptions = {}) {
    this.maxEntries = opts.maxEntries ?? 400_000;
    this.ttlMs = opts.ttlMs ?? 20 * 60_000;
    this.tokensPerBlock = opts.tokensPerBlock ?? 64;
  }

  /** (block, node) pairs held. */
  get size(): number {
    return this.table.pairs;
  }

  blocksOf(nodeId: string): number {
    return this.nodes.get(nodeId)?.count ?? 0;
  }

  /** Whether the node is believed to hold the block (inspection and tests). */
  holds(nodeId: string, hash: number): boolean {
    const n = this.nodes.get(nodeId);
    return n !== undefined && this.table.findPair(hash, n.index) !== NO_PAIR;
  }

  private node(nodeId: string): NodeBlocks {
    let n = this.nodes.get(nodeId);
    if (!n) {
      const index = this.freeIndexes.pop() ?? this.names.length;
      this.names[index] = nodeId;
      if (index >= this.candidateMark.length) {
        const grown = new Uint8Array(this.candidateMark.length * 2);
        grown.set(this.candidateMark);
        this.candidateMark = grown;
      }
      n = { index, count: 0, queue: new TouchQueue(), cap: 0, capacityBlocks: 0 };
      this.nodes.set(nodeId, n);
      this.rebalanceCaps();
    }
    return n;
  }

  /** A node's KV capacity changed (heartbeat): its share of the index follows. */
  setCapacity(nodeId: string, capacityTokens: number): void {
    const n = this.node(nodeId);
    const blocks = Math.max(1, Math.floor(capacityTokens / this.tokensPerBlock));
    if (n.capacityBlocks === blocks) return;
    n.capacityBlocks = blocks;
    this.rebalanceCaps();
  }

  /** Splits maxEntries in proportion to capacity; a node that reported none counts as average. */
  private rebalanceCaps(): void {
    let known = 0;
    let knownTotal = 0;
    for (const n of this.nodes.values()) {
      if (n.capacityBlocks > 0) {
        known++;
        knownTotal += n.capacityBlocks;
      }
    }
    const average = known > 0 ? knownTotal / known : this.maxEntries / Math.max(1, this.nodes.size);
    let weights = 0;
    for (const n of this.nodes.values()) weights += n.capacityBlocks || average;
    for (const n of this.nodes.values()) {
      const share = Math.floor((this.maxEntries * (n.capacityBlocks || average)) / weights);
      n.cap = Math.max(1, Math.min(n.capacityBlocks || share, share));
      this.trim(n, n.cap);
    }
  }

  /**
   * Longest run of leading blocks each candidate holds: the holders of the first block, each with a
   * binary search for its depth (see the class comment for why holding is monotone along a chain).
   */
  match(blocks: readonly number[], candidates: readonly string[]): Map<string, number> {
    const out = new Map<string, number>();
    if (blocks.length === 0 || candidates.length === 0) return out;
    const t = this.table;
    let p = t.firstPair(blocks[0] as number);
    if (p === NO_PAIR) return out;
    const mark = this.candidateMark;
    for (const c of candidates) {
      const n = this.nodes.get(c);
      if (n) mark[n.index] = 1;
    }
    for (; p !== NO_PAIR; p = t.pairNext[p] as number) {
      const node = t.pairNode[p] as number;
      if (mark[node] !== 1) continue;
      // Invariant: holds blocks[0..lo), does not hold blocks[hi..).
      let lo = 1;
      let hi = blocks.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (t.findPair(blocks[mid] as number, node) !== NO_PAIR) lo = mid + 1;
        else hi = mid;
      }
      out.set(this.names[node] as string, lo);
    }
    for (const c of candidates) {
      const n = this.nodes.get(c);
      if (n) mark[n.index] = 0;
    }
    return out;
  }

  /** `nodeId` now holds these blocks (it was sent this prompt). */
  record(blocks: readonly number[], nodeId: string, now: number): void {
    if (blocks.length === 0) return;
    const n = this.node(nodeId);
    const t = this.table;
    // Tail first, root last: the root is the most recently used, so it is evicted last.
    for (let i = blocks.length - 1; i >= 0; i--) {
      const h = blocks[i] as number;
      let p = t.findPair(h, n.index);
      if (p === NO_PAIR) {
        p = t.addPair(h, n.index);
        n.count++;
      }
      const seq = ++this.seq;
      t.pairSeq[p] = seq;
      n.queue.push(p, seq, now);
    }
    this.expire(n, now);
    this.trim(n, n.cap);
    if (n.queue.length > 4 * n.count + 1024) n.queue.compact((p, s) => t.pairSeq[p] === s);
  }

  /** Removes the node's least recently touched block; false when it holds none (older than `olderThan`). */
  private dropOldest(n: NodeBlocks, olderThan = Number.POSITIVE_INFINITY): boolean {
    const q = n.queue;
    const t = this.table;
    while (q.head < q.tail) {
      const p = q.pairs[q.head] as number;
      if (t.pairSeq[p] !== q.seqs[q.head]) {
        q.head++; // superseded by a later touch, or already removed
        continue;
      }
      if ((q.times[q.head] as number) >= olderThan) return false;
      q.head++;
      t.removePair(p);
      n.count--;
      return true;
    }
    return false;
  }

  private trim(n: NodeBlocks, cap: number): void {
    while (n.count > cap && this.dropOldest(n)) {
      /* drop */
    }
  }

  private expire(n: NodeBlocks, now: number): void {
    while (this.dropOldest(n, now - this.ttlMs)) {
      /* drop */
    }
  }

  /** The node reports it evicted this many tokens of cached KV: forget as many of its oldest blocks. */
  evictTokens(nodeId: string, tokens: number): void {
    const n = this.nodes.get(nodeId);
    if (!n || tokens <= 0) return;
    let blocks = Math.ceil(tokens / this.tokensPerBlock);
    while (blocks-- > 0 && this.dropOldest(n)) {
      /* drop */
    }
  }

  /** The node dropped its whole cache (engine restart, reset): forget everything it held. */
  clearNode(nodeId: string): void {
    const n = this.nodes.get(nodeId);
    if (!n) return;
    while (this.dropOldest(n)) {
      /* drop */
    }
    n.queue = new TouchQueue();
  }

  /** The node left the pool for good. */
  removeNode(nodeId: string): void {
    const n = this.nodes.get(nodeId);
    if (!n) return;
    this.clearNode(nodeId);
    this.nodes.delete(nodeId);
    this.freeIndexes.push(n.index);
    this.rebalanceCaps();
  }

  /** Ages out idle blocks of every node. */
  sweep(now: number): void {
    for (const n of this.nodes.values()) this.expire(n, now);
  }
}
