/**
 * The context's sequences as a pool of slots, each keeping its KV cache warm after its request ends.
 *
 * A new request takes the idle slot whose cached tokens share the longest prefix with its prompt
 * (llama-server's slot similarity; ties go to the least recently used slot), and only the rest of
 * the prompt is evaluated. When every slot is busy, requests wait in FIFO order.
 *
 * KV-tier hooks: `beforeDrop` runs wherever cached tokens are about to leave a slot (`prepare()`
 * erasing a divergent suffix, `evict()`), while the slot still holds them, so they can be saved to
 * the agent's tiers first (kv-tiers.ts). `saveState`/`restoreState` move an idle slot's state to and
 * from a file; `loadState` does it for a slot the caller holds.
 */
import type { LlamaContextSequence, Token } from "node-llama-cpp";

export interface PoolSlot {
  readonly id: number;
  readonly sequence: LlamaContextSequence;
  busy: boolean;
  /** performance.now() when the slot was last released (0: never used). */
  lastUsedAt: number;
  /** Cache namespace (tenant) whose tokens the slot holds: reuse never crosses namespaces. */
  namespace: string;
}

interface Waiter {
  resolve(slot: PoolSlot): void;
  reject(err: unknown): void;
}

export interface SequencePoolHooks {
  /**
   * The slot's cached tokens from `keep` on are about to be dropped (its `namespace` is still the
   * one they belong to). Errors are the hook's own: the pool goes on either way.
   */
  beforeDrop?(slot: PoolSlot, keep: number): Promise<void>;
}

export class PoolClosedError extends Error {
  constructor() {
    super("The llama.cpp engine is stopping.");
    this.name = "PoolClosedError";
  }
}

function abortError(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException("The operation was aborted.", "AbortError");
}

export class SequencePool {
  private readonly slots: PoolSlot[];
  private readonly waiters: Waiter[] = [];
  private closed = false;
  /** Cached tokens dropped to make room for other prompts, since the pool was made (a running total). */
  evictedTokens = 0;

  constructor(
    sequences: readonly LlamaContextSequence[],
    private readonly hooks: SequencePoolHooks = {},
  ) {
    this.slots = sequences.map((sequence, id) => ({ id, sequence, busy: false, lastUsedAt: 0, namespace: "" }));
  }

  get size(): number {
    return this.slots.length;
  }

  /** Slots serving a request. */
  get running(): number {
    return this.slots.reduce((n, s) => n + (s.busy ? 1 : 0), 0);
  }

  /** Requests waiting for a slot. */
  get waiting(): number {
    return this.waiters.length;
  }

  /** Tokens held in the KV cache across all slots (idle ones keep theirs for reuse). */
  cachedTokens(): number {
    return this.slots.reduce((n, s) => n + (s.sequence.disposed ? 0 : s.sequence.nextTokenIndex), 0);
  }

