/**
 * Reuses large receive buffers. A fresh 32 MiB buffer costs ~8,000 page faults the first time the
 * kernel writes into it (measured on the 2-core dev box: 35–44 ms to allocate and fill 32 MiB,
 * against 2 ms to refill a warm one), and its release costs a GC and an munmap; KV chunks of one
 * model all have the same size, so buffers freed by eviction fit the next value exactly.
 *
 * Buffers are pooled by the exact byteLength of their ArrayBuffer. Only buffers that own their
 * ArrayBuffer (allocated here or with Buffer.allocUnsafeSlow) and are at least `minBytes` long are
 * taken back. The caller of `release` promises that nothing references the memory any more: a
 * released buffer is handed out again and overwritten.
 */

export interface BufferPoolOptions {
  /** Idle bytes kept at most (default 256 MiB); beyond it released buffers are left to the GC. */
  maxIdleBytes?: number;
  /** Smaller buffers are not pooled (default 256 KiB): the allocator handles them well. */
  minBytes?: number;
}

export interface BufferPoolStats {
  /** acquire() served from the pool. */
  reused: number;
  /** acquire() that allocated. */
  allocated: number;
  released: number;
  /** release() refused (too small, shared memory, pool full). */
  dropped: number;
  idleBytes: number;
}

export class BufferPool {
  readonly maxIdleBytes: number;
  readonly minBytes: number;
  private readonly free = new Map<number, ArrayBuffer[]>();
  private idle = 0;
  private readonly counters = { reused: 0, allocated: 0, released: 0, dropped: 0 };

  constructor(opts: BufferPoolOptions = {}) {
    this.maxIdleBytes = opts.maxIdleBytes ?? 256 * 1024 * 1024;
    this.minBytes = opts.minBytes ?? 256 * 1024;
  }

  /** A buffer of exactly `length` bytes with undefined contents. */
  acquire(length: number): Buffer {
    if (length >= this.minBytes) {
      const list = this.free.get(length);
      const ab = list?.pop();
      if (ab !== undefined) {
        if (list?.length === 0) this.free.delete(length);
        this.idle -= length;
        this.counters.reused++;
        return Buffer.from(ab, 0, length);
      }
    }
    this.counters.allocated++;
    return Buffer.allocUnsafeSlow(length);
  }

  /** Gives back the memory behind `view` (all of its ArrayBuffer) for reuse. */
  release(view: Uint8Array): void {
    const ab = view.buffer;
    const length = ab.byteLength;
    if (!(ab instanceof ArrayBuffer) || length < this.minBytes || this.idle + length > this.maxIdleBytes) {
      this.counters.dropped++;
      return;
    }
    let list = this.free.get(length);
    if (list === undefined) this.free.set(length, (list = []));
    list.push(ab);
    this.idle += length;
    this.counters.released++;
  }

  stats(): BufferPoolStats {
    return { ...this.counters, idleBytes: this.idle };
  }
}
