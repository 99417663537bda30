/**
 * The paged KV cache on its own: hashing, ref-counted sharing, LRU eviction order, duplicate blocks,
 * usage as vLLM computes it, events only while someone records.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { BlockTable, blockHashes, hashBlock, KvCache, ROOT_HASH } from "../../../dataplane/engines/sim/kv-cache";

const seq = (n: number, from = 0) => Array.from({ length: n }, (_, i) => from + i);

describe("block hashes", () => {
  it("chain from the parent, cover full blocks only, and fit in a JSON-safe integer", () => {
    const tokens = seq(40);
    const h = blockHashes(tokens, 16);
    expect(h).toHaveLength(2);
    expect(h[0]).toBe(hashBlock(ROOT_HASH, tokens, 0, 16));
    expect(h[1]).toBe(hashBlock(h[0]!, tokens, 16, 16));
    expect(Number.isSafeInteger(h[0])).toBe(true);
    // Same tokens under another parent hash differently; one token changes everything after it.
    expect(hashBlock(12345, tokens, 16, 16)).not.toBe(h[1]);
    const changed = [...tokens];
    changed[3] = 999;
    const h2 = blockHashes(changed, 16);
    expect(h2[0]).not.toBe(h[0]);
    expect(h2[1]).not.toBe(h[1]);
  });

  it("rarely collide", () => {
    const seen = new Set<number>();
    for (let i = 0; i < 50_000; i++) seen.add(hashBlock(ROOT_HASH, seq(16, i * 16), 0, 16));
    expect(seen.size).toBe(50_000);
  });
});

describe("BlockTable", () => {
  it("behaves like a Map under random sets and deletes (colliding keys included)", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 3 })), { maxLength: 300 }), (ops) => {
        const table = new BlockTable(16);
        const map = new Map<number, number>();
        ops.forEach(([set, k, hi], i) => {
          // Keys that share their low 32 bits collide on purpose.
          const key = hi * 4294967296 + k;
          if (set && map.size < 30) {
            table.set(key, i);
            map.set(key, i);
          } else {
            table.delete(key);
            map.delete(key);
          }
          expect(table.size).toBe(map.size);
        });
        for (let k = 0; k <= 40; k++) for (let hi = 0; hi <= 3; hi++) expect(table.get(hi * 4294967296 + k)).toBe(map.get(hi * 4294967296 + k) ?? -1);
      }),
      { numRuns: 300 },
    );
  });
});

describe("KvCache", () => {
  it("shares cached blocks by reference count and frees them to the LRU tail", () => {
    const kv = new KvCache({ numBlocks: 8, blockSize: 4 });
    const tokens = seq(12);
    const hashes = blockHashes(tokens, 4);
    const a: number[] = [];
    kv.allocate(a, 3);
    kv.store(a, 0, 3, hashes, tokens);
    expect(kv.usage()).toBeCloseTo(3 / 8);
    expect(kv.lookup(hashes, 3)).toBe(3);
    expect(kv.lookupFree).toBe(0);
    const b: number[] = [];
    kv.takeLookup(b);
    expect(b).toEqual(a);
    expect(kv.usage()).toBeCloseTo(3 / 8); // shared, not copied
    kv.release(a);
    expect(kv.freeBlocks).toBe(5);
    kv.release(b);
    expect(kv.freeBlocks).toBe(8);
    expect(kv.usage()).toBe(0);
    expect(kv.cachedBlocks).toBe(3); // still cached, evictable
    expect(kv.lookup(hashes, 3)).toBe(3);
    expect(kv.lookupFree).toBe(3);
  });

  it("evicts least recently freed first and reports BlockRemoved only while recording", () => {
    const kv = new KvCache({ numBlocks: 4, blockSize: 2 });
    const tokens = seq(8);
    const hashes = blockHashes(tokens, 2);
    const held: number[] = [];
    kv.allocate(held, 4);
    kv.store(held, 0, 4, hashes, tokens);
    kv.release(held); // free queue: block 3, 2, 1, 0 (tail first)
    const next: number[] = [];
    kv.allocate(next, 1);
    expect(kv.takeEvents()).toEqual([]);
    expect(kv.has(hashes[3]!)).toBe(false);
    kv.recordEvents = true;
    kv.allocate(next, 2);
    expect(kv.takeEvents()).toEqual([{ type: "BlockRemoved", block_hashes: [hashes[2], hashes[1]], medium: "GPU" }]);
    expect(kv.lookup(hashes, 4)).toBe(1);
    expect(() => kv.allocate(next, 5)).toThrow();
  });

  it("leaves a duplicate block uncached and refuses a reset while blocks are held", () => {
    const kv = new KvCache({ numBlocks: 4, blockSize: 2 });
    kv.recordEvents = true;
    const tokens = seq(2);
    const hashes = blockHashes(tokens, 2);
    const a: number[] = [];
    const b: number[] = [];
    kv.allocate(a, 1);
    kv.allocate(b, 1);
    kv.store(a, 0, 1, hashes, tokens);
    kv.store(b, 0, 1, hashes, tokens);
    const events = kv.takeEvents();
    expect(events).toHaveLength(1);
    expect(events[0]).toEqual({ type: "BlockStored", block_hashes: [hashes[0]], parent_block_hash: null, token_ids: [0, 1], block_size: 2, lora_id: null, medium: "GPU" });
    expect(kv.reset()).toBe(false);
    kv.release(a);
    kv.release(b);
    expect(kv.reset()).toBe(true);
    expect(kv.takeEvents()).toEqual([{ type: "AllBlocksCleared" }]);
    expect(kv.cachedBlocks).toBe(0);
  });

  it("finds nothing with prefix caching off", () => {
    const kv = new KvCache({ numBlocks: 4, blockSize: 2, enablePrefixCaching: false });
    const tokens = seq(4);
    const hashes = blockHashes(tokens, 2);
    const a: number[] = [];
    kv.allocate(a, 2);
    kv.store(a, 0, 2, hashes, tokens);
    expect(kv.lookup(hashes, 2)).toBe(0);
  });
});
