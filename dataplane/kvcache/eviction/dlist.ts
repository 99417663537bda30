/**
 * An intrusive doubly linked list with a sentinel: O(1) push at the head, unlink anywhere, peek at
 * the tail. The eviction policies keep their queues in these (a Map keeps insertion order too, but
 * popping its oldest entry walks over the holes earlier deletions left, so a FIFO built on a Map
 * degrades to O(n) per eviction between rehashes).
 */
export interface ListNode {
  prev: ListNode | null;
  next: ListNode | null;
}

export class DList<N extends ListNode> {
  private readonly sentinel: ListNode = { prev: null, next: null };
  /** Entries in the list. */
  count = 0;
  /** Sum of the sizes of the entries, kept by the owner through push/unlink's `size` argument. */
  bytes = 0;

  constructor() {
    this.sentinel.prev = this.sentinel;
    this.sentinel.next = this.sentinel;
  }

  /** Inserts `node` (not in any list) as the newest entry. */
  pushHead(node: N, size: number): void {
    const s = this.sentinel;
    node.prev = s;
    node.next = s.next;
    (s.next as ListNode).prev = node;
    s.next = node;
    this.count++;
    this.bytes += size;
  }

  /** Removes `node`, which must be in this list. */
  unlink(node: N, size: number): void {
    (node.prev as ListNode).next = node.next;
    (node.next as ListNode).prev = node.prev;
    node.prev = null;
    node.next = null;
    this.count--;
    this.bytes -= size;
  }

  /** The oldest entry, or undefined when empty. */
  tail(): N | undefined {
    const t = this.sentinel.prev;
    return t === this.sentinel ? undefined : (t as N);
  }

  /** Oldest first. */
  *fromTail(): IterableIterator<N> {
    for (let n = this.sentinel.prev as ListNode; n !== this.sentinel; n = n.prev as ListNode) yield n as N;
  }

  clear(): void {
    this.sentinel.prev = this.sentinel;
    this.sentinel.next = this.sentinel;
    this.count = 0;
    this.bytes = 0;
  }
}
