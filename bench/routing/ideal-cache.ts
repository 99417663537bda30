/**
 * The prefix hit rate one pooled cache would get: a single LRU cache of blocks with the whole
 * cluster's KV capacity, seeing every request in arrival order. No placement can beat pooling
 * all the memory, so this is the reference a router's hit rate is held against.
 */
import type { RoutedRequest } from "./workloads";

export function idealPooledHitRate(requests: Iterable<RoutedRequest>, capacityTokens: number, blockSize = 16): number {
  const capacityBlocks = Math.floor(capacityTokens / blockSize);
  const lru = new Map<number, true>();
  let queried = 0;
  let hit = 0;
  for (const r of requests) {
    const hashes = r.blockHashes;
    queried += r.promptTokens.length;
    let i = 0;
    while (i < hashes.length && lru.has(hashes[i] as number)) i++;
    // Like an engine, the last prompt token is always computed.
    hit += Math.min(i * blockSize, r.promptTokens.length - 1);
    for (let k = hashes.length - 1; k >= 0; k--) {
      const h = hashes[k] as number;
      lru.delete(h);
      lru.set(h, true);
    }
    while (lru.size > capacityBlocks) lru.delete(lru.keys().next().value as number);
  }
  return queried > 0 ? hit / queried : 0;
}
