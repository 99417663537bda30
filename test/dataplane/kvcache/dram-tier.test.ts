/**
 * The L1 DRAM tier: values in and out (copy-in, no copy out), prefix probes, deletes, statistics,
 * the eviction and hot-access callbacks, oversized values, the config schema, and a model-based
 * property test that the byte budget is never exceeded and the key set stays consistent.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DramTier, l1TierConfigSchema } from "../../../dataplane/kvcache/l1/dram-tier";
import { parseConfig } from "../../../dataplane/lib/config-error";

const bytes = (n: number, fill = 1) => new Uint8Array(n).fill(fill);
const key = (i: number) => i.toString(16).padStart(64, "0");

describe("DramTier", () => {
  it("stores a copy on put and hands out the stored Buffer on get", async () => {
    const t = new DramTier({ capacityBytes: 1000 });
    const src = bytes(100, 7);
    await t.put(key(1), src);
    src.fill(9); // the caller reuses its array
    const a = await t.get(key(1));
    const b = await t.get(key(1));
    expect(a).toBeInstanceOf(Buffer);
    expect(a).toBe(b); // no copy per get
    expect([...(a as Buffer)].every((x) => x === 7)).toBe(true);
    expect(await t.get(key(2))).toBeUndefined();
    expect(t.stats()).toMatchObject({ hits: 2, misses: 1, bytesIn: 100, bytesOut: 200, bytesUsed: 100, entries: 1, capacityBytes: 1000, policy: "s3fifo" });
    // Replacing stores a new Buffer; the one handed out earlier keeps its bytes.
    await t.put(key(1), bytes(100, 3));
    expect((await t.get(key(1)))?.[0]).toBe(3);
    expect(a?.[0]).toBe(7);
    expect(t.stats().bytesUsed).toBe(100);
  });

  it("answers longestPrefix without a gap and without touching stats or eviction order", async () => {
    const t = new DramTier({ capacityBytes: 1000, policy: "lru" });
    for (const i of [0, 1, 2, 4]) await t.put(key(i), bytes(10));
    const keys = [0, 1, 2, 3, 4].map(key);
    expect(await t.longestPrefix(keys)).toBe(3);
    expect(await t.longestPrefix([])).toBe(0);
    expect(await t.longestPrefix([key(3), key(0)])).toBe(0);
    expect(t.stats()).toMatchObject({ hits: 0, misses: 0 });
    await t.delete(key(1));
    expect(await t.longestPrefix(keys)).toBe(1);
    expect(t.has(key(1))).toBe(false);
    await t.delete(key(1)); // twice: no-op
    expect(t.stats()).toMatchObject({ bytesUsed: 30, entries: 3, evictions: 0 });
  });

  it("loads the longest prefix and stores chains tail first, so a chain's head is evicted last", () => {
    const t = new DramTier({ capacityBytes: 40, policy: "lru" });
    const chain = [0, 1, 2, 3].map(key);
    expect(t.putChain(chain, chain.map((_, i) => bytes(10, i)))).toBe(4);
    expect(() => t.putChain(chain, [])).toThrow(RangeError);
    // Stored tail first: the head is the most recent, the tail goes first.
    t.putSync(key(9), bytes(10));
    expect(t.has(key(3))).toBe(false);
    expect(t.longestPrefixSync(chain)).toBe(3);
    const got = t.getPrefix(chain);
    expect(got.map((b) => b[0])).toEqual([0, 1, 2]);
    expect(t.stats()).toMatchObject({ hits: 3, misses: 1, bytesOut: 30 });
    // The hits were touched tail first, so key 2 is now the least recent of the chain (after key 9).
    t.putSync(key(10), bytes(20));
    expect([0, 1, 2, 9].map((i) => t.has(key(i)))).toEqual([true, true, false, false]);
    expect(t.getPrefix([key(5)])).toEqual([]);
  });

  it("evicts by policy to stay within the byte budget and reports each eviction once", async () => {
    const evicted: [string, number][] = [];
    const t = new DramTier({ capacityBytes: 100, policy: "lru" }, { onEvict: (k, v) => evicted.push([k, v.byteLength]) });
    for (let i = 0; i < 10; i++) await t.put(key(i), bytes(10));
    await t.get(key(0)); // 0 is now the most recent
    await t.put(key(10), bytes(25));
    expect(evicted).toEqual([
      [key(1), 10],
      [key(2), 10],
      [key(3), 10],
    ]);
    expect(t.stats()).toMatchObject({ bytesUsed: 95, evictions: 3, evictedBytes: 30 });
    await t.delete(key(0)); // deletes are not evictions
    expect(evicted).toHaveLength(3);
  });

  it("refuses a value larger than the capacity without evicting anything, and stores one that fits exactly", async () => {
    const evicted: string[] = [];
    const t = new DramTier({ capacityBytes: 64 }, { onEvict: (k) => evicted.push(k) });
    await t.put(key(1), bytes(32));
    await expect(t.put(key(2), bytes(65))).resolves.toBeUndefined();
    expect(t.putSync(key(2), bytes(65))).toBe(false);
    expect(t.has(key(2))).toBe(false);
    expect(t.stats()).toMatchObject({ refused: 2, bytesUsed: 32, entries: 1 });
    expect(evicted).toEqual([]);
    expect(t.putSync(key(3), bytes(64))).toBe(true);
    expect(evicted).toEqual([key(1)]);
    expect(t.stats()).toMatchObject({ bytesUsed: 64, entries: 1 });
    // Empty values are values.
    expect(t.putSync(key(4), new Uint8Array(0))).toBe(true);
    expect((await t.get(key(4)))?.byteLength).toBe(0);
  });

  it("calls onHotAccess: LRU on the first get; S3-FIFO when a get reaches the threshold and on a ghost hit", async () => {
    const lruHot: string[] = [];
    const lru = new DramTier({ capacityBytes: 100, policy: "lru" }, { onHotAccess: (k, v) => lruHot.push(`${k.slice(-1)}:${v.byteLength}`) });
    await lru.put(key(1), bytes(5));
    await lru.get(key(1));
    await lru.get(key(1));
    expect(lruHot).toEqual(["1:5"]);

    const hot: string[] = [];
    const s3 = new DramTier({ capacityBytes: 10, s3fifo: { threshold: 2 } }, { onHotAccess: (k) => hot.push(k) });
    for (let i = 0; i < 10; i++) s3.putSync(key(i), bytes(1));
    s3.getSync(key(5));
    expect(hot).toEqual([]);
    s3.getSync(key(5));
    expect(hot).toEqual([key(5)]);
    s3.putSync(key(10), bytes(1)); // evicts key 0 into the ghost
    expect(s3.has(key(0))).toBe(false);
    s3.putSync(key(0), bytes(1)); // ghost hit: main, hot
    expect(hot).toEqual([key(5), key(0)]);
  });

  it("runs callbacks after the operation, survives a throwing callback, and allows re-entry", async () => {
    const errors: string[] = [];
    let t!: DramTier;
    t = new DramTier(
      { capacityBytes: 20, policy: "lru" },
      {
        onEvict: (k) => {
          expect(t.has(k)).toBe(false); // already gone when the callback runs
          expect(t.stats().bytesUsed).toBeLessThanOrEqual(20);
          if (k === key(1)) throw new Error("L2 down");
        },
        onPut: (k) => {
          if (k === key(9)) t.deleteSync(key(9)); // re-entrant call
        },
        onCallbackError: (e, cb, k) => errors.push(`${cb}:${k.slice(-1)}:${(e as Error).message}`),
      },
    );
    t.putSync(key(1), bytes(10));
    t.putSync(key(2), bytes(10));
    expect(t.putSync(key(3), bytes(10))).toBe(true);
    expect(errors).toEqual(["onEvict:1:L2 down"]);
    expect([t.has(key(2)), t.has(key(3))]).toEqual([true, true]);
    t.putSync(key(9), bytes(1));
    expect(t.has(key(9))).toBe(false);
  });

  it("honours an aborted signal and stops serving after close", async () => {
    const t = new DramTier({ capacityBytes: 100 });
    await t.put(key(1), bytes(1));
    const ac = new AbortController();
    ac.abort(new Error("client went away"));
    await expect(t.get(key(1), ac.signal)).rejects.toThrow("client went away");
    await expect(t.longestPrefix([key(1)], ac.signal)).rejects.toThrow("client went away");
    await t.close();
    expect(await t.get(key(1))).toBeUndefined();
    await t.put(key(2), bytes(1));
    expect(await t.longestPrefix([key(1)])).toBe(0);
    expect(t.stats()).toMatchObject({ bytesUsed: 0, entries: 0, misses: 0 });
  });
});

describe("l1TierConfigSchema", () => {
  it("takes the budget in bytes or GiB, S3-FIFO by default with AIBrix's L1 parameters (small 30 %, threshold 1)", () => {
    expect(l1TierConfigSchema.parse({ capacityGiB: 10 })).toEqual({ capacityBytes: 10 * 2 ** 30, policy: "s3fifo", s3fifo: { smallRatio: 0.3, threshold: 1 } });
    expect(l1TierConfigSchema.parse({ capacityGiB: 10, s3fifo: { threshold: 2 } }).s3fifo).toEqual({ smallRatio: 0.3, threshold: 2 });
    expect(l1TierConfigSchema.parse({ capacityBytes: 4096, policy: "lru" })).toMatchObject({ capacityBytes: 4096, policy: "lru" });
    expect(l1TierConfigSchema.parse({ capacityGiB: 0.5, s3fifo: { smallRatio: 0.1, threshold: 2 } }).s3fifo).toEqual({ smallRatio: 0.1, threshold: 2 });
    const t = new DramTier({ capacityGiB: 1, s3fifo: { smallRatio: 0.1 } });
    expect(t.capacityBytes).toBe(2 ** 30);
    expect(t.config.s3fifo).toEqual({ smallRatio: 0.1, threshold: 1 });
  });

  it("names the bad field", () => {
    const bad = (v: unknown) => () => parseConfig(l1TierConfigSchema, v, "agent.json");
    expect(bad({})).toThrow(/capacityBytes: give exactly one of capacityBytes and capacityGiB/);
    expect(bad({ capacityBytes: 1, capacityGiB: 1 })).toThrow(/exactly one/);
    expect(bad({ capacityBytes: 1.5 })).toThrow(/capacityBytes/);
    expect(bad({ capacityGiB: 1, policy: "arc" })).toThrow(/policy/);
    expect(bad({ capacityGiB: 1, s3fifo: { threshold: 4 } })).toThrow(/s3fifo.threshold/);
    expect(bad({ capacityGiB: 1, s3fifo: { smallRatio: 1 } })).toThrow(/s3fifo.smallRatio/);
    expect(bad({ capacityGiB: 1, sizeGB: 3 })).toThrow(/sizeGB/);
  });
});

type Op = { t: "put"; k: number; size: number } | { t: "get"; k: number } | { t: "del"; k: number };

describe("DramTier against a reference model (random operation sequences)", () => {
  it("never exceeds the byte budget; holds exactly the keys the model says, with the last value put", () => {
    const op: fc.Arbitrary<Op> = fc.oneof(
      { weight: 5, arbitrary: fc.record({ t: fc.constant("put" as const), k: fc.nat({ max: 19 }), size: fc.nat({ max: 70 }) }) },
      { weight: 4, arbitrary: fc.record({ t: fc.constant("get" as const), k: fc.nat({ max: 19 }) }) },
      { weight: 1, arbitrary: fc.record({ t: fc.constant("del" as const), k: fc.nat({ max: 19 }) }) },
    );
    const policy = fc.oneof(
      fc.record({ policy: fc.constant("lru" as const) }),
      fc.record({ policy: fc.constant("s3fifo" as const), s3fifo: fc.record({ smallRatio: fc.constantFrom(0.1, 0.3, 0.5), threshold: fc.integer({ min: 1, max: 3 }) }) }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 64 }), policy, fc.array(op, { maxLength: 250 }), (capacityBytes, pcfg, ops) => {
        const model = new Map<string, { size: number; fill: number }>();
        const t = new DramTier({ capacityBytes, ...pcfg }, { onEvict: (k) => model.delete(k) });
        let version = 0;
        let hits = 0;
        let misses = 0;
        for (const o of ops) {
          const k = key(o.k);
          if (o.t === "put") {
            const fill = ++version % 256;
            const stored = t.putSync(k, bytes(o.size, fill));
            expect(stored).toBe(o.size <= capacityBytes);
            if (stored) model.set(k, { size: o.size, fill });
          } else if (o.t === "get") {
            const v = t.getSync(k);
            const m = model.get(k);
            if (m === undefined) {
              expect(v).toBeUndefined();
              misses++;
            } else {
              expect(v?.byteLength).toBe(m.size);
              if (m.size > 0) expect([v?.[0], v?.[m.size - 1]]).toEqual([m.fill, m.fill]);
              hits++;
            }
          } else {
            t.deleteSync(k);
            model.delete(k);
          }
          const s = t.stats();
          const modelBytes = [...model.values()].reduce((a, e) => a + e.size, 0);
          expect(s.bytesUsed).toBeLessThanOrEqual(capacityBytes);
          expect(s.bytesUsed).toBe(modelBytes);
          expect(s.entries).toBe(model.size);
          for (let i = 0; i < 20; i++) expect(t.has(key(i))).toBe(model.has(key(i)));
        }
        expect(t.stats()).toMatchObject({ hits, misses });
      }),
      { numRuns: 300 },
    );
  });
});
