import type { RoutingStrategy } from "./strategy";

/**
 * Lowest KV-cache use. The reported figure is a heartbeat old, so what was routed to the node
 * since is added (NodeView.kvUsage already includes it): a burst does not herd onto the node that
 * looked emptiest two seconds ago.
 */
export function leastKvCacheStrategy(): RoutingStrategy {
  return {
    name: "least-kv-cache",
    score: (_ctx, nodes) => ({ polarity: "least", scores: nodes.map((n) => n.kvUsage) }),
  };
}
