/**
 * Lower KV tiers for the emulator's discrete-event studies (the engine's `KvLowerTier` hook):
 * a host-DRAM tier per engine and a remote tier shared by the engines of a region, each a byte
 * budget enforced by one of the repository's eviction policies (dataplane/kvcache/eviction), so the
 * study sees the eviction behaviour the agent's L1 and the cache servers have.
 *
 * How a block moves (one block = `blockSize` tokens, 2 MiB for Llama-3-8B):
 * - GPU eviction → offered to the DRAM tier (or straight to the remote tier when there is no DRAM
 *   tier). DRAM evictions spill to the remote tier (the agent's EVICTED ingestion,
 *   docs/kv-cache.md "Wiring it into the agent").
 * - Offloads GPU→DRAM cost nothing here (the engine does not model device→host copies: they run on
 *   their own DMA stream, the other direction of the PCIe link). A spill DRAM→remote occupies the
 *   engine's NIC transmit side for bytes / bandwidth; the block becomes visible in the remote tier
 *   only once sent, and a spill is dropped when more than `maxInflightBytes` are already queued on
 *   the link (L2 is best effort; AIBrix's MAX_INFLIGHT_TOKENS does the same).
 * - Lookup walks the prefix block by block: in DRAM, else in the remote tier (sent already), else
 *   stop. Probes do not count as accesses (the scheduler repeats them while a request waits).
 * - Fetch (the engine is loading): DRAM blocks go over the engine's host→GPU link at the calibrated
 *   cost (the engine queues them there); remote blocks come over the NIC's receive side, FIFO per
 *   engine, for `2 × rtt + bytes / bandwidth` (one PREFIX round trip and the GETs, as the L2 client
 *   does it), delivered to GPU memory directly (GPUDirect RDMA, as InfiniStore/AIBrix do). A
 *   host-staged TCP path would add the last chunk's host→GPU copy (≈ 0.6 ms per 256 tokens) after
 *   the network transfer, which this model leaves out. Fetches are the accesses the policies see.
 * - A block loaded back into GPU memory keeps its copies below (tiers are not exclusive); when the
 *   GPU evicts it again, a tier that still holds it does nothing.
 *
 * Granularity: the engine's 16-token blocks, not the agent's 256-token chunks (keys.ts). The
 * policies then order blocks rather than chunks; a request's blocks still arrive tail first (the GPU
 * frees them in reverse), so chains are evicted from their tails as the L1 docs advise.
 */
import { BlockTable, type KvLowerTier, type KvTierBlock } from "../../../dataplane/engines/sim/kv-cache";
import { createEvictionPolicy, type EvictionPolicyConfig, type EvictionPolicyName } from "../../../dataplane/kvcache/eviction/index";
import { L1_S3FIFO_DEFAULTS } from "../../../dataplane/kvcache/l1/dram-tier";
import type { EvictionPolicy } from "../../../dataplane/kvcache/tier";

export const GiB = 2 ** 30;

/** A network path from an engine's host to the remote tier. */
export interface LinkProfile {
  name: string;
  /** Achievable payload bandwidth, bytes per second, each direction. */
  bytesPerSec: number;
  /** One request/response round trip including the server's handling, ms. */
  rttMs: number;
  /** Where the figures come from. */
  source: string;
}

/**
 * Link figures. Line rate minus protocol overhead, as reference/kvcache.md §7 derives them: a
 * 200 Gb/s NIC delivers ~23–24 GB/s of large-message RDMA (≈ 94 % of 25 GB/s), 25 GbE TCP ~2.8 GB/s.
 */
