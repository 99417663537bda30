/**
 * The DES tier models of the offloading study (bench/kvcache/offload/): byte budgets and eviction
 * through the repository's policies, DRAM → remote spills over a modelled NIC, lookups and fetches,
 * and their effect through the engine (the `fetch` hook: remote blocks cost network time, DRAM
 * blocks the calibrated host→GPU copy). Also the workload's shape and a small study point.
 */
import { describe, expect, it } from "vitest";
import { VirtualClock } from "../../../dataplane/engines/sim/clock";
import { EngineCore } from "../../../dataplane/engines/sim/engine-core";
import { blockHashes } from "../../../dataplane/engines/sim/kv-cache";
import { LOADING } from "../../../dataplane/engines/sim/scheduler";
import { OFFLOAD_CONFIGS, runOffloadPoint } from "../../../bench/kvcache/offload/study";
import { DramTierModel, type LinkProfile, RemoteTierModel, TierStack } from "../../../bench/kvcache/offload/tiers";
import { offloadWorkload, offloadWorkloadShape } from "../../../bench/kvcache/offload/workload";

const BLOCK = 2 * 2 ** 20; // 16 tokens × 128 KiB
const link: LinkProfile = { name: "test", bytesPerSec: 10e9, rttMs: 0.05, source: "test" };
const blockMs = (BLOCK / link.bytesPerSec) * 1e3;
const block = (hash: number) => ({ hash, parentHash: null, tokenIds: new Int32Array(16) });

function tokens(n: number, seed: number): Int32Array {
  const out = new Int32Array(n);
  let s = seed * 2654435761;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) | 0;
    out[i] = (s >>> 8) % 128000;
  }
  return out;
}
const concat = (a: Int32Array, b: Int32Array) => {
  const out = new Int32Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
};

describe("tier block stores", () => {
  it("hold at most their byte budget and evict through the policy (remote: LRU)", () => {
    const remote = new RemoteTierModel({ capacityBytes: 3 * BLOCK, blockBytes: BLOCK });
    expect(remote.policyName).toBe("lru");
    for (const h of [1, 2, 3]) remote.insert(h, 0);
    remote.access(1); // 2 is now the least recently used
    const evicted: number[] = [];
    remote.insert(4, 0, evicted);
    expect(evicted).toEqual([2]);
    expect(remote.blocks).toBe(3);
    expect(remote.bytesUsed).toBe(3 * BLOCK);
    expect([1, 3, 4].every((h) => remote.has(h))).toBe(true);
    expect(remote.counters).toMatchObject({ insertedBlocks: 4, evictedBlocks: 1, hitBlocks: 1 });
  });

  it("DRAM defaults to the L1's S3-FIFO: a block read once survives a scan of one-hit blocks", () => {
    const dram = new DramTierModel({ capacityBytes: 10 * BLOCK, blockBytes: BLOCK });
    expect(dram.policyName).toBe("s3fifo");
    dram.insert(100, 0);
    dram.access(100);
    const evicted: number[] = [];
    for (let h = 1; h <= 40; h++) dram.insert(h, 0, evicted);
    expect(dram.has(100)).toBe(true);
    expect(evicted).toHaveLength(31);
    expect(dram.blocks).toBe(10);
  });

  it("a block being written is held but not readable until its write completes", () => {
    const remote = new RemoteTierModel({ capacityBytes: 4 * BLOCK, blockBytes: BLOCK });
    remote.insert(7, 5);
    expect(remote.holds(7)).toBe(true);
    expect(remote.has(7, 4.9)).toBe(false);
    expect(remote.has(7, 5)).toBe(true);
  });

  it("rejects a budget smaller than one block", () => {
    expect(() => new DramTierModel({ capacityBytes: BLOCK - 1, blockBytes: BLOCK })).toThrow(RangeError);
  });
});

