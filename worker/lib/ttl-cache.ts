/**
 * A small in-isolate cache with per-entry expiry and a size cap. Used so that key, model and node
 * lookups cost a D1 query only once per TTL per isolate; the TTL is the bound on how long a
 * revocation takes to reach every isolate.
 */
export class TtlCache<V> {
  private readonly entries = new Map<string, { value: V; expiresAt: number }>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries = 10_000,
  ) {}

  get(key: string, now = Date.now()): V | undefined {
    const hit = this.entries.get(key);
    if (!hit) return undefined;
    if (hit.expiresAt <= now) {
      this.entries.delete(key);
      return undefined;
    }
    return hit.value;
  }

  set(key: string, value: V, now = Date.now(), ttlMs = this.ttlMs): void {
    if (this.entries.size >= this.maxEntries && !this.entries.has(key)) {
      // Maps iterate in insertion order: dropping the first entry drops the oldest write.
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    this.entries.set(key, { value, expiresAt: now + ttlMs });
  }

  delete(key: string): void {
    this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
  }

  /**
   * Returns the cached value or loads, caches and returns it. Concurrent misses each load: an
   * isolate serves many requests, and a promise one request creates must not be awaited by
   * another — its continuation would run in (or be cancelled with) the first request's context,
   * which fails the second with "Cannot perform I/O on behalf of a different request" or leaves it
   * hung (seen under load: bench/results/load). The TTL already bounds misses to a few per key.
   */
  async getOrLoad(key: string, load: () => Promise<V>, now = Date.now()): Promise<V> {
    const hit = this.get(key, now);
    if (hit !== undefined) return hit;
    const value = await load();
    // Dated from before the load: a revocation made meanwhile is still picked up within the TTL.
    this.set(key, value, now);
    return value;
  }
}
