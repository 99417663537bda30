/**
 * Storage for the prefix index: which (block, node) pairs exist, with each pair's recency. Block
 * hashes are 53-bit integers; a JS Map would box every one of them on every lookup (they do not fit
 * a small integer), so this is an open-addressing hash table over typed arrays instead, with pairs
 * in a pooled free-listed arena. Nothing is allocated per block or per lookup.
 */

const EMPTY = 0;
const FULL = 1;
const DELETED = 2;

export const NO_PAIR = -1;

export class BlockTable {
  // Hash table: block hash → first pair of that block.
  private keys: Float64Array;
  private state: Uint8Array;
  private first: Int32Array;
  private mask: number;
  private used = 0; // FULL + DELETED slots
  private live = 0; // FULL slots

  // Pair arena: one entry per (block, node).
  pairNode: Int32Array;
  pairNext: Int32Array;
  pairSlot: Int32Array;
  /** Sequence number of the pair's latest touch (recency-queue identity). */
  pairSeq: Float64Array;
  private freeHead = NO_PAIR;
  private pairTop = 0;
  pairs = 0;

  constructor(initialSlots = 1 << 12) {
    const size = 1 << Math.ceil(Math.log2(Math.max(16, initialSlots)));
    this.keys = new Float64Array(size);
    this.state = new Uint8Array(size);
    this.first = new Int32Array(size);
    this.mask = size - 1;
    const pairs = size;
    this.pairNode = new Int32Array(pairs);
    this.pairNext = new Int32Array(pairs);
    this.pairSlot = new Int32Array(pairs);
    this.pairSeq = new Float64Array(pairs);
  }

  get blocks(): number {
    return this.live;
  }

  /** Slot of `hash`, or -1. */
  private findSlot(hash: number): number {
    let i = (hash >>> 0) & this.mask;
    for (;;) {
      const s = this.state[i] as number;
      if (s === EMPTY) return -1;
      if (s === FULL && this.keys[i] === hash) return i;
      i = (i + 1) & this.mask;
    }
  }

  private insertSlot(hash: number): number {
    if ((this.used + 1) * 4 > this.keys.length * 3) this.rehash(this.live * 2 > this.keys.length / 2 ? this.keys.length * 2 : this.keys.length);
    let i = (hash >>> 0) & this.mask;
    let tomb = -1;
    for (;;) {
      const s = this.state[i] as number;
      if (s === EMPTY) break;
      if (s === FULL && this.keys[i] === hash) return i;
      if (s === DELETED && tomb < 0) tomb = i;
      i = (i + 1) & this.mask;
    }
    const at = tomb >= 0 ? tomb : i;
    if (tomb < 0) this.used++;
    this.state[at] = FULL;
    this.keys[at] = hash;
    this.first[at] = NO_PAIR;
    this.live++;
    return at;
  }

  private rehash(size: number): void {
    const { keys, state, first } = this;
    this.keys = new Float64Array(size);
    this.state = new Uint8Array(size);
    this.first = new Int32Array(size);
    this.mask = size - 1;
    this.used = 0;
    this.live = 0;
    for (let i = 0; i < keys.length; i++) {
      if (state[i] !== FULL) continue;
      const at = this.insertSlot(keys[i] as number);
      this.first[at] = first[i] as number;
      for (let p = first[i] as number; p !== NO_PAIR; p = this.pairNext[p] as number) this.pairSlot[p] = at;
    }
  }

  private allocPair(): number {
    if (this.freeHead !== NO_PAIR) {
      const p = this.freeHead;
      this.freeHead = this.pairNext[p] as number;
      return p;
    }
    if (this.pairTop === this.pairNode.length) {
      const size = this.pairNode.length * 2;
      const grow = <T extends Int32Array | Float64Array>(a: T): T => {
        const next = new (a.constructor as new (n: number) => T)(size);
        next.set(a);
        return next;
      };
      this.pairNode = grow(this.pairNode);
      this.pairNext = grow(this.pairNext);
      this.pairSlot = grow(this.pairSlot);
      this.pairSeq = grow(this.pairSeq);
    }
    return this.pairTop++;
  }

  /** The pair (hash, node), or NO_PAIR. */
  findPair(hash: number, node: number): number {
    const slot = this.findSlot(hash);
    if (slot < 0) return NO_PAIR;
    for (let p = this.first[slot] as number; p !== NO_PAIR; p = this.pairNext[p] as number) if (this.pairNode[p] === node) return p;
    return NO_PAIR;
  }

  /** Adds the pair (hash, node), which must not exist yet; returns it. */
  addPair(hash: number, node: number): number {
    const slot = this.insertSlot(hash);
    const p = this.allocPair();
    this.pairNode[p] = node;
    this.pairSlot[p] = slot;
    this.pairNext[p] = this.first[slot] as number;
    this.first[slot] = p;
    this.pairs++;
    return p;
  }

  removePair(p: number): void {
    const slot = this.pairSlot[p] as number;
    let prev = NO_PAIR;
    for (let q = this.first[slot] as number; q !== NO_PAIR; q = this.pairNext[q] as number) {
      if (q === p) {
        if (prev === NO_PAIR) this.first[slot] = this.pairNext[q] as number;
        else this.pairNext[prev] = this.pairNext[q] as number;
        break;
      }
      prev = q;
    }
    if (this.first[slot] === NO_PAIR) {
      this.state[slot] = DELETED;
      this.live--;
    }
    this.pairSeq[p] = -1;
    this.pairNext[p] = this.freeHead;
    this.freeHead = p;
    this.pairs--;
  }

  /** First pair of the block, or NO_PAIR (iterate with pairNext). */
  firstPair(hash: number): number {
    const slot = this.findSlot(hash);
    return slot < 0 ? NO_PAIR : (this.first[slot] as number);
  }
}
