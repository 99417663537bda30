/**
 * Eviction policies on their own: LRU order, S3-FIFO's queues (one-hit wonders leave through the
 * small FIFO, ghost hits enter main, 2-bit frequency, CLOCK reinsertion in main, thresholds), hot
 * notifications, and both checked step by step against naive array models on random workloads.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createEvictionPolicy, EVICTION_POLICY_NAMES, evictionConfigSchema, LruPolicy, policyFromConfig, S3FifoPolicy } from "../../../dataplane/kvcache/eviction/index";
import type { EvictionPolicy } from "../../../dataplane/kvcache/tier";

/** A byte-bounded cache driven by a policy, the way the tiers drive it. */
class Harness {
  readonly sizes = new Map<string, number>();
  used = 0;
  readonly evicted: string[] = [];
  constructor(
    readonly policy: EvictionPolicy,
    readonly capacity: number,
  ) {}
  /** Read-through: a hit is an access, a miss inserts (evicting first). Returns hit. */
  ref(key: string, size = 1): boolean {
    if (this.sizes.has(key)) {
      this.policy.onAccess(key);
      return true;
    }
    this.insert(key, size);
    return false;
  }
  insert(key: string, size: number): void {
    if (this.sizes.has(key)) this.remove(key);
    while (this.used + size > this.capacity) {
      const v = this.policy.victim();
      if (v === undefined) throw new Error("policy empty while over budget");
      const s = this.sizes.get(v);
      if (s === undefined) throw new Error(`victim ${v} is not resident`);
      this.sizes.delete(v);
      this.used -= s;
      this.evicted.push(v);
    }
    this.sizes.set(key, size);
    this.used += size;
    this.policy.onInsert(key, size);
  }
  remove(key: string): void {
    const s = this.sizes.get(key);
    if (s === undefined) return;
    this.sizes.delete(key);
    this.used -= s;
    this.policy.onRemove(key);
  }
}

describe("LRU", () => {
  it("evicts the least recently inserted or accessed first", () => {
    const p = new LruPolicy();
    for (const k of ["a", "b", "c", "d"]) p.onInsert(k, 1);
    p.onAccess("a");
    p.onAccess("c");
    expect(p.keys()).toEqual(["b", "d", "a", "c"]);
    expect([p.victim(), p.victim(), p.victim(), p.victim(), p.victim()]).toEqual(["b", "d", "a", "c", undefined]);
  });

  it("is byte-aware: one big insert evicts as many small entries as it needs", () => {
    const h = new Harness(new LruPolicy(), 10);
    for (let i = 0; i < 10; i++) h.ref(`s${i}`, 1);
    h.ref("big", 7);
    expect(h.evicted).toEqual(["s0", "s1", "s2", "s3", "s4", "s5", "s6"]);
    expect(h.used).toBe(10);
  });

  it("calls onHot on the first access after insertion only", () => {
    const hot: string[] = [];
    const p = new LruPolicy({ onHot: (k) => hot.push(k) });
    p.onInsert("a", 1);
    p.onInsert("b", 1);
    p.onAccess("a");
    p.onAccess("a");
    p.onAccess("zz"); // unknown: ignored
    expect(hot).toEqual(["a"]);
    p.onRemove("a");
    p.onInsert("a", 1);
    p.onAccess("a");
    expect(hot).toEqual(["a", "a"]);
    // Removing a victim again is a no-op.
    expect(p.victim()).toBe("b");
    p.onRemove("b");
    expect(p.size).toBe(1);
    expect(p.bytes).toBe(1);
  });
});

