import type { RoutingStrategy } from "./strategy";

/**
 * Fewest requests in flight from this pool, counted at decision time (so a burst spreads out
 * instead of piling onto the node that looked idle a moment ago); ties broken at random.
 */
export function leastRequestStrategy(): RoutingStrategy {
  return {
    name: "least-request",
    score: (_ctx, nodes) => ({ polarity: "least", scores: nodes.map((n) => n.inflight) }),
  };
}
