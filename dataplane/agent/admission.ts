/**
 * Per-engine admission: at most `maxConcurrency` requests run on the engine, up to `maxWaiting`
 * more wait in FIFO order, and anything beyond is refused at once so the edge can try another node.
 * A waiting request whose client goes away leaves the queue.
 */
import { ApiError } from "../../protocol/openai-error";

export type Release = () => void;

interface Waiter {
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

  acquire(signal: AbortSignal): Promise<Release> {
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
      this.queue.push(waiter);
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