describe("S3-FIFO", () => {
  it("splits the capacity by bytes: small 10%, main 90%, ghost like main by default", () => {
    const p = new S3FifoPolicy({ capacityBytes: 1000 });
    expect([p.smallCapacityBytes, p.mainCapacityBytes, p.ghostCapacityBytes, p.threshold]).toEqual([100, 900, 900, 1]);
    const q = new S3FifoPolicy({ capacityBytes: 1000, smallRatio: 0.3, threshold: 2, ghostRatio: 0.5 });
    expect([q.smallCapacityBytes, q.mainCapacityBytes, q.ghostCapacityBytes, q.threshold]).toEqual([300, 700, 500, 2]);
    expect(() => new S3FifoPolicy({ capacityBytes: 1000, threshold: 4 })).toThrow();
    expect(() => new S3FifoPolicy({ capacityBytes: 1000, smallRatio: 1 })).toThrow();
    expect(() => new S3FifoPolicy({ capacityBytes: 0 })).toThrow();
  });

  it("lets one-hit wonders leave through the small FIFO without touching main (LRU loses its hot set)", () => {
    const run = (policy: EvictionPolicy) => {
      const h = new Harness(policy, 100);
      for (let i = 0; i < 50; i++) h.ref(`hot${i}`);
      for (let i = 0; i < 50; i++) h.ref(`hot${i}`);
      for (let i = 0; i < 1000; i++) h.ref(`once${i}`);
      return h;
    };
    const s3 = new S3FifoPolicy({ capacityBytes: 100 });
    const hs = run(s3);
    for (let i = 0; i < 50; i++) expect(s3.where(`hot${i}`)).toBe("main");
    expect(hs.evicted.every((k) => k.startsWith("once"))).toBe(true);
    expect(s3.occupancy().main.count).toBe(50);
    expect(s3.where("once999")).toBe("small");
    expect(s3.where("once900")).toBe("ghost");
    expect(s3.where("once0")).toBeUndefined(); // the ghost forgot it (ghost holds main's share: 90 keys)
    expect(s3.occupancy().ghost.count).toBe(90);

    const lru = new LruPolicy();
    const hl = run(lru);
    expect([...hl.sizes.keys()].some((k) => k.startsWith("hot"))).toBe(false);
  });

  it("inserts a ghost hit into main, counts it as hot, and the re-reference is still a miss", () => {
    const hot: string[] = [];
    const p = new S3FifoPolicy({ capacityBytes: 10, onHot: (k) => hot.push(k) });
    const h = new Harness(p, 10);
    for (let i = 0; i < 11; i++) h.ref(`k${i}`);
    expect(h.evicted).toEqual(["k0"]);
    expect(p.where("k0")).toBe("ghost");
    expect(p.has("k0")).toBe(false);
    expect(h.ref("k0")).toBe(false);
    expect(p.where("k0")).toBe("main");
    expect(p.frequency("k0")).toBe(0);
    expect(hot).toEqual(["k0"]);
  });

  it("caps the frequency at 3 and spends it one reinsertion at a time in main (CLOCK)", () => {
    const p = new S3FifoPolicy({ capacityBytes: 10 });
    const h = new Harness(p, 10);
    // Put a and b in main through ghost hits.
    for (const k of ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]) h.ref(k);
    h.ref("x"); // evicts a → ghost
    h.ref("y"); // evicts b → ghost
    h.ref("a");
    h.ref("b");
    expect([p.where("a"), p.where("b")]).toEqual(["main", "main"]);
    for (let i = 0; i < 10; i++) p.onAccess("a");
    expect(p.frequency("a")).toBe(3);
    // Main is the only queue now: drain small first.
    for (const k of [...h.sizes.keys()]) if (p.where(k) === "small") h.remove(k);
    expect(p.occupancy().small.count).toBe(0);
    // main, oldest first: a (freq 3), b (freq 0). The first victim reinserts a (freq 2) and evicts b.
    expect(p.victim()).toBe("b");
    expect(p.frequency("a")).toBe(2);
    p.onInsert("z", 1); // into small, which then holds its 1-byte share
    expect(p.where("z")).toBe("small");
    expect(p.victim()).toBe("z"); // small at its share: evicted from small, a untouched
    expect(p.frequency("a")).toBe(2);
    expect(p.victim()).toBe("a"); // a is reinserted twice (freq 2 → 1 → 0) and then evicted
    expect(p.victim()).toBeUndefined();
  });

  it("reinserts accessed main entries before evicting unaccessed ones", () => {
    const p = new S3FifoPolicy({ capacityBytes: 100, smallRatio: 0.1 });
    // Ghost hits put m0..m4 in main, oldest first.
    for (let i = 0; i < 5; i++) p.onInsert(`m${i}`, 1);
    for (let i = 0; i < 5; i++) expect(p.victim()).toBe(`m${i}`); // small → ghost
    for (let i = 0; i < 5; i++) p.onInsert(`m${i}`, 1);
    for (let i = 0; i < 5; i++) expect(p.where(`m${i}`)).toBe("main");
    p.onAccess("m0");
    p.onAccess("m2");
    expect([p.victim(), p.victim(), p.victim()]).toEqual(["m1", "m3", "m4"]);
    expect([p.frequency("m0"), p.frequency("m2")]).toEqual([0, 0]);
    expect([p.victim(), p.victim(), p.victim()]).toEqual(["m0", "m2", undefined]);
  });

  it("promotes from small at the threshold: 1 access with threshold 1, 2 with threshold 2", () => {
    for (const threshold of [1, 2]) {
      const hot: string[] = [];
      const p = new S3FifoPolicy({ capacityBytes: 10, threshold, onHot: (k) => hot.push(k) });
      for (const k of ["once", "twice", "pad"]) p.onInsert(k, 1);
      p.onAccess("once");
      p.onAccess("twice");
      p.onAccess("twice");
      expect(hot).toEqual(threshold === 1 ? ["once", "twice"] : ["twice"]);
      // Small is over its 1-byte share: victims come from small, accessed ones move to main.
      const first = p.victim();
      if (threshold === 1) {
        expect(first).toBe("pad");
        expect([p.where("once"), p.where("twice")]).toEqual(["main", "main"]);
      } else {
        expect(first).toBe("once");
        expect(p.where("once")).toBe("ghost");
        expect(p.victim()).toBe("pad");
        expect(p.where("twice")).toBe("main");
      }
    }
  });

  it("takes the victim from main when a promotion puts main over its share", () => {
    const p = new S3FifoPolicy({ capacityBytes: 10, smallRatio: 0.5 }); // small 5, main 5
    for (let i = 0; i < 5; i++) p.onInsert(`m${i}`, 1);
    for (let i = 0; i < 5; i++) p.victim();
    for (let i = 0; i < 5; i++) p.onInsert(`m${i}`, 1); // ghost hits: main holds 5 = its share
    for (let i = 0; i < 5; i++) p.onInsert(`s${i}`, 1);
    p.onAccess("s0");
    // small (5) is at its share: s0 is promoted, main is now 6 > 5, so main's oldest goes.
    expect(p.victim()).toBe("m0");
    expect(p.where("s0")).toBe("main");
  });

  it("handles an entry larger than the small share (it passes through small like any other)", () => {
    const p = new S3FifoPolicy({ capacityBytes: 100 });
    const h = new Harness(p, 100);
    h.ref("big", 60);
    h.ref("a", 30);
    h.ref("b", 30);
    expect(h.evicted).toEqual(["big"]);
    expect(h.used).toBe(60);
  });

  it("keeps zero-sized entries and a disabled ghost consistent", () => {
    const p = new S3FifoPolicy({ capacityBytes: 4, ghostRatio: 0 });
    const h = new Harness(p, 4);
    for (let i = 0; i < 100; i++) h.ref(`z${i}`, 0);
    for (let i = 0; i < 10; i++) h.ref(`k${i}`, 1);
    expect(h.used).toBe(4);
    expect(p.occupancy().ghost.count).toBe(0);
    expect(p.bytes).toBe(4);
  });
});