export const LINKS = {
  "rdma-100g": {
    name: "100 Gb/s RDMA",
    bytesPerSec: 11.7e9,
    rttMs: 0.02,
    source: "12.5 GB/s line rate × 0.94 (the achieved fraction of 200 Gb/s NICs in reference/kvcache.md §7); 20 µs round trip (RDMA verbs within a rack plus the server's lookup)",
  },
  "rdma-400g": {
    name: "400 Gb/s RDMA",
    bytesPerSec: 47e9,
    rttMs: 0.02,
    source: "reference/kvcache.md §7: ConnectX-7 ~46–49 GB/s achievable; Mooncake measured ≈ 24 GB/s per 400 G NIC end to end",
  },
  "tcp-25g": {
    name: "25 GbE TCP",
    bytesPerSec: 2.8e9,
    rttMs: 0.2,
    source: "reference/kvcache.md §7: 25 GbE TCP ~2.8 GB/s; 200 µs round trip (kernel TCP in one data centre plus the cache server's handling)",
  },
} as const satisfies Record<string, LinkProfile>;
export type LinkName = keyof typeof LINKS;

export interface TierPolicyOptions {
  /** Byte budget. */
  capacityBytes: number;
  /** Default: s3fifo with the agent L1's defaults (small FIFO 30 %, threshold 1) for DRAM; lru (the cache server's default) for remote. */
  policy?: EvictionPolicyName;
}

/** Counters of one tier, in blocks. */
export interface TierCounters {
  /** Blocks loaded from this tier into GPU memory. */
  hitBlocks: number;
  /** Blocks stored (offers or spills accepted). */
  insertedBlocks: number;
  evictedBlocks: number;
  /** Spills dropped because the link was busy (remote only). */
  droppedBlocks: number;
}

function makePolicy(name: EvictionPolicyName, capacityBytes: number): EvictionPolicy {
  const config: EvictionPolicyConfig = name === "s3fifo" ? { name, capacityBytes, ...L1_S3FIFO_DEFAULTS } : { name, capacityBytes };
  return createEvictionPolicy(config);
}

/**
 * Policy key of a block hash. Policies key by string; decimal round-trips exactly (hashes are
 * integers below 2^53), so a victim's key turns back into its hash with Number().
 */
const key = (hash: number) => String(hash);

/**
 * A byte-budgeted set of blocks behind an eviction policy: the bookkeeping both tiers share. Stores
 * no KV, only which hashes it holds and, for the remote tier, from when each is readable. Slots in
 * typed arrays and the emulator's open-addressing hash table: a Map of 52-bit number keys was the
 * study's hot spot.
 */
export class BlockStore {
  readonly capacityBytes: number;
  readonly blockBytes: number;
  readonly policyName: EvictionPolicyName;
  readonly counters: TierCounters = { hitBlocks: 0, insertedBlocks: 0, evictedBlocks: 0, droppedBlocks: 0 };
  private readonly policy: EvictionPolicy;
  private readonly maxBlocks: number;
  private readonly table: BlockTable;
  private readonly readableAt: Float64Array;
  private readonly keys: string[];
  private readonly freeSlots: Int32Array;
  private freeCount: number;
  private count = 0;

  constructor(opts: TierPolicyOptions & { blockBytes: number; defaultPolicy: EvictionPolicyName }) {
    if (!(opts.capacityBytes >= opts.blockBytes)) throw new RangeError(`tier capacity ${opts.capacityBytes} B holds no block of ${opts.blockBytes} B`);
    this.capacityBytes = opts.capacityBytes;
    this.blockBytes = opts.blockBytes;
    this.policyName = opts.policy ?? opts.defaultPolicy;
    this.policy = makePolicy(this.policyName, opts.capacityBytes);
    this.maxBlocks = Math.floor(opts.capacityBytes / opts.blockBytes);
    this.table = new BlockTable(this.maxBlocks);
    this.readableAt = new Float64Array(this.maxBlocks);
    this.keys = new Array<string>(this.maxBlocks).fill("");
    this.freeSlots = Int32Array.from({ length: this.maxBlocks }, (_, i) => this.maxBlocks - 1 - i);
    this.freeCount = this.maxBlocks;
  }