describe("TierStack (the engine's KvLowerTier)", () => {
  it("spills DRAM evictions to the remote tier over the NIC and serves a prefix from both", () => {
    let now = 0;
    const dram = new DramTierModel({ capacityBytes: 2 * BLOCK, blockBytes: BLOCK, policy: "lru" });
    const remote = new RemoteTierModel({ capacityBytes: 100 * BLOCK, blockBytes: BLOCK });
    const stack = new TierStack({ now: () => now, dram, remote, link });
    // GPU evicts a chain tail first: 3, 2, 1. DRAM keeps the last two offered (2, 1); 3 goes to remote.
    for (const h of [3, 2, 1]) stack.offer(block(h));
    expect(dram.has(1) && dram.has(2) && !dram.has(3)).toBe(true);
    expect(remote.holds(3)).toBe(true);
    const hashes = [1, 2, 3, 4];
    expect(stack.lookup(hashes, 0, 4)).toBe(2); // block 3 is still on the wire
    now = blockMs;
    expect(stack.lookup(hashes, 0, 4)).toBe(3);
    expect(stack.lookup(hashes, 1, 4)).toBe(2);
    const f = stack.fetch(hashes, 0, 3, 10);
    expect(f.h2dBlocks).toBe(2);
    expect(f.readyMs).toBeCloseTo(10 + 2 * link.rttMs + blockMs, 9);
    expect(stack.counters).toMatchObject({ dramHitBlocks: 2, remoteHitBlocks: 1, spilledBlocks: 1 });
    // Offering a block DRAM already holds changes nothing.
    stack.offer(block(1));
    expect(dram.counters.insertedBlocks).toBe(3);
  });

  it("queues remote fetches on the engine's NIC, first come first served", () => {
    const remote = new RemoteTierModel({ capacityBytes: 100 * BLOCK, blockBytes: BLOCK });
    const stack = new TierStack({ now: () => 1000, remote, link });
    for (let h = 1; h <= 20; h++) remote.insert(h, 0);
    const a = stack.fetch([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0, 10, 0);
    const b = stack.fetch([11, 12], 0, 2, 0);
    expect(a.h2dBlocks).toBe(0);
    expect(a.readyMs).toBeCloseTo(link.rttMs + 10 * blockMs + link.rttMs, 9);
    expect(b.readyMs).toBeCloseTo(link.rttMs + 12 * blockMs + link.rttMs, 9);
  });

  it("drops spills beyond the in-flight bound, and does not resend what the remote tier holds", () => {
    const remote = new RemoteTierModel({ capacityBytes: 100 * BLOCK, blockBytes: BLOCK });
    const stack = new TierStack({ now: () => 0, remote, link, maxInflightBytes: 3 * BLOCK });
    for (let h = 1; h <= 10; h++) stack.offer(block(h)); // no DRAM: GPU evictions go straight to remote
    expect(stack.counters.spilledBlocks).toBe(4); // queued 0, 1, 2, 3 blocks ahead; the 5th would wait for 4
    expect(stack.counters.droppedSpills).toBe(6);
    stack.offer(block(1));
    expect(stack.counters.spilledBlocks).toBe(4);
  });

  it("through the engine: a remote hit costs network time, a DRAM hit the host→GPU copy", () => {
    const clock = new VirtualClock();
    const dram = new DramTierModel({ capacityBytes: 64 * BLOCK, blockBytes: BLOCK, policy: "lru" });
    const remote = new RemoteTierModel({ capacityBytes: 10_000 * BLOCK, blockBytes: BLOCK });
    const stack = new TierStack({ now: () => clock.now(), dram, remote, link });
    const core = new EngineCore({ clock, kvCapacityTokens: 4096, maxModelLen: 4096, lowerTier: stack });
    const prefix = tokens(2048, 1);
    core.submit({ promptTokens: concat(prefix, tokens(32, 2)), maxTokens: 1 });
    clock.run();
    // Two 4000-token prompts push the first out of GPU memory, through DRAM (64 blocks) into remote.
    for (const seed of [3, 4]) {
      core.submit({ promptTokens: tokens(4000, seed), maxTokens: 1 });
      clock.run();
    }
    const hashes = blockHashes(prefix, 16);
    expect(core.cachedPrefixTokens(concat(prefix, tokens(32, 5)))).toBe(0);
    expect([...hashes].every((h) => !dram.has(h) && remote.has(h, clock.now()))).toBe(true);
    const r = core.submit({ promptTokens: concat(prefix, tokens(32, 5)), maxTokens: 1 });
    expect(r.state).toBe(LOADING);
    clock.run();
    expect(r.tierTokens).toBe(2048);
    const network = 2 * link.rttMs + 128 * blockMs;
    const ttft = r.firstTokenMs - r.arrivalMs;
    const prefill = core.cost.prefillMs(32, 2048);
    expect(ttft).toBeGreaterThan(network + prefill * 0.9);
    expect(ttft).toBeLessThan(network + prefill * 1.1 + core.cost.h2dMs(BLOCK)); // no host→GPU copy of the prefix
    expect(stack.counters.remoteHitBlocks).toBe(128);
    expect(core.metrics.externalPrefixCacheHits).toBe(2048);
  });
});

describe("slow tier loads under load", () => {
  it("never leave the engine stuck with memory held by loaded requests (every request completes)", () => {
    // The study's full-scale point over 25 GbE TCP: remote loads of 6k-token prefixes take long
    // enough for dozens to run at once, each holding its prefix's blocks. While loads reserved only
    // those, memory filled with loaded requests none of which could compute its suffix, and 158 of
    // these 674 requests never finished.
    const opts = { kvCapacityTokens: 419_152, qps: 12, durationMs: 60_000, seed: 2 };
    const expected = [...offloadWorkload(opts)].filter((r) => r.phase === "measure").length;
    const r = runOffloadPoint({ ...opts, config: { name: "tcp", title: "tcp", prefixCaching: true, dramGiB: 160, remoteGiB: 1024, link: "tcp-25g" } });
    expect(r.hitRate.remote).toBeGreaterThan(0.2);
    expect(r.requests).toBe(expected);
  });
});

describe("offload workload", () => {
  it("has prefixes totalling 8× the KV capacity, each served once in the warm-up, then uniform reuse", () => {
    const opts = { kvCapacityTokens: 60_000, prefixTokens: 1000, qps: 20, durationMs: 20_000, seed: 3 };
    const shape = offloadWorkloadShape(opts);
    expect(shape.groups).toBe(480);
    expect(shape.footprintFactor).toBe(8);
    const reqs = [...offloadWorkload(opts)];
    const warm = reqs.filter((r) => r.phase === "warmup");
    const measured = reqs.filter((r) => r.phase === "measure");
    expect(new Set(warm.map((r) => r.group)).size).toBe(480);
    expect(warm).toHaveLength(480);
    expect(measured.length).toBeGreaterThan(300);
    expect(measured.length).toBeLessThan(500);
    expect(measured[0]!.arrivalMs).toBeGreaterThanOrEqual(shape.measureStartMs);
    for (let i = 1; i < reqs.length; i++) expect(reqs[i]!.arrivalMs).toBeGreaterThanOrEqual(reqs[i - 1]!.arrivalMs);
    // Same group, same prefix hashes; a suffix of its own; hashes match the tokens.
    const [a, b] = measured.filter((r) => r.group === measured[0]!.group).concat(warm.filter((r) => r.group === measured[0]!.group));
    expect(a!.blockHashes.subarray(0, 62)).toEqual(b!.blockHashes.subarray(0, 62));
    expect(a!.blockHashes).toEqual(blockHashes(a!.promptTokens, 16));
    expect([...offloadWorkload(opts)].map((r) => r.arrivalMs)).toEqual(reqs.map((r) => r.arrivalMs));
  });
});

describe("a study point at small scale", () => {
  it("each tier adds hits and cuts TTFT under load", () => {
    const common = { kvCapacityTokens: 32_768, prefixTokens: 2048, qps: 14, durationMs: 30_000, warmupQps: 4, gapMs: 10_000, seed: 1 };
    const [none, gpu, dram, remote] = OFFLOAD_CONFIGS.map((config) =>
      runOffloadPoint({ ...common, config: { ...config, dramGiB: config.dramGiB ? 8 : undefined, remoteGiB: config.remoteGiB ? 64 : undefined } }),
    );
    expect(none!.hitRate.total).toBe(0);
    expect(gpu!.hitRate.gpu).toBeGreaterThan(0.05);
    expect(gpu!.hitRate.dram).toBe(0);
    expect(dram!.hitRate.dram).toBeGreaterThan(0.1); // DRAM is 2× the GPU KV: ≤ 25 % of an 8× working set
    expect(remote!.hitRate.remote).toBeGreaterThan(0.2);
    expect(remote!.hitRate.total).toBeGreaterThan(dram!.hitRate.total);
    expect(dram!.ttftMs.mean!).toBeLessThan(gpu!.ttftMs.mean!);
    expect(remote!.ttftMs.mean!).toBeLessThan(dram!.ttftMs.mean!);
    expect(none!.requests).toBe(gpu!.requests);
    console.log([none, gpu, dram, remote].map((r) => `${r!.config}: mean ${r!.ttftMs.mean!.toFixed(0)} ms, hits ${(r!.hitRate.total * 100).toFixed(1)} %`).join("; "));
  });
});
