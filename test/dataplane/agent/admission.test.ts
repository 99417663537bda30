/**
 * Per-engine admission: a concurrency cap, a bounded queue served by priority then arrival, and no
 * leaked slots whatever the order of releases and client aborts.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { Admission, type Release } from "../../../dataplane/agent/admission";
import { ApiError } from "../../../protocol/openai-error";

const never = () => new AbortController().signal;
const tick = () => new Promise<void>((r) => setImmediate(r));

/** Tracks whether a promise has settled, without awaiting it. */
function track<T>(p: Promise<T>): { settled: () => boolean; value: () => T | undefined; error: () => unknown } {
  let done = false;
  let value: T | undefined;
  let error: unknown;
  p.then(
    (v) => {
      done = true;
      value = v;
    },
    (e: unknown) => {
      done = true;
      error = e;
    },
  );
  return { settled: () => done, value: () => value, error: () => error };
}

describe("Admission", () => {
  it("admits up to maxConcurrency at once, then queues", async () => {
    const a = new Admission(2, 10);
    await a.acquire(never());
    await a.acquire(never());
    expect(a.running).toBe(2);
    const third = track(a.acquire(never()));
    await tick();
    expect(third.settled()).toBe(false);
    expect(a.waiting).toBe(1);
    expect(a.running).toBe(2);
  });

  it("hands freed slots to waiters in FIFO order", async () => {
    const a = new Admission(1, 10);
    const first = await a.acquire(never());
    const order: number[] = [];
    const waiters = [1, 2, 3].map((n) =>
      a.acquire(never()).then((release) => {
        order.push(n);
        return release;
      }),
    );
    expect(a.waiting).toBe(3);
    first();
    const r1 = await waiters[0]!;
    expect(a.running).toBe(1);
    expect(a.waiting).toBe(2);
    r1();
    (await waiters[1]!)();
    (await waiters[2]!)();
    expect(order).toEqual([1, 2, 3]);
    expect(a.running).toBe(0);
    expect(a.waiting).toBe(0);
  });

  it("serves waiters by priority (lower first, as vLLM), first come first served within one", async () => {
    const a = new Admission(1, 10);
    const first = await a.acquire(never());
    const order: string[] = [];
    const waiters = (
      [
        ["low-1", 1],
        ["normal-1", 0],
        ["low-2", 1],
        ["high-1", -1],
        ["unmarked", undefined],
        ["high-2", -1],
      ] as const
    ).map(([name, priority]) =>
      a.acquire(never(), priority).then((release) => {
        order.push(name);
        // Each grantee runs briefly and hands the slot on.
        setImmediate(release);
      }),
    );
    first();
    await Promise.all(waiters);
    await tick();
    expect(order).toEqual(["high-1", "high-2", "normal-1", "unmarked", "low-1", "low-2"]);
    expect(a.running).toBe(0);
  });

  it("refuses beyond maxWaiting with 503 node_overloaded and a retry-after", async () => {
    const a = new Admission(1, 2);
    await a.acquire(never());
    void a.acquire(never());
    void a.acquire(never());
    const err = await a.acquire(never()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 503, code: "node_overloaded", type: "overloaded_error" });
    expect((err as ApiError).headers["retry-after"]).toBe("1");
    expect(a.waiting).toBe(2);
  });

  it("maxWaiting 0 refuses at once when full", async () => {
    const a = new Admission(1, 0);
    await a.acquire(never());
    await expect(a.acquire(never())).rejects.toMatchObject({ status: 503 });
  });

  it("an already-aborted signal is refused without taking a slot", async () => {
    const a = new Admission(1, 1);
    const ac = new AbortController();
    ac.abort();
    await expect(a.acquire(ac.signal)).rejects.toMatchObject({ status: 499, code: "client_closed" });
    expect(a.running).toBe(0);
  });

  it("an aborted waiter leaves the queue, and its place is not leaked", async () => {
    const a = new Admission(1, 5);
    const holder = await a.acquire(never());
    const ac = new AbortController();
    const aborted = a.acquire(ac.signal);
    const next = track(a.acquire(never()));
    expect(a.waiting).toBe(2);
    ac.abort();
    await expect(aborted).rejects.toMatchObject({ status: 499, code: "client_closed" });
    expect(a.waiting).toBe(1);
    holder();
    await tick();
    // The slot went to the waiter behind the aborted one, not to the aborted one.
    expect(next.settled()).toBe(true);
    expect(a.running).toBe(1);
    next.value()!();
    expect(a.running).toBe(0);
  });

  it("an abort after the slot was granted does nothing to the queue", async () => {
    const a = new Admission(1, 5);
    const holder = await a.acquire(never());
    const ac = new AbortController();
    const granted = a.acquire(ac.signal);
    holder();
    const release = await granted;
    ac.abort();
    expect(a.running).toBe(1);
    release();
    expect(a.running).toBe(0);
  });

  it("release is idempotent: a double release frees one slot, not two", async () => {
    const a = new Admission(1, 5);
    const r = await a.acquire(never());
    const w1 = track(a.acquire(never()));
    const w2 = track(a.acquire(never()));
    r();
    r();
    r();
    await tick();
    expect(w1.settled()).toBe(true);
    expect(w2.settled()).toBe(false);
    expect(a.running).toBe(1);
    expect(a.waiting).toBe(1);
    w1.value()!();
    w1.value()!();
    await tick();
    expect(w2.settled()).toBe(true);
    w2.value()!();
    w2.value()!();
    expect(a.running).toBe(0);
  });

  it("property: any interleaving of acquires, releases and aborts keeps the counts exact", async () => {
    type Op = { kind: "acquire"; priority: number } | { kind: "release"; pick: number } | { kind: "abort"; pick: number };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.integer({ min: -1, max: 1 }).map<Op>((priority) => ({ kind: "acquire", priority })),
      fc.nat().map<Op>((pick) => ({ kind: "release", pick })),
      fc.nat().map<Op>((pick) => ({ kind: "abort", pick })),
    );
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 0, max: 4 }), fc.array(op, { maxLength: 60 }), async (cap, maxWaiting, ops) => {
        const a = new Admission(cap, maxWaiting);
        const holding: Release[] = [];
        const waiting: Array<{ ac: AbortController; p: ReturnType<typeof track<Release>>; priority: number; seq: number; queued: boolean }> = [];
        let seq = 0;
        const settle = async () => {
          // Freed slots must go to the most urgent priority first, then the oldest.
          const due = waiting.filter((w) => w.queued && !w.ac.signal.aborted).sort((x, y) => x.priority - y.priority || x.seq - y.seq);
          await tick();
          const granted: typeof waiting = [];
          for (let i = waiting.length - 1; i >= 0; i--) {
            const w = waiting[i]!;
            if (!w.p.settled()) {
              w.queued = true;
              continue;
            }
            waiting.splice(i, 1);
            const r = w.p.value();
            if (r) {
              holding.push(r);
              if (w.queued) granted.push(w);
            }
          }
          expect(granted.map((w) => w.seq).sort((x, y) => x - y)).toEqual(due.slice(0, granted.length).map((w) => w.seq).sort((x, y) => x - y));
        };
        for (const o of ops) {
          if (o.kind === "acquire") {
            const ac = new AbortController();
            const p = track(a.acquire(ac.signal, o.priority));
            waiting.push({ ac, p, priority: o.priority, seq: seq++, queued: false });
          } else if (o.kind === "release" && holding.length > 0) {
            const [r] = holding.splice(o.pick % holding.length, 1);
            r!();
            r!(); // idempotent
          } else if (o.kind === "abort" && waiting.length > 0) {
            waiting[o.pick % waiting.length]!.ac.abort();
          }
          await settle();
          expect(a.running).toBe(holding.length);
          expect(a.running).toBeLessThanOrEqual(cap);
          expect(a.waiting).toBe(waiting.length);
          expect(a.waiting).toBeLessThanOrEqual(maxWaiting);
          // Nobody waits while a slot is free.
          if (a.waiting > 0) expect(a.running).toBe(cap);
        }
        // Drain: every release hands the slot on until nobody is left.
        while (holding.length > 0) {
          for (const r of holding.splice(0)) r();
          await settle();
        }
        expect(waiting).toHaveLength(0);
        expect(a.running).toBe(0);
        expect(a.waiting).toBe(0);
      }),
      { numRuns: 200 },
    );
  });
});