  get blocks(): number {
    return this.count;
  }

  get bytesUsed(): number {
    return this.count * this.blockBytes;
  }

  /** Held and readable at `nowMs`. */
  has(hash: number, nowMs = Number.POSITIVE_INFINITY): boolean {
    const slot = this.table.get(hash);
    return slot >= 0 && (this.readableAt[slot] as number) <= nowMs;
  }

  /** Held at all (readable or still being written). */
  holds(hash: number): boolean {
    return this.table.get(hash) >= 0;
  }

  /** A read of a held block: the policy sees an access. */
  access(hash: number): void {
    const slot = this.table.get(hash);
    if (slot < 0) return;
    this.counters.hitBlocks++;
    this.policy.onAccess(this.keys[slot] as string);
  }

  /** Stores a block (readable from `readableAtMs`), evicting through the policy; evicted hashes go to `evicted`. */
  insert(hash: number, readableAtMs: number, evicted?: number[]): void {
    if (this.table.get(hash) >= 0) return;
    while (this.count >= this.maxBlocks) {
      const victim = this.policy.victim();
      if (victim === undefined) return; // cannot happen while count > 0: every held block is in the policy
      const h = Number(victim);
      const slot = this.table.get(h);
      if (slot < 0) continue;
      this.table.delete(h);
      this.freeSlots[this.freeCount++] = slot;
      this.count--;
      this.counters.evictedBlocks++;
      evicted?.push(h);
    }
    const slot = this.freeSlots[--this.freeCount] as number;
    const k = key(hash);
    this.table.set(hash, slot);
    this.readableAt[slot] = readableAtMs;
    this.keys[slot] = k;
    this.count++;
    this.counters.insertedBlocks++;
    this.policy.onInsert(k, this.blockBytes);
  }
}

/** The region's remote tier (L2 cache servers): one budget shared by every engine's stack. */
export class RemoteTierModel extends BlockStore {
  constructor(opts: TierPolicyOptions & { blockBytes: number }) {
    super({ ...opts, defaultPolicy: "lru" });
  }
}

/** One engine's host DRAM tier (L1 / vLLM's CPU offloading buffer). */
export class DramTierModel extends BlockStore {
  constructor(opts: TierPolicyOptions & { blockBytes: number }) {
    super({ ...opts, defaultPolicy: "s3fifo" });
  }
}

export interface TierStackOptions {
  /** Model time (the study's VirtualClock). */
  now: () => number;
  dram?: DramTierModel;
  remote?: RemoteTierModel;
  /** The engine's NIC toward the remote tier (required with `remote`). */
  link?: LinkProfile;
  /**
   * Spill bytes allowed queued on the NIC before further spills are dropped. Default 4 GiB: one
   * request's eviction burst is ≈ 0.8 GiB (a 6k-token prompt), and queued spills are DRAM the
   * evicted values keep (docs/kv-cache.md: L1 never recycles an evicted Buffer while its put runs).
   */
  maxInflightBytes?: number;
  /** The engine's host→GPU copy time of `bytes` (CostModel.h2dMs), to report how busy that link is; accounting only. */
  h2dCostMs?: (bytes: number) => number;
}

/** What one engine's stack did, in blocks. */
export interface StackCounters {
  dramHitBlocks: number;
  remoteHitBlocks: number;
  /** Spills sent to the remote tier / dropped at the in-flight bound. */
  spilledBlocks: number;
  droppedSpills: number;
  /** Model time the NIC spent receiving / sending. */
  rxBusyMs: number;
  txBusyMs: number;
  /** Host→GPU copy time of the DRAM blocks fetched (with `h2dCostMs`). */
  h2dBusyMs: number;
}

/**
 * The tiers below one engine's GPU memory, as the engine's `KvLowerTier`: its own DRAM tier (if
 * any), then the shared remote tier (if any) over the engine's NIC.
 */