  /**
   * Takes a slot for `tokens`: the idle slot with the longest cached prefix of them, or the next
   * slot released when all are busy. Rejects if `signal` aborts while waiting or the pool closes.
   */
  acquire(tokens: readonly Token[], signal?: AbortSignal, namespace = ""): Promise<PoolSlot> {
    if (this.closed) return Promise.reject(new PoolClosedError());
    if (signal?.aborted) return Promise.reject(abortError(signal));
    const idle = this.bestIdleSlot(tokens, namespace);
    if (idle) {
      idle.busy = true;
      return Promise.resolve(idle);
    }
    return new Promise<PoolSlot>((resolve, reject) => {
      const onAbort = () => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(abortError(signal!));
      };
      const waiter: Waiter = {
        resolve: (slot) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(slot);
        },
        reject: (err) => {
          signal?.removeEventListener("abort", onAbort);
          reject(err);
        },
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  /**
   * Lines the slot's cache up with `tokens`: keeps the longest shared prefix (always leaving at
   * least the last prompt token to evaluate, which yields the logits for the first new token) and
   * erases the rest. Returns how many prompt tokens are served from the cache.
   */
  async prepare(slot: PoolSlot, tokens: readonly Token[], namespace = ""): Promise<number> {
    const seq = slot.sequence;
    // Another namespace's tokens are never reused, however similar: that would let one tenant time
    // another's cached prompts.
    const shared = slot.namespace === namespace ? Math.min(seq.compareContextTokens(tokens as Token[]).firstDifferentIndex, tokens.length - 1) : 0;
    const keep = Math.max(0, shared);
    if (keep < seq.nextTokenIndex) {
      await this.beforeDrop(slot, keep);
      this.evictedTokens += seq.nextTokenIndex - keep;
      await seq.adaptStateToTokens(tokens.slice(0, keep) as Token[], false);
    }
    slot.namespace = namespace;
    // Erasing can fall back to dropping the whole state (models that cannot erase a suffix): trust the sequence.
    return Math.min(seq.nextTokenIndex, keep);
  }

  /** Ends a request's hold on the slot (its cache stays warm) and hands it to the next waiter. */
  release(slot: PoolSlot): void {
    if (!slot.busy) return;
    slot.lastUsedAt = performance.now();
    const next = this.waiters.shift();
    if (next && !this.closed) {
      next.resolve(slot);
      return;
    }
    slot.busy = false;
  }

  /** Drops an idle slot's cached state. */
  async evict(slot: PoolSlot): Promise<void> {
    if (slot.busy) throw new Error(`slot ${slot.id} is busy`);
    if (slot.sequence.disposed) return;
    await this.beforeDrop(slot, 0);
    this.evictedTokens += slot.sequence.nextTokenIndex;
    await slot.sequence.clearHistory();
  }

  /** Writes an idle slot's KV state to a file (for a KV tier); returns the file size. */
  async saveState(slot: PoolSlot, filePath: string): Promise<number> {
    if (slot.busy) throw new Error(`slot ${slot.id} is busy`);
    return (await slot.sequence.saveStateToFile(filePath)).fileSize;
  }

  /** Loads a KV state written by `saveState` from the same model file into an idle slot. */
  async restoreState(slot: PoolSlot, filePath: string): Promise<void> {
    if (slot.busy) throw new Error(`slot ${slot.id} is busy`);
    await slot.sequence.loadStateFromFile(filePath, { acceptRisk: true });
  }

  /**
   * Loads a state file into a slot the caller holds (a KV-tier restore), replacing what it held.
   * On failure the sequence is left empty and the error is thrown.
   */
  async loadState(slot: PoolSlot, filePath: string): Promise<void> {
    if (!slot.busy) throw new Error(`slot ${slot.id} is not held`);
    try {
      await slot.sequence.loadStateFromFile(filePath, { acceptRisk: true });
    } catch (err) {
      await slot.sequence.clearHistory().catch(() => {});
      throw err;
    }
  }

  private async beforeDrop(slot: PoolSlot, keep: number): Promise<void> {
    if (!this.hooks.beforeDrop) return;
    try {
      await this.hooks.beforeDrop(slot, keep);
    } catch {
      // saving is best effort; the slot must be lined up for its request regardless
    }
  }

  /** All slots (for inspection and the KV-tier hooks). */
  list(): readonly PoolSlot[] {
    return this.slots;
  }

  /** Rejects every waiter and refuses new requests. */
  close(): void {
    this.closed = true;
    for (const w of this.waiters.splice(0)) w.reject(new PoolClosedError());
  }

  private bestIdleSlot(tokens: readonly Token[], namespace: string): PoolSlot | undefined {
    let best: PoolSlot | undefined;
    let bestShared = -1;
    for (const slot of this.slots) {
      if (slot.busy || slot.sequence.disposed) continue;
      const shared = slot.namespace === namespace ? slot.sequence.compareContextTokens(tokens as Token[]).firstDifferentIndex : 0;
      if (shared > bestShared || (shared === bestShared && best && slot.lastUsedAt < best.lastUsedAt)) {
        best = slot;
        bestShared = shared;
      }
    }
    return best;
  }
}
