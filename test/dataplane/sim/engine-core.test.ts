/**
 * The engine core in virtual time: calibration reproduced through the whole engine, prefix hits,
 * continuous batching, chunked prefill, memory pressure (eviction, queueing, preemption), KV event
 * content, answer lengths (EOS, min_tokens, ignore_eos), abort, and the lower-tier hooks.
 */
import { describe, expect, it } from "vitest";
import { h100Llama3Calibration } from "../../../dataplane/engines/sim/calibration";
import { VirtualClock } from "../../../dataplane/engines/sim/clock";
import { EngineCore, type EngineCoreOptions, type StepInfo } from "../../../dataplane/engines/sim/engine-core";
import { blockHashes, type KvEvent, type KvLowerTier, type KvTierBlock } from "../../../dataplane/engines/sim/kv-cache";
import { LOADING, type SimRequest } from "../../../dataplane/engines/sim/scheduler";
import { EOT_TOKEN } from "../../../dataplane/engines/sim/tokenizer";

const calibration = h100Llama3Calibration();

function setup(opts: Partial<EngineCoreOptions> = {}) {
  const clock = new VirtualClock();
  const core = new EngineCore({ clock, kvCapacityTokens: 400_000, maxModelLen: 32_768, ...opts });
  return { clock, core };
}

/** Deterministic pseudo-random token ids; `seed` separates prompts. */
function tokens(n: number, seed: number): Int32Array {
  const out = new Int32Array(n);
  let s = seed * 2654435761;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) | 0;
    out[i] = (s >>> 8) % 128000;
  }
  return out;
}

const concat = (...parts: Int32Array[]) => {
  const out = new Int32Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};

const ttft = (r: SimRequest) => r.firstTokenMs - r.arrivalMs;
const within = (actual: number, expected: number, tolerance = 0.1) => Math.abs(actual / expected - 1) <= tolerance;

describe("calibration through the engine (virtual time)", () => {
  it("a lone request's TTFT is the prefill time of its prompt (128..8192 tokens)", () => {
    for (const p of calibration.prefill) {
      const { clock, core } = setup();
      const r = core.submit({ promptTokens: tokens(p.tokens, p.tokens), maxTokens: 1 });
      clock.run();
      expect(within(ttft(r), p.ms), `${p.tokens} tokens: TTFT ${ttft(r).toFixed(2)} ms vs ${p.ms.toFixed(2)} ms`).toBe(true);
    }
  });

  it("a lone request decodes one token per decode step at batch 1", () => {
    const { clock, core } = setup();
    const r = core.submit({ promptTokens: tokens(512, 1), maxTokens: 65, ignoreEos: true });
    clock.run();
    const itl = (r.finishedMs - r.firstTokenMs) / (r.output - 1);
    const measured = calibration.decode_step.find((d) => d.batch === 1 && d.ctx === 512)!.step_ms;
    expect(within(itl, measured)).toBe(true);
    expect(r.output).toBe(65);
    expect(r.finishReason).toBe("length");
  });

  it("a shared 4k prefix turns a ≈131 ms prefill into ≈27 ms", () => {
    const { clock, core } = setup();
    const prefix = tokens(4096, 7);
    const cold = core.submit({ promptTokens: concat(prefix, tokens(128, 8)), maxTokens: 1 });
    clock.run();
    const warm = core.submit({ promptTokens: concat(prefix, tokens(128, 9)), maxTokens: 1 });
    clock.run();
    console.log(`cold TTFT ${ttft(cold).toFixed(1)} ms, prefix-hit TTFT ${ttft(warm).toFixed(1)} ms`);
    expect(cold.cachedTokens).toBe(0);
    expect(warm.cachedTokens).toBe(4096);
    expect(within(ttft(cold), 131, 0.1)).toBe(true);
    expect(within(ttft(warm), 27.18, 0.1)).toBe(true);
    expect(core.metrics.prefixCacheHits).toBe(4096);
    expect(core.metrics.prefixCacheQueries).toBe(2 * (4096 + 128));
  });
});

