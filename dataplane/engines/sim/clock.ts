/**
 * Time for the engine emulator, in milliseconds of model time. Two clocks behind one interface:
 * `RealClock` follows the wall clock (optionally sped up by `timeScale`) and fires timers with
 * setTimeout; `VirtualClock` is a discrete-event clock: timers sit in a binary heap and `run()` jumps
 * from one to the next without waiting, so a cluster of engines can be simulated as fast as the CPU
 * allows.
 *
 * @example
 * ```ts
 * const clock = new VirtualClock();
 * clock.schedule(5, () => console.log(clock.now())); // 5
 * clock.run();
 * ```
 */

/** A scheduled callback; pass it to `cancel`. */
export interface Timer {
  readonly at: number;
}

export interface Clock {
  /** Current model time in ms. */
  now(): number;
  /** Runs `fn` at model time `atMs` (at once, asynchronously, if that is not in the future). */
  schedule(atMs: number, fn: () => void): Timer;
  cancel(timer: Timer): void;
}

interface RealTimer extends Timer {
  handle: ReturnType<typeof setTimeout> | ReturnType<typeof setImmediate> | undefined;
  immediate: boolean;
}

/**
 * The wall clock, sped up `timeScale` times: with timeScale 10, one real second is ten seconds of
 * model time, and a timer set 100 ms of model time ahead fires after 10 ms.
 */
export class RealClock implements Clock {
  private readonly origin = performance.now();

  constructor(readonly timeScale = 1) {
    if (!(timeScale > 0) || !Number.isFinite(timeScale)) throw new RangeError(`timeScale must be a positive number, got ${timeScale}`);
  }

  now(): number {
    return (performance.now() - this.origin) * this.timeScale;
  }

  schedule(atMs: number, fn: () => void): Timer {
    const timer: RealTimer = { at: atMs, handle: undefined, immediate: false };
    // Node may fire a timer up to a millisecond early: re-arm until the model time is reached;
    // under a millisecond of real time left, poll with setImmediate.
    const arm = () => {
      const left = (atMs - this.now()) / this.timeScale;
      timer.immediate = left < 1;
      timer.handle = timer.immediate ? setImmediate(fire) : setTimeout(fire, left);
    };
    const fire = () => {
      if (this.now() < atMs) return arm();
      timer.handle = undefined;
      fn();
    };
    arm();
    return timer;
  }

  cancel(timer: Timer): void {
    const t = timer as RealTimer;
    if (t.handle === undefined) return;
    if (t.immediate) clearImmediate(t.handle as ReturnType<typeof setImmediate>);
    else clearTimeout(t.handle as ReturnType<typeof setTimeout>);
    t.handle = undefined;
  }
}

interface Event extends Timer {
  at: number;
  seq: number;
  fn: (() => void) | null;
}

/** A discrete-event clock: time moves only when `run`/`runUntil`/`step` process the next event. */
export class VirtualClock implements Clock {
  private time: number;
  private seq = 0;
  private readonly heap: Event[] = [];
  /** Events processed so far (for throughput figures). */
  processed = 0;

  constructor(startMs = 0) {
    this.time = startMs;
  }

  now(): number {
    return this.time;
  }

  /** Events waiting (cancelled ones included until they reach the top). */
  get pending(): number {
    return this.heap.length;
  }

  schedule(atMs: number, fn: () => void): Timer {
    const ev: Event = { at: atMs < this.time ? this.time : atMs, seq: this.seq++, fn };
    const heap = this.heap;
    let i = heap.length;
    heap.push(ev);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent] as Event;
      if (p.at < ev.at || (p.at === ev.at && p.seq < ev.seq)) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = ev;
    return ev;
  }

  cancel(timer: Timer): void {
    (timer as Event).fn = null;
  }

  /** Processes the next event; false when none is left. */
  step(): boolean {
    const ev = this.pop();
    if (!ev) return false;
    this.time = ev.at;
    const fn = ev.fn;
    ev.fn = null;
    if (fn) {
      this.processed++;
      fn();
    }
    return true;
  }

  /** Processes events until none is left; returns the final time. */
  run(): number {
    while (this.step());
    return this.time;
  }

  /** Processes events up to and including time `t`, then sets the time to `t`. */
  runUntil(t: number): void {
    for (;;) {
      const top = this.heap[0];
      if (!top || top.at > t) break;
      this.step();
    }
    if (t > this.time) this.time = t;
  }

  private pop(): Event | undefined {
    const heap = this.heap;
    const top = heap[0];
    if (!top) return undefined;
    const last = heap.pop() as Event;
    if (heap.length > 0) {
      const n = heap.length;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        let c = l;
        let child = heap[l] as Event;
        if (r < n) {
          const rc = heap[r] as Event;
          if (rc.at < child.at || (rc.at === child.at && rc.seq < child.seq)) {
            c = r;
            child = rc;
          }
        }
        if (last.at < child.at || (last.at === child.at && last.seq < child.seq)) break;
        heap[i] = child;
        i = c;
      }
      heap[i] = last;
    }
    return top;
  }
}
