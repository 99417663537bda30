/**
 * The engine emulator's lower KV tier (`KvLowerTier`, engines/sim/kv-cache.ts) over the agent's
 * real L1: blocks the emulated GPU evicts are stored in L1 (and from there reach L2 through the
 * agent's ingestion), and a waiting request's prefix found in L1 is loaded at the emulator's
 * calibrated host→GPU cost instead of recomputed.
 *
 * Keys: the emulator's block hashes are 52-bit chain hashes of 16-token blocks, already salted with
 * the request's cache namespace (namespaceSeed), so key = SHA-256(len ‖ model identity ‖ hash) is
 * deterministic, namespaced by model and tenant, and shared by every agent emulating the same
 * model. Memoized, since the scheduler asks about the same prefixes again while a request waits.
 *
 * Values are as large as the emulated KV of a block (blockSize × the model shape's bytes per
 * token, 2 MiB for the default Llama-3-8B shape): L1's byte budget, its evictions and L2's traffic
 * then behave as they would for the real engine. That costs real memory and copies; give the
 * engine a smaller `modelShape` where only the mechanics matter. The first bytes say which block
 * it is (magic, hash, tokens), so a load can be checked.
 *
 * L2: the emulator asks synchronously, inside a scheduling step, and a remote lookup is a round
 * trip, so L2 is asked before the request is queued (`prefetch`): the blocks past the GPU's and
 * L1's prefix that L2 holds are copied into L1, where the scheduler then finds them. The request
 * waits for that on the wall clock, so the round trips count in its TTFT. Blocks reach L2 through
 * the agent's ingestion, where other agents, llama.cpp engines and tools find them too.
 */
import { createHash } from "node:crypto";
import type { KvLowerTier, KvTierBlock } from "../engines/sim/kv-cache";
import type { EngineKvTiers } from "./agent-tiers";
import type { KvKey } from "./tier";

const SIM_BLOCK_MAGIC = 0x42535953; // 'SYSB'
const SIM_KEY_DOMAIN = "switchyard-sim-kv/v1";
/** Memoized keys kept at most; the map is simply cleared when full (recomputing one costs ~1 µs). */
const MAX_MEMO = 200_000;
/** Keys prefetched from L2 and not loaded yet, kept at most (a cancelled request never loads its own). */
const MAX_FROM_L2 = 100_000;

export interface SimKvLowerTierOptions {
  /** The model identity the keys are namespaced by. */
  identity: string;
  blockSize: number;
  /** Emulated KV bytes of one block (blockSize × bytes per token). */
  blockBytes: number;
}

export class SimKvLowerTier implements KvLowerTier {
  private readonly memo = new Map<number, KvKey>();
  private readonly seed: Buffer;
  private readonly valueBytes: number;
  /** Requests (their hash arrays) whose lookup was already counted as a query. */
  private readonly counted = new WeakSet<object>();
  /** Blocks L2 supplied to L1 for a waiting request: their load counts as L2's, not L1's. */
  private readonly fromL2 = new Set<KvKey>();
  readonly stats = { offered: 0, stored: 0, lookups: 0, loadedBlocks: 0, prefetchedBlocks: 0 };

  constructor(
    private readonly tiers: EngineKvTiers,
    private readonly opts: SimKvLowerTierOptions,
  ) {
    const id = Buffer.from(`${SIM_KEY_DOMAIN}\u0000${opts.identity}`, "utf8");
    this.seed = Buffer.allocUnsafe(4 + id.length);
    this.seed.writeUInt32LE(id.length, 0);
    id.copy(this.seed, 4);
    this.valueBytes = Math.max(opts.blockBytes, 16 + 4 * opts.blockSize);
  }

  key(hash: number): KvKey {
    let k = this.memo.get(hash);
    if (k === undefined) {
      const b = Buffer.allocUnsafe(8);
      b.writeDoubleLE(hash, 0);
      k = createHash("sha256").update(this.seed).update(b).digest("hex");
      if (this.memo.size >= MAX_MEMO) this.memo.clear();
      this.memo.set(hash, k);
    }
    return k;
  }

  offer(block: KvTierBlock): void {
    this.stats.offered++;
    const key = this.key(block.hash);
    if (this.tiers.inL1(key)) return;
    const value = Buffer.alloc(this.valueBytes);
    value.writeUInt32LE(SIM_BLOCK_MAGIC, 0);
    value.writeUInt32LE(block.tokenIds.length, 4);
    value.writeDoubleLE(block.hash, 8);
    for (let i = 0; i < block.tokenIds.length && 16 + 4 * i + 4 <= value.length; i++) value.writeInt32LE(block.tokenIds[i] as number, 16 + 4 * i);
    this.stats.stored += this.tiers.store([key], [value]);
  }

  /** A probe (no stats, no eviction effect): the scheduler repeats it while a request waits for memory. */
  lookup(hashes: ArrayLike<number>, from: number, to: number): number {
    this.stats.lookups++;
    if (typeof hashes === "object" && hashes !== null && !this.counted.has(hashes)) {
      this.counted.add(hashes);
      this.tiers.record((to - from) * this.opts.blockSize, 0, 0);
    }
    let n = 0;
    while (from + n < to && this.tiers.inL1(this.key(hashes[from + n] as number))) n++;
    return n;
  }

  /** The load of what `lookup` found: an access in L1 (hits, eviction order), copied at the host→GPU cost. */
  fetch(hashes: ArrayLike<number>, from: number, count: number, atMs: number): { h2dBlocks: number; readyMs: number } {
    const keys: KvKey[] = [];
    for (let i = 0; i < count; i++) keys.push(this.key(hashes[from + i] as number));
    const got = this.tiers.l1GetPrefix(keys).length;
    this.stats.loadedBlocks += got;
    let remote = 0;
    for (let i = 0; i < got; i++) if (this.fromL2.delete(keys[i] as KvKey)) remote++;
    this.tiers.record(0, (got - remote) * this.opts.blockSize, remote * this.opts.blockSize);
    return { h2dBlocks: count, readyMs: atMs };
  }

  /** Copies what L2 holds past L1's prefix of `hashes[from, to)` into L1 (the blocks the GPU lacks). */
  async prefetch(hashes: ArrayLike<number>, from: number, to: number, signal?: AbortSignal): Promise<void> {
    let start = from;
    while (start < to && this.tiers.inL1(this.key(hashes[start] as number))) start++;
    if (start >= to) return;
    const keys: KvKey[] = [];
    for (let i = start; i < to; i++) keys.push(this.key(hashes[i] as number));
    const n = await this.tiers.prefetchFromL2(keys, signal);
    if (n === 0) return;
    this.stats.prefetchedBlocks += n;
    if (this.fromL2.size + n > MAX_FROM_L2) this.fromL2.clear();
    for (let i = 0; i < n; i++) this.fromL2.add(keys[i] as KvKey);
  }
}