describe("continuous batching", () => {
  function runBatch(batch: number) {
    const { clock, core } = setup();
    const steps: StepInfo[] = [];
    core.onStep((s) => steps.push(s));
    const reqs = Array.from({ length: batch }, (_, i) => core.submit({ promptTokens: tokens(2048, 100 + i), maxTokens: 128, ignoreEos: true }));
    const end = clock.run();
    const decodeSteps = steps.filter((s) => s.prefillSeqs === 0);
    const stepMs = decodeSteps.reduce((a, s) => a + s.durationMs, 0) / decodeSteps.length;
    return { reqs, end, stepMs, decodeTokensPerSec: (batch * 1000) / stepMs };
  }

  it("decode steps get longer with the batch, throughput grows far more", () => {
    const one = runBatch(1);
    const many = runBatch(64);
    console.log(`B=1: ${one.stepMs.toFixed(2)} ms/step ${one.decodeTokensPerSec.toFixed(0)} tok/s; B=64: ${many.stepMs.toFixed(2)} ms/step ${many.decodeTokensPerSec.toFixed(0)} tok/s`);
    expect(many.stepMs).toBeGreaterThan(one.stepMs * 1.5);
    expect(within(many.stepMs, calibration.decode_step.find((d) => d.batch === 64 && d.ctx === 2048)!.step_ms, 0.1)).toBe(true);
    expect(many.decodeTokensPerSec).toBeGreaterThan(20 * one.decodeTokensPerSec);
    // 64 requests together finish far sooner than 64 one after another.
    expect(many.end).toBeLessThan((64 * one.end) / 4);
    expect(many.reqs.every((r) => r.output === 128)).toBe(true);
  });

  it("admits arrivals between steps and respects maxNumSeqs", () => {
    const { clock, core } = setup({ maxNumSeqs: 4 });
    const steps: StepInfo[] = [];
    core.onStep((s) => steps.push(s));
    for (let i = 0; i < 10; i++) core.submit({ promptTokens: tokens(64, i), maxTokens: 20, ignoreEos: true });
    clock.run();
    expect(Math.max(...steps.map((s) => s.running))).toBe(4);
    expect(Math.max(...steps.map((s) => s.waiting))).toBe(6);
    expect(core.metrics.success.length).toBe(10);
  });
});

describe("chunked prefill", () => {
  it("never schedules more than maxNumBatchedTokens and keeps decoding during a long prefill", () => {
    const { clock, core } = setup({ maxNumBatchedTokens: 2048 });
    const steps: StepInfo[] = [];
    core.onStep((s) => steps.push(s));
    const decoder = core.submit({ promptTokens: tokens(256, 1), maxTokens: 200, ignoreEos: true });
    clock.runUntil(100);
    const long = core.submit({ promptTokens: tokens(8000, 2), maxTokens: 1 });
    clock.run();
    for (const s of steps) expect(s.tokens).toBeLessThanOrEqual(2048);
    const prefillSteps = steps.filter((s) => s.prefillSeqs > 0 && s.startMs >= 100);
    // The decoder takes one token of each step's budget, the prompt the other 2047.
    expect(prefillSteps.length).toBe(Math.ceil(8000 / 2047));
    expect(prefillSteps.every((s) => s.decodeSeqs === 1)).toBe(true);
    // The decoder's worst inter-token gap is one chunk, not the whole 8000-token prefill.
    expect(Math.max(...prefillSteps.map((s) => s.durationMs))).toBeLessThan(core.cost.prefillMs(8000) / 2);
    expect(decoder.output).toBe(200);
    expect(long.output).toBe(1);
  });
});

describe("memory pressure", () => {
  it("evicts cached blocks, queues requests and preempts running ones when KV runs out", () => {
    const { clock, core } = setup({ kvCapacityTokens: 16_384, maxModelLen: 4096 });
    const events: KvEvent[] = [];
    core.onKvEvents((b) => events.push(...b.events));
    let maxWaiting = 0;
    core.onStep((s) => {
      maxWaiting = Math.max(maxWaiting, s.waiting);
    });
    const reqs = Array.from({ length: 32 }, (_, i) => core.submit({ promptTokens: tokens(1024, 500 + i), maxTokens: 512, ignoreEos: true }));
    clock.run();
    const removed = events.filter((e) => e.type === "BlockRemoved");
    console.log(`waiting max ${maxWaiting}, preemptions ${core.metrics.preemptions}, BlockRemoved events ${removed.length}, evictions ${core.kv.evictions}`);
    expect(maxWaiting).toBeGreaterThan(0);
    expect(core.metrics.preemptions).toBeGreaterThan(0);
    expect(removed.length).toBeGreaterThan(0);
    expect(core.kv.evictions).toBeGreaterThan(0);
    expect(core.load().kvEvictedTokens).toBe(core.kv.evictions * 16);
    // Everything still completes, with the right lengths, and all memory comes back.
    expect(reqs.every((r) => r.finishReason === "length" && r.output === 512)).toBe(true);
    expect(reqs.some((r) => r.preemptions > 0)).toBe(true);
    expect(core.kv.freeBlocks).toBe(core.kv.numBlocks);
    expect(core.kv.usage()).toBe(0);
  });
});

