/**
 * Virtual Token Counters (Sheng et al., OSDI'24; peers.md §6): one counter per tenant, the service
 * the tenant has received divided by its weight, with input tokens charged w_p and output tokens
 * w_q each. The tenant with the smallest counter is served next. A tenant arriving from idle is
 * lifted to the smallest counter among backlogged tenants, so idle time banks no credit.
 *
 * The pool charges the prompt at admission, output tokens as the worker reports streaming progress
 * (batched each second), and settles with the engine's real counts when the request ends: VTC's
 * per-token accounting, a second late at most.
 */

export interface VtcWeights {
  /** Charge per input (prompt) token; VTC's w_p, default 1. */
  inputWeight: number;
  /** Charge per output token; VTC's w_q, default 2. */
  outputWeight: number;
}

export const DEFAULT_VTC_WEIGHTS: VtcWeights = { inputWeight: 1, outputWeight: 2 };

export class VirtualTokenCounters {
  private readonly counters = new Map<string, number>();
  private dirty = new Set<string>();

  constructor(private weights: VtcWeights = DEFAULT_VTC_WEIGHTS) {}

  setWeights(w: VtcWeights): void {
    this.weights = w;
  }

  get(tenant: string): number {
    return this.counters.get(tenant) ?? 0;
  }

  /** Restores persisted counters. */
  restore(entries: Iterable<[string, number]>): void {
    for (const [t, c] of entries) this.counters.set(t, c);
  }

  /** Weighted service of `tokens` (input and output) for a tenant of weight `tenantWeight`. */
  cost(inputTokens: number, outputTokens: number, tenantWeight: number): number {
    return (this.weights.inputWeight * inputTokens + this.weights.outputWeight * outputTokens) / Math.max(1e-9, tenantWeight);
  }

  charge(tenant: string, amount: number): void {
    if (amount === 0) return;
    this.counters.set(tenant, this.get(tenant) + amount);
    this.dirty.add(tenant);
  }

  /**
   * The tenant's queue went from empty to non-empty (VTC's Algorithm 2): lift its counter to the
   * smallest counter of the other backlogged tenants; when nobody else is backlogged, to the counter
   * of the tenant that last left the queue.
   */
  lift(tenant: string, backlogged: Iterable<string>, lastLeft: string | undefined): void {
    let min = Number.POSITIVE_INFINITY;
    for (const other of backlogged) if (other !== tenant) min = Math.min(min, this.get(other));
    if (!Number.isFinite(min) && lastLeft !== undefined && lastLeft !== tenant) min = this.get(lastLeft);
    if (Number.isFinite(min) && this.get(tenant) < min) {
      this.counters.set(tenant, min);
      this.dirty.add(tenant);
    }
  }

  /** Counters changed since the last call (for persisting). */
  takeDirty(): Array<[string, number]> {
    const out: Array<[string, number]> = [];
    for (const t of this.dirty) out.push([t, this.get(t)]);
    this.dirty = new Set();
    return out;
  }

  entries(): Array<[string, number]> {
    return [...this.counters];
  }
}
