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
 */

export interface PrefixIndexOptions {
  /** Total (block, node) pairs kept, across nodes. */
  maxEntries?: number;
  /** Blocks idle longer than this are dropped. */
  ttlMs?: number;
  /** Tokens per block, to turn token capacities and evictions into blocks. */
  tokensPerBlock?: number;
}

interface NodeBlocks {
  /** block hash → last touch (ms), in touch order: oldest first. */
  lru: Map<number, number>;
  /** Blocks this node may hold here (from its KV capacity and the global cap). */
  cap: number;
  capacityBlocks: number;
}

export class PrefixIndex {
  private readonly owners = new Map<number, string[]>();
  private readonly nodes = new Map<string, NodeBlocks>();
  private entries = 0;
  readonly maxEntries: number;
  readonly ttlMs: number;
  readonly tokensPerBlock: number;

  constructor(opts: PrefixIndexOptions = {}) {
    this.maxEntries = opts.maxEntries ?? 400_000;
    this.ttlMs = opts.ttlMs ?? 20 * 60_000;
    this.tokensPerBlock = opts.tokensPerBlock ?? 32;
  }

  get size(): number {
    return this.entries;
  }

  blocksOf(nodeId: string): number {
    return this.nodes.get(nodeId)?.lru.size ?? 0;
  }

  private node(nodeId: string): NodeBlocks {
    let n = this.nodes.get(nodeId);
    if (!n) {
      n = { lru: new Map(), cap: 0, capacityBlocks: 0 };
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
    for (const [id, n] of this.nodes) {
      const share = Math.floor((this.maxEntries * (n.capacityBlocks || average)) / weights);
      n.cap = Math.max(1, Math.min(n.capacityBlocks || share, share));
      this.trim(id, n, n.cap);
    }
  }

  /**
   * Longest contiguous run of leading blocks each candidate holds. Walks the chain once; stops when
   * no candidate holds the next block.
   */
  match(blocks: readonly number[], candidates: readonly string[]): Map<string, number> {
    const out = new Map<string, number>();
    if (blocks.length === 0 || candidates.length === 0) return out;
    let alive = new Set(candidates);
    for (let i = 0; i < blocks.length && alive.size > 0; i++) {
      const holders = this.owners.get(blocks[i] as number);
      if (!holders) break;
      const next = new Set<string>();
      for (const h of holders) {
        if (alive.has(h)) {
          next.add(h);
          out.set(h, i + 1);
        }
      }
      alive = next;
    }
    return out;
  }

  /** `nodeId` now holds these blocks (it was sent this prompt). */
  record(blocks: readonly number[], nodeId: string, now: number): void {
    if (blocks.length === 0) return;
    const n = this.node(nodeId);
    // Tail first, root last: the root is the most recently used, so it is evicted last.
    for (let i = blocks.length - 1; i >= 0; i--) {
      const h = blocks[i] as number;
      if (n.lru.delete(h)) {
        n.lru.set(h, now);
        continue;
      }
      n.lru.set(h, now);
      this.entries++;
      const holders = this.owners.get(h);
      if (holders) holders.push(nodeId);
      else this.owners.set(h, [nodeId]);
    }
    this.expire(nodeId, n, now);
    this.trim(nodeId, n, n.cap);
  }

  private dropOldest(nodeId: string, n: NodeBlocks): boolean {
    const first = n.lru.keys().next();
    if (first.done) return false;
    this.unlink(first.value, nodeId);
    n.lru.delete(first.value);
    this.entries--;
    return true;
  }

  private unlink(hash: number, nodeId: string): void {
    const holders = this.owners.get(hash);
    if (!holders) return;
    const i = holders.indexOf(nodeId);
    if (i >= 0) holders.splice(i, 1);
    if (holders.length === 0) this.owners.delete(hash);
  }

  private trim(nodeId: string, n: NodeBlocks, cap: number): void {
    while (n.lru.size > cap && this.dropOldest(nodeId, n)) {
      /* drop */
    }
  }

  private expire(nodeId: string, n: NodeBlocks, now: number): void {
    for (const [, at] of n.lru) {
      if (now - at <= this.ttlMs) break;
      this.dropOldest(nodeId, n);
    }
  }

  /** The node reports it evicted this many tokens of cached KV: forget as many of its oldest blocks. */
  evictTokens(nodeId: string, tokens: number): void {
    const n = this.nodes.get(nodeId);
    if (!n || tokens <= 0) return;
    let blocks = Math.ceil(tokens / this.tokensPerBlock);
    while (blocks-- > 0 && this.dropOldest(nodeId, n)) {
      /* drop */
    }
  }

  /** The node dropped its whole cache (engine restart, reset): forget everything it held. */
  clearNode(nodeId: string): void {
    const n = this.nodes.get(nodeId);
    if (!n) return;
    while (this.dropOldest(nodeId, n)) {
      /* drop */
    }
  }

  /** The node left the pool for good. */
  removeNode(nodeId: string): void {
    this.clearNode(nodeId);
    this.nodes.delete(nodeId);
    this.rebalanceCaps();
  }

  /** Ages out idle blocks of every node. */
  sweep(now: number): void {
    for (const [id, n] of this.nodes) this.expire(id, n, now);
  }
}