describe("KV events (vLLM semantics)", () => {
  it("chains BlockStored events by parent hash, block_size × n token ids, shared blocks stored once", () => {
    const { clock, core } = setup();
    const batches: Array<{ ts: number; events: KvEvent[] }> = [];
    core.onKvEvents((b) => batches.push(b));
    const prompt = tokens(100, 3); // 6 full blocks + 4 tokens
    const r = core.submit({ promptTokens: prompt, maxTokens: 40, ignoreEos: true });
    clock.run();
    const stored = batches.flatMap((b) => b.events).filter((e) => e.type === "BlockStored");
    expect(stored.length).toBeGreaterThan(1);
    const first = stored[0]!;
    expect(first.parent_block_hash).toBeNull();
    expect(first.block_hashes).toEqual(Array.from(blockHashes(prompt, 16)));
    expect(first.token_ids).toEqual(Array.from(prompt.subarray(0, 96)));
    expect(first).toMatchObject({ block_size: 16, lora_id: null, medium: "GPU" });
    let previous = first.block_hashes.at(-1);
    for (const e of stored.slice(1)) {
      expect(e.parent_block_hash).toBe(previous);
      expect(e.token_ids.length).toBe(e.block_size * e.block_hashes.length);
      previous = e.block_hashes.at(-1);
    }
    // Generated tokens fill blocks too: 140 tokens computed → 8 full blocks (the last token's KV is never computed).
    expect(stored.reduce((a, e) => a + e.block_hashes.length, 0)).toBe(Math.floor((100 + 40 - 1) / 16));
    expect(Array.from(r.tokens.subarray(96, 112))).toEqual(stored[1]!.token_ids.slice(0, 16));
    // A second identical prompt hits the cached blocks: nothing new stored for them.
    const before = stored.length;
    batches.length = 0;
    const again = core.submit({ promptTokens: prompt, maxTokens: 1 });
    clock.run();
    expect(again.cachedTokens).toBe(96);
    expect(batches.flatMap((b) => b.events).filter((e) => e.type === "BlockStored")).toHaveLength(0);
    expect(before).toBeGreaterThan(0);
    // Reset drops everything and starts a new cache epoch.
    const epoch = core.load().kvEpoch;
    expect(core.resetPrefixCache()).toBe(true);
    expect(core.load().kvEpoch).not.toBe(epoch);
    expect(batches.flatMap((b) => b.events).some((e) => e.type === "AllBlocksCleared")).toBe(true);
    expect(core.cachedPrefixTokens(prompt)).toBe(0);
    expect(batches.every((b) => typeof b.ts === "number")).toBe(true);
  });

  it("evicts a finished chain tail first (blocks freed in reverse)", () => {
    const { clock, core } = setup({ kvCapacityTokens: 64 * 16, maxModelLen: 1024 });
    const removed: number[] = [];
    core.onKvEvents((b) => {
      for (const e of b.events) if (e.type === "BlockRemoved") removed.push(...e.block_hashes);
    });
    const a = tokens(40 * 16, 11);
    core.submit({ promptTokens: a, maxTokens: 1 });
    clock.run();
    // Needs 50 blocks: takes the 24 never-used ones, then evicts 26 of a's 40 cached blocks.
    core.submit({ promptTokens: tokens(50 * 16 - 1, 12), maxTokens: 1 });
    clock.run();
    const hashesA = Array.from(blockHashes(a, 16));
    expect(removed).toEqual(hashesA.slice(14).reverse());
    expect(core.cachedPrefixTokens(a)).toBe(14 * 16);
  });
});

