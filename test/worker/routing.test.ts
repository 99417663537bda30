/** Routing strategies and the prefix index, driven through PoolCore with a controlled clock. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { namespaceSeed, prefixBlockHashes } from "../../protocol/prefix-hash";
import { PoolCore } from "../../worker/pool/pool-core";
import type { PoolHeartbeat, RouteInput } from "../../worker/pool/types";
import { PrefixIndex } from "../../worker/routing/prefix-index";
import { parseStrategySpec } from "../../worker/routing/spec";
import { STRATEGY_NAMES } from "../../worker/routing/registry";
import type { WeightedStrategy } from "../../worker/routing/strategy";
import { engine } from "./helpers";

const BLOCK_CHARS = 256;

function clock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

/** Deterministic PRNG so tie-breaks are reproducible. */
function rng(seed = 7) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pool(nodes: string[], opts: { regions?: Record<string, string>; capacity?: number } = {}) {
  const c = clock();
  const core = new PoolCore({ staleAfterMs: 7_000, now: c.now, random: rng() });
  const beat = (id: string, over: Partial<PoolHeartbeat> = {}, e = {}) =>
    core.heartbeat({
      nodeId: id,
      region: opts.regions?.[id] ?? "eu",
      url: `http://${id}`,
      drained: false,
      sentAt: c.now(),
      leaving: false,
      engines: [engine("m", { maxConcurrency: 64, kvCapacityTokens: opts.capacity ?? 400_000, ...e })],
      ...over,
    });
  for (const n of nodes) beat(n);
  return { core, clock: c, beat };
}

const spec = (s: string): WeightedStrategy[] => {
  const p = parseStrategySpec(s);
  if (!p.ok) throw new Error(p.message);
  return p.strategies;
};

let reqSeq = 0;
function request(strategy: string, text: string, over: Partial<RouteInput> = {}, tenant = "acme"): RouteInput {
  return {
    requestId: `r${++reqSeq}`,
    tenantId: tenant,
    model: "m",
    strategies: spec(strategy),
    prompt: { blocks: prefixBlockHashes(text, namespaceSeed(`t:${tenant}:m`), BLOCK_CHARS), tokens: Math.ceil(text.length / 4), maxTokens: 64 },
    ...over,
  };
}

const doc = (i: number, len = 8_000) => `Document ${i}: ${"lorem ipsum dolor sit amet ".repeat(len / 27)}`.slice(0, len);

describe("strategy names", () => {
  it("knows all the strategies and refuses others by naming them", () => {
    expect(STRATEGY_NAMES).toEqual(
      ["least-kv-cache", "least-request", "power-of-two", "prefix-cache", "prefix-cache-preble", "random", "session-affinity", "throughput", "vtc-basic"].sort(),
    );
    const bad = parseStrategySpec("prefix-cache:2,fastest");
    expect(bad.ok).toBe(false);
    if (!bad.ok) for (const n of STRATEGY_NAMES) expect(bad.message).toContain(n);
    expect(parseStrategySpec("prefix-cache:2,least-request")).toEqual({ ok: true, strategies: [{ name: "prefix-cache", weight: 2 }, { name: "least-request", weight: 1 }] });
  });
});

describe("prefix index", () => {
  const h = (n: number, base = 0) => Array.from({ length: n }, (_, i) => base + i + 1);

  it("matches only contiguous leading blocks", () => {
    const idx = new PrefixIndex({ tokensPerBlock: 32 });
    idx.record(h(10), "a", 0);
    expect(idx.match(h(10), ["a", "b"])).toEqual(new Map([["a", 10]]));
    // Chained hashes: once a block differs, every later hash differs too.
    expect(idx.match([...h(4), 999, ...h(5, 500)], ["a"]).get("a")).toBe(4);
    expect(idx.match([999, ...h(10)], ["a"]).size).toBe(0);
  });

  it("bounds each node by its reported KV capacity, dropping prompt tails before roots", () => {
    const idx = new PrefixIndex({ tokensPerBlock: 32 });
    idx.setCapacity("a", 32 * 10); // 10 blocks
    idx.record(h(8, 0), "a", 0);
    idx.record(h(8, 100), "a", 1);
    expect(idx.blocksOf("a")).toBe(10);
    // The older prompt lost its tail, not its root: its first 2 blocks still match.
    expect(idx.match(h(8, 0), ["a"]).get("a")).toBe(2);
    expect(idx.match(h(8, 100), ["a"]).get("a")).toBe(8);
  });

  it("splits its global bound between nodes by capacity", () => {
    const idx = new PrefixIndex({ maxEntries: 300, tokensPerBlock: 1 });
    idx.setCapacity("big", 10_000);
    idx.setCapacity("small", 5_000);
    for (let i = 0; i < 10; i++) {
      idx.record(h(100, i * 1000), "big", i);
      idx.record(h(100, i * 1000 + 500), "small", i);
    }
    expect(idx.blocksOf("big")).toBe(200);
    expect(idx.blocksOf("small")).toBe(100);
    expect(idx.size).toBe(300);
  });

  it("forgets what a node reports evicted, everything on a cache reset, and idle blocks by age", () => {
    const idx = new PrefixIndex({ tokensPerBlock: 32, ttlMs: 1_000 });
    idx.record(h(10, 0), "a", 0);
    idx.record(h(10, 100), "a", 500);
    idx.evictTokens("a", 32 * 10);
    expect(idx.match(h(10, 0), ["a"]).size).toBe(0);
    expect(idx.match(h(10, 100), ["a"]).get("a")).toBe(10);
    idx.sweep(1_600);
    expect(idx.blocksOf("a")).toBe(0);
    idx.record(h(5), "a", 2_000);
    idx.clearNode("a");
    expect(idx.size).toBe(0);
  });
});