// --- Differential tests against naive models ------------------------------------------------

type Op = { t: "ref"; k: number; size: number } | { t: "access"; k: number } | { t: "remove"; k: number };
const opArb = (keys: number, maxSize: number): fc.Arbitrary<Op> =>
  fc.oneof(
    { weight: 6, arbitrary: fc.record({ t: fc.constant("ref" as const), k: fc.nat({ max: keys - 1 }), size: fc.nat({ max: maxSize }) }) },
    { weight: 2, arbitrary: fc.record({ t: fc.constant("access" as const), k: fc.nat({ max: keys - 1 }) }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant("remove" as const), k: fc.nat({ max: keys - 1 }) }) },
  );

/** Arrays, index 0 = head (newest). Written from the algorithm's description, not from the implementation. */
class NaiveS3Fifo implements EvictionPolicy {
  readonly name = "naive";
  S: { key: string; size: number; freq: number }[] = [];
  M: { key: string; size: number; freq: number }[] = [];
  G: { key: string; w: number }[] = [];
  hot: string[] = [];
  readonly smallCap: number;
  readonly mainCap: number;
  readonly ghostCap: number;
  constructor(
    cap: number,
    ratio: number,
    readonly thr: number,
  ) {
    this.smallCap = Math.floor(cap * ratio);
    this.mainCap = cap - this.smallCap;
    this.ghostCap = this.mainCap;
  }
  private static bytes(q: { size: number }[]) {
    return q.reduce((a, e) => a + e.size, 0);
  }
  onInsert(key: string, size: number) {
    const gi = this.G.findIndex((g) => g.key === key);
    if (gi >= 0) {
      this.G.splice(gi, 1);
      this.M.unshift({ key, size, freq: 0 });
      this.hot.push(key);
    } else this.S.unshift({ key, size, freq: 0 });
  }
  onAccess(key: string) {
    const e = this.S.find((x) => x.key === key) ?? this.M.find((x) => x.key === key);
    if (!e) return;
    if (this.S.includes(e) && e.freq === this.thr - 1) this.hot.push(key);
    e.freq = Math.min(3, e.freq + 1);
  }
  onRemove(key: string) {
    this.S = this.S.filter((x) => x.key !== key);
    this.M = this.M.filter((x) => x.key !== key);
  }
  victim(): string | undefined {
    for (;;) {
      if (this.S.length === 0 && this.M.length === 0) return undefined;
      if (this.S.length > 0 && (NaiveS3Fifo.bytes(this.S) >= this.smallCap || this.M.length === 0)) {
        const s = this.S.pop()!;
        if (s.freq >= this.thr) {
          s.freq = 0;
          this.M.unshift(s);
          if (NaiveS3Fifo.bytes(this.M) > this.mainCap) return this.evictM();
          continue;
        }
        this.G.unshift({ key: s.key, w: Math.max(1, s.size) });
        while (this.G.reduce((a, g) => a + g.w, 0) > this.ghostCap) this.G.pop();
        return s.key;
      }
      return this.evictM();
    }
  }
  private evictM(): string {
    for (;;) {
      const m = this.M.pop()!;
      if (m.freq >= 1) {
        m.freq--;
        this.M.unshift(m);
        continue;
      }
      return m.key;
    }
  }
}