describe("answer length", () => {
  it("stops at the sampled EOS, honours min_tokens, ignore_eos and max_tokens", () => {
    const { clock, core } = setup({ eos: { kind: "fixed", tokens: 10 } });
    const plain = core.submit({ promptTokens: tokens(32, 1), maxTokens: 50 });
    const min = core.submit({ promptTokens: tokens(32, 2), maxTokens: 50, minTokens: 20 });
    const ignore = core.submit({ promptTokens: tokens(32, 3), maxTokens: 50, ignoreEos: true });
    const short = core.submit({ promptTokens: tokens(32, 4), maxTokens: 5 });
    const wanted = core.submit({ promptTokens: tokens(32, 5), maxTokens: 50, outputTokens: 33 });
    clock.run();
    expect([plain.output, plain.finishReason]).toEqual([10, "stop"]);
    expect(plain.tokens[plain.numTokens - 1]).toBe(EOT_TOKEN);
    expect([min.output, min.finishReason]).toEqual([21, "stop"]);
    expect([ignore.output, ignore.finishReason]).toEqual([50, "length"]);
    expect([short.output, short.finishReason]).toEqual([5, "length"]);
    expect([wanted.output, wanted.finishReason]).toEqual([33, "stop"]);
  });

  it("draws lengths from the distribution, the same for the same seed", () => {
    const lengths = (seed: number) => {
      const { clock, core } = setup({ seed, eos: { kind: "lognormal", median: 100, sigma: 0.5 } });
      const reqs = Array.from({ length: 200 }, (_, i) => core.submit({ promptTokens: tokens(16, i), maxTokens: 4000 }));
      clock.run();
      return reqs.map((r) => r.output);
    };
    const a = lengths(1);
    expect(lengths(1)).toEqual(a);
    expect(lengths(2)).not.toEqual(a);
    const sorted = [...a].sort((x, y) => x - y);
    const median = sorted[100]!;
    expect(median).toBeGreaterThan(80);
    expect(median).toBeLessThan(125);
  });

  it("rejects what vLLM rejects", () => {
    const { core } = setup({ maxModelLen: 1000 });
    expect(() => core.submit({ promptTokens: tokens(900, 1), maxTokens: 200 })).toThrow(/maximum context length is 1000/);
    expect(() => core.submit({ promptTokens: [], maxTokens: 1 })).toThrow(/empty/);
    expect(() => core.submit({ promptTokens: tokens(10, 1), maxTokens: 5, minTokens: 6 })).toThrow(/min_tokens/);
  });
});

describe("abort", () => {
  it("frees a running request's blocks at once and ends it with reason abort", () => {
    const { clock, core } = setup();
    const reasons: string[] = [];
    const running = core.submit({ id: "a", promptTokens: tokens(1000, 1), maxTokens: 500, ignoreEos: true, observer: { onFinish: (_r, reason) => reasons.push(reason) } });
    clock.runUntil(100);
    expect(running.output).toBeGreaterThan(0);
    expect(core.kv.freeBlocks).toBeLessThan(core.kv.numBlocks);
    expect(core.cancel("a")).toBe(true);
    expect(core.kv.freeBlocks).toBe(core.kv.numBlocks);
    expect(core.numRunning).toBe(0);
    clock.run();
    expect(reasons).toEqual(["abort"]);
    expect(core.metrics.success.abort).toBe(1);
    expect(core.cancel("a")).toBe(false);
  });

  it("removes a queued request from the waiting count", () => {
    const { clock, core } = setup({ maxNumSeqs: 1 });
    core.submit({ promptTokens: tokens(64, 1), maxTokens: 50, ignoreEos: true });
    const queued = core.submit({ promptTokens: tokens(64, 2), maxTokens: 50, ignoreEos: true });
    clock.runUntil(10);
    expect(core.numWaiting).toBe(1);
    core.cancel(queued);
    expect(core.numWaiting).toBe(0);
    clock.run();
    expect(queued.finishReason).toBe("abort");
    expect(queued.output).toBe(0);
    expect(core.metrics.success.length).toBe(1);
  });
});

/** A reference lower tier for the hooks: an unbounded map of offered blocks. */
class MemoryTier implements KvLowerTier {
  readonly blocks = new Map<number, KvTierBlock>();
  offered = 0;
  offer(block: KvTierBlock): void {
    this.offered++;
    this.blocks.set(block.hash, block);
  }
  lookup(hashes: ArrayLike<number>, from: number, to: number): number {
    let n = 0;
    while (from + n < to && this.blocks.has(hashes[from + n] as number)) n++;
    return n;
  }
}

