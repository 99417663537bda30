/**
 * The two clocks: the discrete-event VirtualClock (order, cancel, runUntil) and the scaled RealClock.
 */
import { describe, expect, it } from "vitest";
import { RealClock, VirtualClock } from "../../../dataplane/engines/sim/clock";

describe("VirtualClock", () => {
  it("runs events in time order, ties in scheduling order, without waiting", () => {
    const clock = new VirtualClock();
    const seen: string[] = [];
    clock.schedule(30, () => seen.push(`c@${clock.now()}`));
    clock.schedule(10, () => seen.push(`a@${clock.now()}`));
    clock.schedule(10, () => {
      seen.push(`b@${clock.now()}`);
      clock.schedule(clock.now() + 5, () => seen.push(`d@${clock.now()}`));
    });
    const t0 = performance.now();
    expect(clock.run()).toBe(30);
    expect(performance.now() - t0).toBeLessThan(50);
    expect(seen).toEqual(["a@10", "b@10", "d@15", "c@30"]);
  });

  it("cancels, clamps past times to now, and runs up to a time", () => {
    const clock = new VirtualClock(100);
    const seen: number[] = [];
    const t = clock.schedule(150, () => seen.push(150));
    clock.schedule(50, () => seen.push(clock.now()));
    clock.schedule(300, () => seen.push(300));
    clock.cancel(t);
    clock.runUntil(200);
    expect(seen).toEqual([100]);
    expect(clock.now()).toBe(200);
    clock.run();
    expect(seen).toEqual([100, 300]);
  });

  it("keeps a heap order over many random events", () => {
    const clock = new VirtualClock();
    const times: number[] = [];
    let x = 1;
    for (let i = 0; i < 5000; i++) {
      x = (x * 48271) % 2147483647;
      const at = x % 10_000;
      clock.schedule(at, () => times.push(clock.now()));
    }
    clock.run();
    expect(times).toHaveLength(5000);
    for (let i = 1; i < times.length; i++) expect(times[i]!).toBeGreaterThanOrEqual(times[i - 1]!);
  });
});

describe("RealClock", () => {
  it("runs model time timeScale times faster than the wall clock", async () => {
    const clock = new RealClock(20);
    const wall0 = performance.now();
    const model0 = clock.now();
    await new Promise<void>((resolve) => clock.schedule(model0 + 400, resolve));
    const wall = performance.now() - wall0;
    expect(clock.now() - model0).toBeGreaterThanOrEqual(399);
    expect(wall).toBeGreaterThanOrEqual(18); // 400 ms / 20
    // Unscaled it would take 400 ms; the rest is timer delay, loose for a loaded box.
    expect(wall).toBeLessThan(350);
  });

  it("cancels timers and rejects a bad scale", async () => {
    const clock = new RealClock(1);
    let fired = false;
    const t = clock.schedule(clock.now() + 5, () => {
      fired = true;
    });
    clock.cancel(t);
    await new Promise((r) => setTimeout(r, 20));
    expect(fired).toBe(false);
    expect(() => new RealClock(0)).toThrow(RangeError);
  });
});
