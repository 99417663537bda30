/**
 * Replays a chunk trace through a byte-bounded cache driven by an eviction policy, the way
 * DramTier drives it (evict until the new entry fits, then insert), without storing any bytes.
 *
 * Per request:
 * 1. look up every chunk of the prompt in the cache as it is before the request: a chunk found is
 *    a chunk hit; the leading run of found chunks is what can actually be loaded (a chunk behind a
 *    gap is useless: its parents must be recomputed, and recomputing them recomputes it), so those
 *    are the prefix hits;
 * 2. then tell the policy, in `order` ("forward": chunk 0 first, as a naive agent would; "reverse":
 *    the last chunk first): a found chunk is an access, a missing one an insert (the engine
 *    computed it and the agent stores it).
 *
 * Hit ratios are per chunk (reference/kvcache.md §6: count hits per chunk, not per request), by
 * count (object) and weighted by chunk bytes.
 */
import { createEvictionPolicy, type EvictionPolicyConfig } from "../../../dataplane/kvcache/eviction/index";
import type { Trace } from "./traces";

export type Order = "forward" | "reverse";

export interface SimResult {
  accesses: number;
  chunkHits: number;
  prefixHits: number;
  accessedBytes: number;
  chunkHitBytes: number;
  prefixHitBytes: number;
  evictions: number;
  objectHitRatio: number;
  byteHitRatio: number;
  prefixObjectHitRatio: number;
  prefixByteHitRatio: number;
  /** Chunk hits that were unusable because an earlier chunk of the same prompt was missing. */
  orphanHitShare: number;
  /** Wall time of the replay and per chunk access (policy + map work). */
  ms: number;
  nsPerAccess: number;
}

export function simulate(trace: Trace, policyConfig: EvictionPolicyConfig, order: Order): SimResult {
  const capacity = policyConfig.capacityBytes;
  const policy = createEvictionPolicy(policyConfig);
  const sizes = trace.chunkBytes;
  const names = Array.from({ length: sizes.length }, (_, i) => `c${i}`);
  const resident = new Uint8Array(sizes.length);
  const idOf = new Map<string, number>(names.map((n, i) => [n, i]));
  let used = 0;
  let accesses = 0;
  let chunkHits = 0;
  let prefixHits = 0;
  let accessedBytes = 0;
  let chunkHitBytes = 0;
  let prefixHitBytes = 0;
  let evictions = 0;

  const touch = (id: number) => {
    const key = names[id] as string;
    if (resident[id]) {
      policy.onAccess(key);
      return;
    }
    const size = sizes[id] as number;
    if (size > capacity) return;
    while (used + size > capacity) {
      const v = policy.victim();
      if (v === undefined) throw new Error("policy empty while the cache is over budget");
      const vid = idOf.get(v) as number;
      if (!resident[vid]) throw new Error(`policy evicted ${v}, which is not resident`);
      resident[vid] = 0;
      used -= sizes[vid] as number;
      evictions++;
    }
    resident[id] = 1;
    used += size;
    policy.onInsert(key, size);
  };

  const t0 = performance.now();
  for (const req of trace.requests) {
    let inPrefix = true;
    for (let i = 0; i < req.length; i++) {
      const id = req[i] as number;
      const b = sizes[id] as number;
      accesses++;
      accessedBytes += b;
      if (resident[id]) {
        chunkHits++;
        chunkHitBytes += b;
        if (inPrefix) {
          prefixHits++;
          prefixHitBytes += b;
        }
      } else inPrefix = false;
    }
    if (order === "forward") for (let i = 0; i < req.length; i++) touch(req[i] as number);
    else for (let i = req.length - 1; i >= 0; i--) touch(req[i] as number);
    if (used > capacity) throw new Error("over budget");
  }
  const ms = performance.now() - t0;
  return {
    accesses,
    chunkHits,
    prefixHits,
    accessedBytes,
    chunkHitBytes,
    prefixHitBytes,
    evictions,
    objectHitRatio: chunkHits / accesses,
    byteHitRatio: chunkHitBytes / accessedBytes,
    prefixObjectHitRatio: prefixHits / accesses,
    prefixByteHitRatio: prefixHitBytes / accessedBytes,
    orphanHitShare: chunkHits === 0 ? 0 : (chunkHits - prefixHits) / chunkHits,
    ms,
    nsPerAccess: (ms * 1e6) / accesses,
  };
}