describe("lower KV tier hooks", () => {
  it("offers evicted blocks and loads a prefix from the tier at the calibrated transfer cost", () => {
    const tier = new MemoryTier();
    const { clock, core } = setup({ kvCapacityTokens: 8192, maxModelLen: 8192, lowerTier: tier });
    const prefix = tokens(4096, 21);
    const first = core.submit({ promptTokens: concat(prefix, tokens(128, 22)), maxTokens: 1 });
    clock.run();
    // A large unrelated prompt evicts most of the first one's blocks from GPU memory.
    core.submit({ promptTokens: tokens(8000, 23), maxTokens: 1 });
    clock.run();
    expect(tier.offered).toBeGreaterThan(100);
    const hashes = blockHashes(prefix, 16);
    const gpuHit = core.cachedPrefixTokens(concat(prefix, tokens(128, 24))) / 16;
    expect(gpuHit).toBeLessThan(256);
    expect(tier.lookup(hashes, gpuHit, 256)).toBe(256 - gpuHit);

    const again = core.submit({ promptTokens: concat(prefix, tokens(128, 24)), maxTokens: 1 });
    clock.run();
    const loaded = again.tierTokens;
    expect(loaded).toBe((256 - gpuHit) * 16);
    expect(again.cachedTokens).toBe(4096);
    const expected = core.cost.h2dMs(loaded * 131072) + core.cost.prefillMs(128, 4096);
    console.log(`tier hit: TTFT ${ttft(again).toFixed(1)} ms (expected ${expected.toFixed(1)}; GPU hit ≈ 27, cold ${ttft(first).toFixed(1)}), ${loaded} tokens loaded`);
    expect(within(ttft(again), expected, 0.05)).toBe(true);
    expect(ttft(again)).toBeGreaterThan(core.cost.prefillMs(128, 4096));
    expect(ttft(again)).toBeLessThan(ttft(first) / 2);
    expect(core.metrics.externalPrefixCacheHits).toBe(loaded);
  });

  it("frees a loading request's blocks when it is aborted", () => {
    const tier = new MemoryTier();
    const { clock, core } = setup({ kvCapacityTokens: 4096, maxModelLen: 4096, lowerTier: tier });
    const prefix = tokens(2048, 31);
    core.submit({ promptTokens: concat(prefix, tokens(16, 32)), maxTokens: 1 });
    clock.run();
    core.submit({ promptTokens: tokens(4000, 33), maxTokens: 1 });
    clock.run();
    const r = core.submit({ id: "x", promptTokens: concat(prefix, tokens(16, 34)), maxTokens: 1 });
    expect(r.state).toBe(LOADING);
    expect(core.numWaiting).toBe(1);
    core.cancel("x");
    expect(core.kv.freeBlocks).toBe(core.kv.numBlocks);
    clock.run();
    expect(r.finishReason).toBe("abort");
    expect(core.numWaiting).toBe(0);
  });
});

