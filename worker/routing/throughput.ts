import type { PoolRoutingState, RoutingStrategy } from "./strategy";

/**
 * Least recent token throughput: prompt tokens computed (weighted 2, as AIBrix does: they cost more
 * than decode steps) plus completion tokens, over the last minute, from the engines' own counts.
 */
export function throughputStrategy(state: PoolRoutingState): RoutingStrategy {
  return {
    name: "throughput",
    score: (ctx, nodes) => ({ polarity: "least", scores: nodes.map((n) => state.recentLoad.weightedTokensPerSecond(n.id, ctx.now)) }),
  };
}
