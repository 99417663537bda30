/**
 * Per-engine admission: at most `maxConcurrency` requests run on the engine, up to `maxWaiting`
 * more wait, and anything beyond is refused at once so the edge can try another node. Waiters
 * are served by the edge's priority mark (engine scale: lower first, as vLLM orders them), first
 * come first served within one priority, so a light tenant's request the edge marked `high` does
 * not queue behind a flooding tenant's backlog here either. A waiting request whose client goes
 * away leaves the queue.
 */
import { ApiError } from "../../protocol/openai-error";

export type Release = () => void;

interface Waiter {
  priority: number;
  grant: (release: Release) => void;
  fail: (err: unknown) => void;
}

export class Admission {
  private active = 0;
  private readonly queue: Waiter[] = [];

  constructor(
    readonly maxConcurrency: number,
    readonly maxWaiting: number,
  ) {}

  get running(): number {
    return this.active;
  }

  get waiting(): number {
    return this.queue.length;
  }

  /** `priority` on the engine scale (−1 high, 0 normal, 1 low); requests without a mark are normal. */
  acquire(signal: AbortSignal, priority = 0): Promise<Release> {
    if (signal.aborted) return Promise.reject(new ApiError(499, "The client closed the request.", { code: "client_closed" }));
    if (this.active < this.maxConcurrency) {
      this.active++;
      return Promise.resolve(this.releaser());
    }
    if (this.queue.length >= this.maxWaiting) {
      return Promise.reject(new ApiError(503, "This node is at capacity; try another.", { code: "node_overloaded", headers: { "retry-after": "1" } }));
    }
    return new Promise<Release>((resolve, reject) => {
      const waiter: Waiter = {
        priority,
        grant: (release) => {
          signal.removeEventListener("abort", onAbort);
          resolve(release);
        },
        fail: reject,
      };
      const onAbort = () => {
        const i = this.queue.indexOf(waiter);
        if (i >= 0) this.queue.splice(i, 1);
        reject(new ApiError(499, "The client closed the request.", { code: "client_closed" }));
      };
      signal.addEventListener("abort", onAbort, { once: true });
      // Behind every waiter of the same or a more urgent priority: FIFO within a priority.
      const at = this.queue.findIndex((w) => w.priority > priority);
      if (at < 0) this.queue.push(waiter);
      else this.queue.splice(at, 0, waiter);
    });
  }

  private releaser(): Release {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = this.queue.shift();
      // Hand the slot straight to the next waiter; `active` stays the same.
      if (next) next.grant(this.releaser());
      else this.active--;
    };
  }
}
