/**
 * Tokens each tenant was served in this pool over a sliding window (AIBrix's VTC token tracker:
 * 5 minutes of one-second buckets, input tokens weighted 1 and output tokens 2). Unlike AIBrix,
 * which adds a character-count guess once per request, a request is counted at routing with the
 * edge's prompt estimate and corrected at release with the engine's real counts.
 */
export const TENANT_WINDOW_MS = 5 * 60_000;
export const INPUT_TOKEN_WEIGHT = 1;
export const OUTPUT_TOKEN_WEIGHT = 2;

interface Bucket {
  second: number;
  tokens: number;
}

interface TenantWindow {
  buckets: Bucket[];
  total: number;
}

export class TenantTokens {
  private readonly byTenant = new Map<string, TenantWindow>();
  private readonly pending = new Map<string, { tenantId: string; second: number; charged: number }>();

  constructor(readonly windowMs = TENANT_WINDOW_MS) {}

  /** Routed requests whose estimate awaits settlement. */
  get pendingCount(): number {
    return this.pending.size;
  }

  private prune(w: TenantWindow, now: number): void {
    const oldest = Math.floor((now - this.windowMs) / 1000);
    let drop = 0;
    while (drop < w.buckets.length && (w.buckets[drop] as Bucket).second <= oldest) w.total -= (w.buckets[drop++] as Bucket).tokens;
    if (drop > 0) w.buckets.splice(0, drop);
  }

  private add(tenantId: string, second: number, tokens: number, now: number): void {
    let w = this.byTenant.get(tenantId);
    if (!w) this.byTenant.set(tenantId, (w = { buckets: [], total: 0 }));
    this.prune(w, now);
    // A correction for a bucket that already aged out has nothing left to correct.
    if (second <= Math.floor((now - this.windowMs) / 1000)) return;
    const last = w.buckets.at(-1);
    if (last && last.second === second) last.tokens += tokens;
    else {
      // Corrections land in their request's own bucket, which may not be the newest.
      const at = w.buckets.findIndex((b) => b.second === second);
      if (at >= 0) (w.buckets[at] as Bucket).tokens += tokens;
      else {
        w.buckets.push({ second, tokens });
        w.buckets.sort((a, b) => a.second - b.second);
      }
    }
    w.total += tokens;
  }

  /** A request was routed: count its estimated prompt now. */
  routed(requestId: string, tenantId: string, promptTokens: number, now: number): void {
    const second = Math.floor(now / 1000);
    // Releases that never came (a lost isolate) leave entries behind; past the window they are moot.
    if (this.pending.size >= 4096 && this.pending.size % 1024 === 0) {
      const oldest = Math.floor((now - this.windowMs) / 1000);
      for (const [id, e] of this.pending) if (e.second <= oldest) this.pending.delete(id);
    }
    const charged = promptTokens * INPUT_TOKEN_WEIGHT;
    this.pending.set(requestId, { tenantId, second, charged });
    this.add(tenantId, second, charged, now);
  }

  /** The request finished: replace its estimate by the real, weighted counts. */
  settled(requestId: string, real: { promptTokens: number; completionTokens: number } | undefined, now: number): void {
    const p = this.pending.get(requestId);
    if (!p) return;
    this.pending.delete(requestId);
    if (!real) return;
    const actual = real.promptTokens * INPUT_TOKEN_WEIGHT + real.completionTokens * OUTPUT_TOKEN_WEIGHT;
    this.add(p.tenantId, p.second, actual - p.charged, now);
  }

  /** An attempt that never reached a node: forget it. */
  dropped(requestId: string, now: number): void {
    const p = this.pending.get(requestId);
    if (!p) return;
    this.pending.delete(requestId);
    this.add(p.tenantId, p.second, -p.charged, now);
  }

  tokens(tenantId: string, now: number): number {
    const w = this.byTenant.get(tenantId);
    if (!w) return 0;
    this.prune(w, now);
    return Math.max(0, w.total);
  }

  /** Smallest and largest window totals over tenants with any tokens in the window. */
  range(now: number): { min: number; max: number } | undefined {
    let min = Number.POSITIVE_INFINITY;
    let max = 0;
    for (const [tenant, w] of this.byTenant) {
      this.prune(w, now);
      if (w.buckets.length === 0) {
        this.byTenant.delete(tenant);
        continue;
      }
      const t = Math.max(0, w.total);
      if (t < min) min = t;
      if (t > max) max = t;
    }
    return max === 0 && min === Number.POSITIVE_INFINITY ? undefined : { min, max };
  }
}
