/**
 * Least recently used: every insert and access moves the entry to the head; the victim is the tail.
 * Like AIBrix's L1 LRU, an entry becomes "hot" on its first access after insertion (`onHot`), which
 * is what HOT ingestion copies to L2.
 *
 * O(1) per operation (a Map from key to an intrusive list node).
 */
import type { EvictionPolicy, KvKey } from "../tier";
import { DList, type ListNode } from "./dlist";

export interface LruOptions {
  /** Called (synchronously) the first time a resident entry is accessed. */
  onHot?: (key: KvKey) => void;
}

interface LruNode extends ListNode {
  key: KvKey;
  size: number;
  hot: boolean;
}

export class LruPolicy implements EvictionPolicy {
  readonly name = "lru";
  private readonly nodes = new Map<KvKey, LruNode>();
  private readonly list = new DList<LruNode>();
  private readonly onHot: ((key: KvKey) => void) | undefined;

  constructor(opts: LruOptions = {}) {
    this.onHot = opts.onHot;
  }

  /** Resident entries. */
  get size(): number {
    return this.list.count;
  }

  /** Sum of the resident entries' sizes. */
  get bytes(): number {
    return this.list.bytes;
  }

  has(key: KvKey): boolean {
    return this.nodes.has(key);
  }

  /** Inserting a resident key replaces it: new size, most recent, not hot. */
  onInsert(key: KvKey, size: number): void {
    const old = this.nodes.get(key);
    if (old !== undefined) this.list.unlink(old, old.size);
    const node: LruNode = old ?? { prev: null, next: null, key, size, hot: false };
    node.size = size;
    node.hot = false;
    this.nodes.set(key, node);
    this.list.pushHead(node, size);
  }

  onAccess(key: KvKey): void {
    const node = this.nodes.get(key);
    if (node === undefined) return;
    this.list.unlink(node, node.size);
    this.list.pushHead(node, node.size);
    if (!node.hot) {
      node.hot = true;
      this.onHot?.(key);
    }
  }

  onRemove(key: KvKey): void {
    const node = this.nodes.get(key);
    if (node === undefined) return;
    this.list.unlink(node, node.size);
    this.nodes.delete(key);
  }

  /** The least recently used key; the policy forgets it (a later onRemove of it is a no-op). */
  victim(): KvKey | undefined {
    const node = this.list.tail();
    if (node === undefined) return undefined;
    this.list.unlink(node, node.size);
    this.nodes.delete(node.key);
    return node.key;
  }

  /** Resident keys, next victim first (for tests and debugging; O(n)). */
  keys(): KvKey[] {
    return [...this.list.fromTail()].map((n) => n.key);
  }
}
