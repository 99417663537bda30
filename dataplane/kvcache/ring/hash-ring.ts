/**
 * Consistent hashing of KV chunk keys onto L2 cache servers (ketama-style continuous ring).
 *
 * Each member (a `host:port` id) owns `round(virtualNodes × weight)` points, at positions taken
 * from SHA-256(`<id>#<i>`); a key belongs to the first point clockwise from its own position. A
 * position is 48 bits: a KvKey is already a SHA-256, so its first 12 hex characters are used as
 * they are; other strings are hashed first.
 *
 * Because a member's points depend only on its id (and weight), a membership change moves only
 * the keys whose owner changed: adding the n-th server moves ≈ 1/n of the keys, all of them to the
 * new server; removing one moves exactly its keys. With 160 points per server the load of a
 * server has a standard deviation of ≈ 5–11% of the mean (measured, 3–64 servers), and the most
 * loaded of 16–64 servers holds ≈ 1.25× the mean; raise `virtualNodes` for tighter balance.
 *
 * AIBrix (reference/aibrix.md §4.4) maps keys onto 4096 fixed slots with 100 virtual nodes per
 * pod; the continuous ring here needs no slot table and gives the same movement bound.
 *
 * Lookups are a binary search over the sorted points: O(log(n × virtualNodes)).
 */
import { createHash } from "node:crypto";

export interface RingMember {
  /** Server id, `host:port` in the L2 client. */
  id: string;
  /** Relative capacity (default 1): a weight-2 server owns about twice the keys. */
  weight?: number;
}

export interface HashRingOptions {
  /** Points per member of weight 1 (default 160). */
  virtualNodes?: number;
}

const POSITION_HEX = 12; // 48 bits: exact in a double, ample for ≤ 10^6 points
const KEY_RE = /^[0-9a-f]{64}$/;

function hashPosition(text: string): number {
  return Number.parseInt(createHash("sha256").update(text).digest("hex").slice(0, POSITION_HEX), 16);
}

/** Where a key sits on the ring. */
export function keyPosition(key: string): number {
  return KEY_RE.test(key) ? Number.parseInt(key.slice(0, POSITION_HEX), 16) : hashPosition(key);
}

export class HashRing {
  readonly virtualNodes: number;
  private members: RingMember[] = [];
  /** Sorted point positions, and for each the index of its member in `members`. */
  private positions = new Float64Array(0);
  private owners = new Uint32Array(0);
  /** Cache of each member's points, so a membership change re-hashes only new members. */
  private readonly pointCache = new Map<string, number[]>();

  constructor(members: readonly (string | RingMember)[] = [], opts: HashRingOptions = {}) {
    this.virtualNodes = opts.virtualNodes ?? 160;
    if (!Number.isInteger(this.virtualNodes) || this.virtualNodes < 1 || this.virtualNodes > 10_000) throw new RangeError("virtualNodes must be an integer in 1..10000");
    this.setMembers(members);
  }

  get size(): number {
    return this.members.length;
  }

  /** The current members, in the order given. */
  memberIds(): string[] {
    return this.members.map((m) => m.id);
  }

  /**
   * Replaces the membership. Keys move only to or from members that were added, removed, or
   * re-weighted. Duplicate ids are an error; weights must be > 0.
   */
  setMembers(members: readonly (string | RingMember)[]): void {
    const next: RingMember[] = members.map((m) => (typeof m === "string" ? { id: m, weight: 1 } : { id: m.id, weight: m.weight ?? 1 }));
    const seen = new Set<string>();
    for (const m of next) {
      if (m.id.length === 0) throw new RangeError("a ring member needs a non-empty id");
      if (seen.has(m.id)) throw new RangeError(`duplicate ring member '${m.id}'`);
      if (!(typeof m.weight === "number" && Number.isFinite(m.weight) && m.weight > 0)) throw new RangeError(`ring member '${m.id}' has an invalid weight`);
      seen.add(m.id);
    }
    const points: { pos: number; owner: number }[] = [];
    next.forEach((m, owner) => {
      const count = Math.max(1, Math.round(this.virtualNodes * (m.weight ?? 1)));
      for (const pos of this.pointsOf(m.id, count)) points.push({ pos, owner });
    });
    // Ties (astronomically rare at 48 bits) are broken by member id so every client agrees.
    points.sort((a, b) => a.pos - b.pos || ((next[a.owner] as RingMember).id < (next[b.owner] as RingMember).id ? -1 : 1));
    this.members = next;
    this.positions = Float64Array.from(points, (p) => p.pos);
    this.owners = Uint32Array.from(points, (p) => p.owner);
    for (const id of this.pointCache.keys()) if (!seen.has(id)) this.pointCache.delete(id);
  }

  /** The member that owns `key`, or undefined when the ring is empty. */
  owner(key: string): string | undefined {
    if (this.positions.length === 0) return undefined;
    return (this.members[this.owners[this.firstPointAt(keyPosition(key))] as number] as RingMember).id;
  }

  /**
   * Up to `r` distinct members for `key`: its owner first, then the next distinct owners clockwise
   * (where replicas of the key live). Fewer than `r` when the ring has fewer members.
   */
  replicas(key: string, r: number): string[] {
    const want = Math.min(Math.max(0, Math.floor(r)), this.members.length);
    const out: string[] = [];
    if (want === 0) return out;
    const taken = new Uint8Array(this.members.length);
    const n = this.positions.length;
    let i = this.firstPointAt(keyPosition(key));
    for (let steps = 0; steps < n && out.length < want; steps++, i = i + 1 === n ? 0 : i + 1) {
      const owner = this.owners[i] as number;
      if (taken[owner] === 0) {
        taken[owner] = 1;
        out.push((this.members[owner] as RingMember).id);
      }
    }
    return out;
  }

  /** Index of the first point at or after `pos`, wrapping to 0. */
  private firstPointAt(pos: number): number {
    const p = this.positions;
    let lo = 0;
    let hi = p.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((p[mid] as number) < pos) lo = mid + 1;
      else hi = mid;
    }
    return lo === p.length ? 0 : lo;
  }

  private pointsOf(id: string, count: number): number[] {
    let pts = this.pointCache.get(id);
    if (pts === undefined || pts.length < count) {
      const start = pts?.length ?? 0;
      pts = pts ?? [];
      for (let i = start; i < count; i++) pts.push(hashPosition(`${id}#${i}`));
      this.pointCache.set(id, pts);
    }
    return pts.slice(0, count);
  }
}
