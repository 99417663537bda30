import { describe, expect, it } from "vitest";
import { TtlCache } from "../../worker/lib/ttl-cache";

describe("TtlCache", () => {
  it("never hands one request's pending load to another: concurrent misses each load", async () => {
    // A shared promise would run the second request's continuation in the first one's context
    // (workerd: "Cannot perform I/O on behalf of a different request", or a hung request).
    const cache = new TtlCache<number>(1_000);
    let loads = 0;
    const release: Array<() => void> = [];
    const load = () =>
      new Promise<number>((resolve) => {
        loads++;
        release.push(() => resolve(loads));
      });
    const a = cache.getOrLoad("k", load, 0);
    const b = cache.getOrLoad("k", load, 0);
    expect(loads).toBe(2);
    for (const r of release) r();
    expect(await a).toBe(2);
    expect(await b).toBe(2);
    // Once loaded, hits cost nothing until the entry expires.
    expect(await cache.getOrLoad("k", load, 500)).toBe(2);
    expect(loads).toBe(2);
    await Promise.all([cache.getOrLoad("k", async () => ++loads, 2_000)]);
    expect(loads).toBe(3);
  });
});
