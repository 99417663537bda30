/**
 * The consistent-hash ring: balanced ownership, movement of ≈ 1/n of the keys (and only to or
 * from the changed server) on membership changes, distinct replicas, weights, determinism.
 */
import { createHash } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { HashRing, keyPosition } from "../../../dataplane/kvcache/ring/hash-ring";

const servers = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `10.0.0.${from + i + 1}:7400`);
const KEYS = Array.from({ length: 50_000 }, (_, i) => createHash("sha256").update(`chunk-${i}`).digest("hex"));

function shares(ring: HashRing, keys = KEYS): Map<string, number> {
  const m = new Map<string, number>();
  for (const k of keys) {
    const o = ring.owner(k) as string;
    m.set(o, (m.get(o) ?? 0) + 1);
  }
  return m;
}

describe("HashRing", () => {
  it("spreads keys evenly over the servers (160 virtual nodes each)", () => {
    for (const n of [3, 8, 16]) {
      const ring = new HashRing(servers(n));
      const counts = [...shares(ring).values()];
      expect(counts).toHaveLength(n);
      const mean = KEYS.length / n;
      for (const c of counts) {
        expect(c / mean).toBeGreaterThan(0.75);
        expect(c / mean).toBeLessThan(1.25);
      }
    }
  });

  it("moves about 1/n of the keys when a server joins, all of them to the new server", () => {
    for (const n of [4, 9]) {
      const before = new HashRing(servers(n - 1));
      const after = new HashRing(servers(n));
      let moved = 0;
      for (const k of KEYS) {
        const a = before.owner(k);
        const b = after.owner(k);
        if (a !== b) {
          moved++;
          expect(b).toBe(servers(n)[n - 1]);
        }
      }
      const fraction = moved / KEYS.length;
      expect(fraction).toBeGreaterThan(0.6 / n);
      expect(fraction).toBeLessThan(1.4 / n);
    }
  });

  it("moves exactly the leaving server's keys when one leaves (setMembers)", () => {
    const ring = new HashRing(servers(6));
    const owners = KEYS.map((k) => ring.owner(k));
    const leaving = servers(6)[2] as string;
    ring.setMembers(servers(6).filter((s) => s !== leaving));
    let moved = 0;
    KEYS.forEach((k, i) => {
      const now = ring.owner(k);
      if (owners[i] === leaving) {
        expect(now).not.toBe(leaving);
        moved++;
      } else expect(now).toBe(owners[i]);
    });
    expect(moved / KEYS.length).toBeGreaterThan(0.6 / 6);
    expect(moved / KEYS.length).toBeLessThan(1.4 / 6);
  });

  it("does not depend on the order members are listed in", () => {
    const a = new HashRing(servers(5));
    const b = new HashRing([...servers(5)].reverse());
    for (const k of KEYS.slice(0, 5000)) expect(a.owner(k)).toBe(b.owner(k));
  });

  it("gives r distinct replicas, owner first, and no more than there are servers", () => {
    const ring = new HashRing(servers(5));
    for (const k of KEYS.slice(0, 2000)) {
      const r = ring.replicas(k, 3);
      expect(r).toHaveLength(3);
      expect(new Set(r).size).toBe(3);
      expect(r[0]).toBe(ring.owner(k));
    }
    expect(ring.replicas(KEYS[0] as string, 9)).toHaveLength(5);
    expect(ring.replicas(KEYS[0] as string, 0)).toEqual([]);
    expect(new HashRing().owner(KEYS[0] as string)).toBeUndefined();
    expect(new HashRing().replicas(KEYS[0] as string, 2)).toEqual([]);
  });

  it("keeps replica sets stable: a join changes at most one member of a key's replica set", () => {
    const before = new HashRing(servers(6));
    const after = new HashRing(servers(7));
    for (const k of KEYS.slice(0, 5000)) {
      const a = before.replicas(k, 2);
      const b = after.replicas(k, 2);
      const kept = b.filter((s) => a.includes(s));
      expect(kept.length).toBeGreaterThanOrEqual(1);
      for (const s of b) if (!a.includes(s)) expect(s).toBe(servers(7)[6]);
    }
  });

  it("honours weights, and a re-weighting moves keys only to or from that server", () => {
    const heavy = servers(4)[0] as string;
    const ring = new HashRing([{ id: heavy, weight: 2 }, ...servers(4).slice(1)]);
    const counts = shares(ring);
    const light = KEYS.length / 5;
    expect((counts.get(heavy) as number) / (2 * light)).toBeGreaterThan(0.8);
    expect((counts.get(heavy) as number) / (2 * light)).toBeLessThan(1.2);
    const plain = new HashRing(servers(4));
    for (const k of KEYS.slice(0, 5000)) {
      const a = plain.owner(k);
      const b = ring.owner(k);
      if (a !== b) expect(b).toBe(heavy);
    }
  });

  it("rejects duplicate members, bad weights and bad virtual-node counts", () => {
    expect(() => new HashRing(["a:1", "a:1"])).toThrow(/duplicate/);
    expect(() => new HashRing([{ id: "a:1", weight: 0 }])).toThrow(/weight/);
    expect(() => new HashRing([], { virtualNodes: 0 })).toThrow(RangeError);
    expect(() => new HashRing([""])).toThrow(RangeError);
  });

  it("places arbitrary strings too, and hex keys by their own leading bits", () => {
    expect(keyPosition("ab".repeat(32))).toBe(Number.parseInt("ab".repeat(6), 16));
    const ring = new HashRing(servers(3));
    fc.assert(
      fc.property(fc.string(), fc.integer({ min: 1, max: 5 }), (s, r) => {
        const reps = ring.replicas(s, r);
        expect(reps).toHaveLength(Math.min(r, 3));
        expect(reps[0]).toBe(ring.owner(s));
      }),
    );
  });

  it("looks up fast (binary search over the points)", () => {
    const ring = new HashRing(servers(64));
    const t0 = performance.now();
    let x = 0;
    for (let i = 0; i < 200_000; i++) x += (ring.owner(KEYS[i % KEYS.length] as string) as string).length;
    expect(x).toBeGreaterThan(0);
    expect(performance.now() - t0).toBeLessThan(2_000);
  });
});
