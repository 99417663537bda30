/**
 * Requests waiting at the edge for a node with room, one FIFO per tenant. Which waits next is the
 * policy's choice: `vtc` takes the oldest request of the backlogged tenant with the smallest
 * virtual token counter; `fcfs` takes the oldest request overall. A request leaves the queue when
 * admitted, when its wait bound passes, or when its client goes away.
 */
import type { VirtualTokenCounters } from "./vtc";

export type AdmissionPolicy = "vtc" | "fcfs";

export interface Waiting<T> {
  id: string;
  tenant: string;
  enqueuedAt: number;
  deadline: number;
  /** Arrival order across tenants (FCFS and tie-breaking). */
  seq: number;
  item: T;
}

export class AdmissionQueue<T> {
  private readonly byTenant = new Map<string, Waiting<T>[]>();
  private readonly byId = new Map<string, Waiting<T>>();
  private seq = 0;
  /** The tenant whose queue emptied most recently (VTC lifts newcomers to it when nobody waits). */
  private lastLeft: string | undefined;

  constructor(private readonly counters: VirtualTokenCounters) {}

  get size(): number {
    return this.byId.size;
  }

  /** Tenants with requests waiting. */
  backlogged(): IterableIterator<string> {
    return this.byTenant.keys();
  }

  waitingOf(tenant: string): number {
    return this.byTenant.get(tenant)?.length ?? 0;
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }

  enqueue(id: string, tenant: string, now: number, maxWaitMs: number, item: T, policy: AdmissionPolicy): Waiting<T> {
    let q = this.byTenant.get(tenant);
    if (!q) {
      // From idle to backlogged: VTC's counter lift (FCFS ignores counters, but keeping them true
      // lets a pool switch policy without a jump).
      if (policy === "vtc") this.counters.lift(tenant, this.byTenant.keys(), this.lastLeft);
      this.byTenant.set(tenant, (q = []));
    }
    const w: Waiting<T> = { id, tenant, enqueuedAt: now, deadline: now + maxWaitMs, seq: this.seq++, item };
    q.push(w);
    this.byId.set(id, w);
    return w;
  }

  /**
   * A request of `tenant` arrives and may be admitted without queueing: when its tenant has nothing
   * waiting, VTC lifts its counter as for any arrival from idle. Returns whether the tenant is
   * backlogged (has requests waiting).
   */
  arrive(tenant: string): boolean {
    if (this.byTenant.has(tenant)) return true;
    this.counters.lift(tenant, this.byTenant.keys(), this.lastLeft);
    return false;
  }

  /** Weights of the tenants with requests waiting (for fair shares). */
  *waitingTenants(): IterableIterator<[string, T]> {
    for (const [tenant, q] of this.byTenant) if (q[0]) yield [tenant, q[0].item];
  }

  /** The request the policy would admit next (not removed), among tenants `eligible` accepts. */
  peek(policy: AdmissionPolicy, eligible?: (tenant: string, head: Waiting<T>) => boolean): Waiting<T> | undefined {
    let best: Waiting<T> | undefined;
    let bestCounter = Number.POSITIVE_INFINITY;
    for (const [tenant, q] of this.byTenant) {
      const head = q[0];
      if (!head || (eligible && !eligible(tenant, head))) continue;
      if (policy === "fcfs") {
        if (!best || head.seq < best.seq) best = head;
        continue;
      }
      const c = this.counters.get(tenant);
      if (c < bestCounter || (c === bestCounter && best && head.seq < best.seq)) {
        best = head;
        bestCounter = c;
      }
    }
    return best;
  }

  remove(id: string): Waiting<T> | undefined {
    const w = this.byId.get(id);
    if (!w) return undefined;
    this.byId.delete(id);
    const q = this.byTenant.get(w.tenant);
    if (q) {
      const i = q.indexOf(w);
      if (i >= 0) q.splice(i, 1);
      if (q.length === 0) {
        this.byTenant.delete(w.tenant);
        this.lastLeft = w.tenant;
      }
    }
    return w;
  }

  /** Requests whose wait bound has passed, removed. */
  expire(now: number): Waiting<T>[] {
    const out: Waiting<T>[] = [];
    for (const w of [...this.byId.values()]) if (w.deadline <= now) out.push(this.remove(w.id) as Waiting<T>);
    return out;
  }

  /** Earliest deadline among waiting requests. */
  nextDeadline(): number | undefined {
    let min: number | undefined;
    for (const w of this.byId.values()) if (min === undefined || w.deadline < min) min = w.deadline;
    return min;
  }
}