describe("scheduling by priority (vLLM's policy and long-prefill threshold, Switchyard's prioritised prefill)", () => {
  /** Order in which requests got their first token. */
  const firstTokenOrder = (reqs: SimRequest[]) => [...reqs].sort((a, b) => a.firstTokenMs - b.firstTokenMs).map((r) => r.id);

  it("the priority policy serves the queue by priority, smaller first, then by arrival; fcfs ignores priority", () => {
    for (const policy of ["fcfs", "priority"] as const) {
      const { clock, core } = setup({ maxNumSeqs: 1, schedulingPolicy: policy });
      // The first request finds the engine idle and starts at once; the others queue behind it.
      const reqs = [
        core.submit({ id: "z", promptTokens: tokens(64, 9), maxTokens: 2, ignoreEos: true, priority: 1 }),
        core.submit({ id: "a", promptTokens: tokens(64, 1), maxTokens: 2, ignoreEos: true, priority: 1 }),
        core.submit({ id: "b", promptTokens: tokens(64, 2), maxTokens: 2, ignoreEos: true, priority: 1 }),
        core.submit({ id: "c", promptTokens: tokens(64, 3), maxTokens: 2, ignoreEos: true, priority: -1 }),
        core.submit({ id: "d", promptTokens: tokens(64, 4), maxTokens: 2, ignoreEos: true, priority: 0 }),
      ];
      clock.run();
      expect(firstTokenOrder(reqs)).toEqual(policy === "fcfs" ? ["z", "a", "b", "c", "d"] : ["z", "c", "d", "a", "b"]);
    }
  });

  it("under memory pressure the priority policy preempts the lowest-priority request, not the newest", () => {
    // Room for about two 1,000-token sequences: the third admitted one forces a preemption as they grow.
    const { clock, core } = setup({ kvCapacityTokens: 2_400, blockSize: 16, schedulingPolicy: "priority" });
    const low = core.submit({ id: "low", promptTokens: tokens(1_000, 1), maxTokens: 300, ignoreEos: true, priority: 1 });
    const high = core.submit({ id: "high", promptTokens: tokens(1_000, 2), maxTokens: 300, ignoreEos: true, priority: -1 });
    clock.run();
    expect(high.preemptions).toBe(0);
    expect(low.preemptions).toBeGreaterThan(0);
    expect(high.finishedMs).toBeLessThan(low.finishedMs);
  });

  it("--long-prefill-token-threshold caps the prompt tokens of every request in a step", () => {
    const steps: StepInfo[] = [];
    const { clock, core } = setup({ longPrefillTokenThreshold: 256 });
    core.onStep((s) => steps.push(s));
    const r = core.submit({ promptTokens: tokens(1_000, 1), maxTokens: 1 });
    clock.run();
    // 1,000 prompt tokens in chunks of 256: the first token comes out of the fourth step.
    expect(steps.slice(0, 4).map((s) => s.tokens)).toEqual([256, 256, 256, 232]);
    expect(r.firstTokenMs).toBe(steps[3]!.startMs + steps[3]!.durationMs);
  });

  it("prioritised prefill: a high-priority prompt runs in steps without low-priority prompts, which go in short chunks", () => {
    const run = (engine: Partial<EngineCoreOptions>) => {
      const steps: StepInfo[] = [];
      const { clock, core } = setup(engine);
      core.onStep((s) => steps.push(s));
      // A flood of long low-priority prompts, then a light request arrives while they prefill.
      const flood = Array.from({ length: 6 }, (_, i) => core.submit({ id: `flood-${i}`, promptTokens: tokens(3_000, 10 + i), maxTokens: 50, ignoreEos: true, priority: 1 }));
      let light: SimRequest | undefined;
      clock.schedule(20, () => (light = core.submit({ id: "light", promptTokens: tokens(1_000, 99), maxTokens: 5, ignoreEos: true, priority: -1 })));
      clock.run();
      return { steps, light: light as SimRequest, flood };
    };
    const plain = run({});
    const prioritised = run({ schedulingPolicy: "priority", priorityPrefill: { chunkTokens: 512 } });
    // Low-priority prompts compute at most 512 tokens a step between them; the light one its whole prompt.
    expect(Math.max(...plain.steps.map((s) => s.tokens - s.decodeSeqs))).toBeGreaterThan(3_000);
    expect(Math.max(...prioritised.steps.map((s) => s.tokens - s.decodeSeqs))).toBe(1_000);
    expect(prioritised.steps.filter((s) => s.tokens - s.decodeSeqs !== 1_000).every((s) => s.tokens - s.decodeSeqs <= 512)).toBe(true);
    // The light request's prompt ran alone among prompts (its step carries one prefill sequence).
    const lightStep = prioritised.steps.find((s) => s.startMs + s.durationMs === prioritised.light.firstTokenMs);
    expect(lightStep?.prefillSeqs).toBe(1);
    // And its TTFT is far shorter than on the plain engine, where it waits behind 3,000-token steps.
    expect(ttft(prioritised.light)).toBeLessThan(0.5 * ttft(plain.light));
    // Every request still finishes.
    expect(prioritised.flood.every((r) => r.finishReason === "length")).toBe(true);
  });

  it("rejects priorityPrefill without the priority policy, naming the field", async () => {
    const { simEngineConfigSchema } = await import("../../../dataplane/engines/sim/config");
    const bad = simEngineConfigSchema.safeParse({ kind: "sim", model: "m", priorityPrefill: { chunkTokens: 256 } });
    expect(bad.success).toBe(false);
    expect(bad.error?.issues[0]?.path).toEqual(["priorityPrefill"]);
    expect(bad.error?.issues[0]?.message).toContain("schedulingPolicy");
    expect(simEngineConfigSchema.safeParse({ kind: "sim", model: "m", schedulingPolicy: "priority", priorityPrefill: {} }).success).toBe(true);
  });
});