class NaiveLru implements EvictionPolicy {
  readonly name = "naive-lru";
  order: string[] = []; // index 0 = least recent
  onInsert(key: string) {
    this.order = this.order.filter((k) => k !== key);
    this.order.push(key);
  }
  onAccess(key: string) {
    if (!this.order.includes(key)) return;
    this.onInsert(key);
  }
  onRemove(key: string) {
    this.order = this.order.filter((k) => k !== key);
  }
  victim() {
    return this.order.shift();
  }
}

function replay(ops: Op[], a: Harness, b: Harness) {
  for (const op of ops) {
    const key = `k${op.k}`;
    if (op.t === "ref") {
      if (op.size > a.capacity) continue; // tiers refuse what can never fit
      expect(a.ref(key, op.size)).toBe(b.ref(key, op.size));
    } else if (op.t === "access") {
      if (a.sizes.has(key)) {
        a.policy.onAccess(key);
        b.policy.onAccess(key);
      }
    } else {
      a.remove(key);
      b.remove(key);
    }
    expect(a.evicted).toEqual(b.evicted);
    expect(a.used).toBeLessThanOrEqual(a.capacity);
  }
}

describe("policies against naive models (random workloads)", () => {
  it("LRU evicts exactly what a naive LRU evicts", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 50 }), fc.array(opArb(24, 12), { maxLength: 300 }), (cap, ops) => {
        const lru = new LruPolicy();
        const a = new Harness(lru, cap);
        replay(ops, a, new Harness(new NaiveLru(), cap));
        expect(lru.size).toBe(a.sizes.size);
        expect(lru.bytes).toBe(a.used);
      }),
      { numRuns: 300 },
    );
  });

  it("S3-FIFO evicts, promotes and reports hot keys exactly as the naive model", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 60 }),
        fc.constantFrom(0.1, 0.3, 0.5),
        fc.integer({ min: 1, max: 3 }),
        fc.array(opArb(30, 10), { maxLength: 400 }),
        (cap, ratio, thr, ops) => {
          const hot: string[] = [];
          const s3 = new S3FifoPolicy({ capacityBytes: cap, smallRatio: ratio, threshold: thr, onHot: (k) => hot.push(k) });
          const naive = new NaiveS3Fifo(cap, ratio, thr);
          const a = new Harness(s3, cap);
          replay(ops, a, new Harness(naive, cap));
          expect(hot).toEqual(naive.hot);
          expect(s3.size).toBe(a.sizes.size);
          expect(s3.bytes).toBe(a.used);
          const occ = s3.occupancy();
          expect(occ.small.count).toBe(naive.S.length);
          expect(occ.main.count).toBe(naive.M.length);
          expect(occ.ghost.count).toBe(naive.G.length);
          expect(occ.ghost.bytes).toBeLessThanOrEqual(s3.ghostCapacityBytes);
          for (const e of naive.M) expect([s3.where(e.key), s3.frequency(e.key)]).toEqual(["main", e.freq]);
          for (const e of naive.S) expect([s3.where(e.key), s3.frequency(e.key)]).toEqual(["small", e.freq]);
          for (const g of naive.G) expect(s3.where(g.key)).toBe("ghost");
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("createEvictionPolicy", () => {
  it("builds each registered policy by name, and from a tier config", () => {
    expect(EVICTION_POLICY_NAMES).toEqual(["lru", "s3fifo"]);
    expect(createEvictionPolicy({ name: "lru", capacityBytes: 10 })).toBeInstanceOf(LruPolicy);
    const s3 = createEvictionPolicy({ name: "s3fifo", capacityBytes: 1000, smallRatio: 0.3, threshold: 2 }) as S3FifoPolicy;
    expect([s3.smallCapacityBytes, s3.threshold]).toEqual([300, 2]);
    expect(() => createEvictionPolicy({ name: "arc" } as never)).toThrow(/unknown eviction policy 'arc'/);
    const cfg = evictionConfigSchema.parse({ s3fifo: { smallRatio: 0.3 } });
    expect(cfg).toEqual({ policy: "s3fifo", s3fifo: { smallRatio: 0.3, threshold: 1 } });
    const p = policyFromConfig(cfg, 1000) as S3FifoPolicy;
    expect([p.name, p.smallCapacityBytes]).toEqual(["s3fifo", 300]);
    expect(policyFromConfig(evictionConfigSchema.parse({ policy: "lru" }), 1000).name).toBe("lru");
  });
});