export class TierStack implements KvLowerTier {
  readonly counters: StackCounters = { dramHitBlocks: 0, remoteHitBlocks: 0, spilledBlocks: 0, droppedSpills: 0, rxBusyMs: 0, txBusyMs: 0, h2dBusyMs: 0 };
  private readonly now: () => number;
  private readonly dram: DramTierModel | undefined;
  private readonly remote: RemoteTierModel | undefined;
  private readonly link: LinkProfile | undefined;
  private readonly maxInflightBytes: number;
  private readonly h2dCostMs: ((bytes: number) => number) | undefined;
  private rxFreeAt = 0;
  private txFreeAt = 0;
  private readonly evicted: number[] = [];

  constructor(opts: TierStackOptions) {
    if (opts.remote && !opts.link) throw new RangeError("a remote tier needs a link profile");
    this.now = opts.now;
    this.dram = opts.dram;
    this.remote = opts.remote;
    this.link = opts.link;
    this.maxInflightBytes = opts.maxInflightBytes ?? 4 * GiB;
    this.h2dCostMs = opts.h2dCostMs;
  }

  offer(block: KvTierBlock): void {
    const now = this.now();
    if (this.dram) {
      if (this.dram.holds(block.hash)) return;
      const evicted = this.evicted;
      evicted.length = 0;
      this.dram.insert(block.hash, now, evicted);
      for (const h of evicted) this.spill(h, now);
      return;
    }
    this.spill(block.hash, now);
  }

  /** Sends a block to the remote tier on the NIC's transmit side, unless it is there or the link is backed up. */
  private spill(hash: number, now: number): void {
    const remote = this.remote;
    const link = this.link;
    if (!remote || !link || remote.holds(hash)) return;
    const start = Math.max(now, this.txFreeAt);
    // Compared in time, with a hair of slack, so that exactly `maxInflightBytes` queued still passes.
    if (start - now > (this.maxInflightBytes / link.bytesPerSec) * 1e3 * (1 + 1e-9)) {
      this.counters.droppedSpills++;
      remote.counters.droppedBlocks++;
      return;
    }
    const ms = (remote.blockBytes / link.bytesPerSec) * 1e3;
    this.txFreeAt = start + ms;
    this.counters.txBusyMs += ms;
    this.counters.spilledBlocks++;
    remote.insert(hash, this.txFreeAt);
  }

  lookup(hashes: ArrayLike<number>, from: number, to: number): number {
    const now = this.now();
    let n = from;
    while (n < to) {
      const h = hashes[n] as number;
      if (!(this.dram?.has(h) || this.remote?.has(h, now))) break;
      n++;
    }
    return n - from;
  }

  fetch(hashes: ArrayLike<number>, from: number, count: number, atMs: number): { h2dBlocks: number; readyMs: number } {
    let h2dBlocks = 0;
    let remoteBlocks = 0;
    for (let i = from; i < from + count; i++) {
      const h = hashes[i] as number;
      if (this.dram?.has(h)) {
        this.dram.access(h);
        h2dBlocks++;
      } else if (this.remote) {
        this.remote.access(h);
        remoteBlocks++;
      }
    }
    this.counters.dramHitBlocks += h2dBlocks;
    if (h2dBlocks > 0 && this.dram && this.h2dCostMs) this.counters.h2dBusyMs += this.h2dCostMs(h2dBlocks * this.dram.blockBytes);
    this.counters.remoteHitBlocks += remoteBlocks;
    let readyMs = atMs;
    if (remoteBlocks > 0 && this.remote && this.link) {
      const ms = ((remoteBlocks * this.remote.blockBytes) / this.link.bytesPerSec) * 1e3;
      const start = Math.max(atMs + this.link.rttMs, this.rxFreeAt);
      this.rxFreeAt = start + ms;
      this.counters.rxBusyMs += ms;
      readyMs = this.rxFreeAt + this.link.rttMs;
    }
    return { h2dBlocks, readyMs };
  }
}