describe("prefix index invariant", () => {
  it("never leaves a hole in a chain, so the binary-search match equals a block-by-block walk", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({ op: fc.constant("record" as const), trunk: fc.integer({ min: 0, max: 5 }), len: fc.integer({ min: 1, max: 30 }), branch: fc.integer({ min: 0, max: 3 }), node: fc.integer({ min: 0, max: 2 }) }),
            fc.record({ op: fc.constant("evict" as const), node: fc.integer({ min: 0, max: 2 }), tokens: fc.integer({ min: 1, max: 2_000 }) }),
            fc.record({ op: fc.constant("wait" as const), ms: fc.integer({ min: 1, max: 600 }) }),
          ),
          { maxLength: 80 },
        ),
        (ops) => {
          const idx = new PrefixIndex({ tokensPerBlock: 16, ttlMs: 2_000, maxEntries: 200 });
          for (let n = 0; n < 3; n++) idx.setCapacity(`n${n}`, 16 * (40 + 20 * n));
          // Chains: a trunk (shared prefix) followed by a branch; hashes are unique per (trunk, branch, position).
          const chain = (trunk: number, branch: number, len: number) =>
            Array.from({ length: len }, (_, i) => (i < 10 ? trunk * 1_000 + i + 1 : 100_000 + trunk * 10_000 + branch * 1_000 + i));
          const chains: number[][] = [];
          let now = 0;
          for (const o of ops) {
            if (o.op === "record") {
              const c = chain(o.trunk, o.branch, o.len);
              chains.push(c);
              idx.record(c, `n${o.node}`, now);
            } else if (o.op === "evict") idx.evictTokens(`n${o.node}`, o.tokens);
            else {
              now += o.ms;
              idx.sweep(now);
            }
          }
          for (const c of chains) {
            const got = idx.match(c, ["n0", "n1", "n2"]);
            for (let n = 0; n < 3; n++) {
              let walk = 0;
              while (walk < c.length && idx.holds(`n${n}`, c[walk] as number)) walk++;
              // No hole: nothing held after the first missing block.
              for (let k = walk; k < c.length; k++) expect(idx.holds(`n${n}`, c[k] as number)).toBe(false);
              expect(got.get(`n${n}`) ?? 0).toBe(walk);
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("prefix-cache", () => {
  it("sends a prompt back to the node that holds its prefix", () => {
    const { core, clock, beat } = pool(["n1", "n2", "n3", "n4"]);
    const first = core.route(request("prefix-cache", doc(1) + " question A"));
    expect(first.ok).toBe(true);
    for (let i = 0; i < 5; i++) {
      clock.advance(2_000);
      for (const n of ["n1", "n2", "n3", "n4"]) beat(n, { sentAt: clock.now() });
      const r = core.route(request("prefix-cache", doc(1) + ` question ${i}`));
      expect(r.ok && r.nodeId).toBe(first.ok && first.nodeId);
      if (r.ok) expect(r.prefixBlocks.matched).toBeGreaterThan(25);
    }
  });

  it("spreads different prefixes, and a burst on one prefix spills over once the holder is busy", () => {
    const { core } = pool(["n1", "n2", "n3", "n4"]);
    const homes = new Set<string>();
    for (let d = 0; d < 8; d++) {
      const r = core.route(request("prefix-cache", doc(100 + d)));
      if (r.ok) homes.add(r.nodeId);
    }
    expect(homes.size).toBe(4);
    // 40 requests on one prefix at the same instant: the holder's backlog grows until recomputing
    // elsewhere is cheaper, so the prefix is replicated instead of queueing everything on one node.
    const burst = new Map<string, number>();
    for (let i = 0; i < 40; i++) {
      const r = core.route(request("prefix-cache", doc(999) + ` q${i}`));
      if (r.ok) burst.set(r.nodeId, (burst.get(r.nodeId) ?? 0) + 1);
    }
    expect(burst.size).toBeGreaterThan(1);
    expect(Math.max(...burst.values())).toBeLessThan(40);
  });

  it("never matches another tenant's prefix", () => {
    const { core, clock } = pool(["n1", "n2"]);
    core.route(request("prefix-cache", doc(5), {}, "acme"));
    clock.advance(5_000);
    const other = core.route(request("prefix-cache", doc(5), {}, "globex"));
    expect(other.ok && other.prefixBlocks.matched).toBe(0);
  });

  it("forgets a node's prefixes when its engine reports evictions or a cache reset", () => {
    const { core, clock, beat } = pool(["n1"]);
    beat("n1", {}, { kvEvictedTokens: 0, kvEpoch: "e1" });
    core.route(request("prefix-cache", doc(7)));
    clock.advance(1_000);
    const again = core.route(request("prefix-cache", doc(7)));
    expect(again.ok && again.prefixBlocks.matched).toBeGreaterThan(0);
    beat("n1", { sentAt: clock.now() }, { kvEvictedTokens: 1_000_000, kvEpoch: "e1" });
    const afterEviction = core.route(request("prefix-cache", doc(7)));
    expect(afterEviction.ok && afterEviction.prefixBlocks.matched).toBe(0);
    clock.advance(1_000);
    beat("n1", { sentAt: clock.now() }, { kvEvictedTokens: 1_000_000, kvEpoch: "e2" });
    expect(core.snapshot("p").nodes[0]?.prefixBlocks).toBe(0);
  });
});

describe("prefix-cache-preble", () => {
  it("exploits a long cached prefix and explores for a short one", () => {
    const { core, clock } = pool(["n1", "n2", "n3"]);
    const home = core.route(request("prefix-cache-preble", doc(1)));
    clock.advance(1_000);
    const exploit = core.route(request("prefix-cache-preble", doc(1) + " and one more short question"));
    expect(exploit.ok && exploit.nodeId).toBe(home.ok && home.nodeId);
    // A prompt whose cached part is shorter than the rest goes to the cheapest node instead.
    const explore = core.route(request("prefix-cache-preble", doc(1).slice(0, 1_000) + doc(2, 6_000)));
    expect(explore.ok && explore.nodeId).not.toBe(home.ok && home.nodeId);
  });

  it("rebalances away from a node carrying 1.5× the lightest load", () => {
    const { core, clock } = pool(["n1", "n2"]);
    const home = core.route(request("prefix-cache-preble", doc(3)));
    const placed = new Map<string, number>();
    for (let i = 0; i < 30; i++) {
      clock.advance(100);
      const r = core.route(request("prefix-cache-preble", doc(3) + ` follow-up ${i}`));
      if (r.ok) placed.set(r.nodeId, (placed.get(r.nodeId) ?? 0) + 1);
    }
    expect(home.ok).toBe(true);
    expect(placed.size).toBe(2);
  });
});

describe("load-aware strategies", () => {
  it("least-request and power-of-two prefer the node with fewer requests in flight", () => {
    const { core } = pool(["n1", "n2"]);
    const placed = new Map<string, string[]>();
    for (let i = 0; i < 6; i++) {
      const r = core.route(request("least-request", "x", { requestId: `busy${i}` }));
      if (r.ok) placed.set(r.nodeId, [...(placed.get(r.nodeId) ?? []), `busy${i}`]);
    }
    expect(core.snapshot("p").nodes.map((n) => n.inflight)).toEqual([3, 3]);
    // Two finish on n1: it has 1 in flight against n2's 3.
    for (const id of (placed.get("n1") ?? []).slice(0, 2)) core.release({ requestId: id, outcome: "completed" });
    expect((core.route(request("least-request", "y")) as { nodeId: string }).nodeId).toBe("n1");
    // n1 now has 2, n2 3: with two nodes, power-of-two samples both and takes the lighter.
    for (let i = 0; i < 3; i++) {
      const r = core.route(request("power-of-two", "z")) as { nodeId: string; ok: true };
      expect(r.nodeId).toBe("n1");
      core.release({ requestId: `r${reqSeq}`, outcome: "completed" });
    }
  });

  it("least-kv-cache counts what it routed since the last heartbeat", () => {
    const { core } = pool(["n1", "n2"], { capacity: 10_000 });
    const picks = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const r = core.route(request("least-kv-cache", doc(50 + i, 8_000)));
      if (r.ok) picks.add(r.nodeId);
    }
    expect(picks.size).toBe(2);
  });

  it("throughput prefers the node that processed fewer tokens recently, by the engine's own counts", () => {
    const { core } = pool(["n1", "n2"]);
    const big = request("least-request", "tiny prompt");
    const a = core.route(big);
    if (!a.ok) throw new Error("no route");
    // The engine reports the request was far larger than the edge estimated.
    core.release({ requestId: big.requestId, outcome: "completed", usage: { promptTokens: 50_000, completionTokens: 2_000, cachedTokens: 0, estimated: false } });
    for (let i = 0; i < 5; i++) {
      const r = core.route(request("throughput", "short"));
      expect(r.ok && r.nodeId).not.toBe(a.nodeId);
    }
  });
});

describe("vtc-basic", () => {
  const served = (core: PoolCore, tenant: string, prompt: number, completion: number) => {
    const r = request("least-request", "x", {}, tenant);
    if (!core.route(r).ok) throw new Error("no route");
    core.release({ requestId: r.requestId, outcome: "completed", usage: { promptTokens: prompt, completionTokens: completion, cachedTokens: 0, estimated: false } });
  };

  it("steers heavy tenants to one end of the pool and light ones to the other, by real token counts", () => {
    const { core } = pool(["n4", "n2", "n1", "n3"]);
    // The edge estimated a tiny prompt each time; the engine reported 20k prompt + 10k output tokens.
    for (let i = 0; i < 3; i++) served(core, "heavy", 20_000, 10_000);
    served(core, "light", 10, 5);
    const pick = (tenant: string) => {
      const r = core.route(request("vtc-basic", "hi", {}, tenant));
      if (!r.ok) throw new Error("no route");
      core.release({ requestId: `r${reqSeq}`, outcome: "completed" });
      return r.nodeId;
    };
    // Positions follow node ids, whatever order the nodes joined in.
    expect(pick("light")).toBe("n1");
    expect(pick("newcomer")).toBe("n1");
    // heavy: 3·(20k·1 + 10k·2) = 120k tokens by the engine's counts (the edge estimated 1 token
    // each, which would have kept it at n1); the bucket is (min + max)/2 ≈ 60k, so position 2.
    expect(pick("heavy")).toBe("n3");
  });

  it("moves off a node whose utilisation outweighs the position", () => {
    const { core } = pool(["n1", "n2"]);
    // n1 carries 100 requests: utilisation 1, as far as one position step.
    for (let i = 0; i < 100; i++) if (!core.route(request("least-request", "busy", { exclude: ["n2"] }, `t${i}`)).ok) throw new Error("no route");
    let onN2 = 0;
    for (let i = 0; i < 40; i++) {
      const r = core.route(request("vtc-basic", "hi", {}, "light"));
      if (r.ok && r.nodeId === "n2") onN2++;
      if (r.ok) core.release({ requestId: `r${reqSeq}`, outcome: "completed" });
    }
    // Fairness 0 + util 1 on n1 against fairness 1 + util 0 on n2: the jitter decides, about evenly.
    expect(onN2).toBeGreaterThan(8);
    expect(onN2).toBeLessThan(32);
  });
});

describe("session-affinity", () => {
  it("keeps a session on one node while it lives, and moves only that node's sessions when it leaves", () => {
    const { core, beat, clock } = pool(["n1", "n2", "n3", "n4"]);
    const home = new Map<string, string>();
    for (let s = 0; s < 40; s++) {
      for (let k = 0; k < 3; k++) {
        const r = core.route(request("session-affinity", "hi", { sessionKey: `session-${s}` }));
        if (!r.ok) throw new Error("no route");
        if (k === 0) home.set(`session-${s}`, r.nodeId);
        else expect(r.nodeId).toBe(home.get(`session-${s}`));
      }
    }
    expect(new Set(home.values()).size).toBe(4);
    clock.advance(100);
    beat("n2", { leaving: true, sentAt: clock.now() });
    for (const [s, node] of home) {
      const r = core.route(request("session-affinity", "hi", { sessionKey: s }));
      if (!r.ok) throw new Error("no route");
      if (node !== "n2") expect(r.nodeId).toBe(node);
      else expect(r.nodeId).not.toBe("n2");
    }
  });
});

describe("regions", () => {
  it("uses the nearest region while it has room, then the next", () => {
    const { core } = pool(["eu1", "eu2", "us1"], { regions: { eu1: "eu", eu2: "eu", us1: "us" } });
    const r = core.route(request("least-request", "x", { regions: ["us", "eu"] }));
    expect(r.ok && r.nodeId).toBe("us1");
    const eu = core.route(request("least-request", "x", { regions: ["eu", "us"] }));
    expect(eu.ok && eu.region).toBe("eu");
  });

  it("spills to the next region when the nearest is saturated", () => {
    const { core, beat } = pool(["eu1", "us1"], { regions: { eu1: "eu", us1: "us" } });
    beat("eu1", {}, { maxConcurrency: 2 });
    const picks = [0, 1, 2].map(() => core.route(request("least-request", "x", { regions: ["eu", "us"] })));
    expect(picks.map((p) => p.ok && p.nodeId)).toEqual(["eu1", "eu1", "us1"]);
  });
});
