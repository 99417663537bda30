import type { PoolRoutingState, RoutingStrategy } from "./strategy";

/**
 * AIBrix's `vtc-basic`, with its formula and defaults, fed with real token counts: a tenant's
 * windowed tokens, scaled by an adaptive bucket (the midpoint of the busiest and idlest tenants'
 * totals, at least MIN_TOKENS), pick a position along the node list (sorted by id so positions
 * are stable); the node nearest that position and least busy wins. Heavy tenants drift to one end
 * of the pool and light ones to the other, so a flood lands on fewer nodes. It steers; fair
 * service under contention comes from the pool's VTC admission queue.
 */
export const VTC_BASIC = {
  /** AIBRIX_ROUTER_VTC_TOKEN_TRACKER_MIN_TOKENS / _MAX_TOKENS: bucket bounds with no tenants. */
  minTokens: 1_000,
  maxTokens: 8_000,
  /** AIBRIX_ROUTER_VTC_BASIC_MAX_POD_LOAD */
  maxNodeLoad: 100,
  fairnessWeight: 1,
  utilizationWeight: 1,
  /** Tie-breaking jitter, U(0, jitter). */
  jitter: 0.1,
};

export function vtcBasicStrategy(state: PoolRoutingState): RoutingStrategy {
  return {
    name: "vtc-basic",
    score(ctx, nodes) {
      const range = state.tenantTokens.range(ctx.now) ?? { min: VTC_BASIC.minTokens, max: VTC_BASIC.maxTokens };
      const bucket = Math.max(VTC_BASIC.minTokens, (range.min + range.max) / 2);
      const position = Math.min(state.tenantTokens.tokens(ctx.tenantId, ctx.now) / bucket, nodes.length - 1);
      const order = nodes.map((n, i) => [n.id, i] as const).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      const indexOf = new Map<number, number>(order.map(([, original], sorted) => [original, sorted]));
      return {
        polarity: "least",
        scores: nodes.map((n, i) => {
          const fairness = Math.abs((indexOf.get(i) as number) - position);
          const utilization = Math.min(Math.max(n.inflight, n.running) / VTC_BASIC.maxNodeLoad, 1);
          return VTC_BASIC.fairnessWeight * fairness + VTC_BASIC.utilizationWeight * utilization + ctx.random() * VTC_BASIC.jitter;
        }),
      };
    },
  };
}
