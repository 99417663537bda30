import { hashBlock } from "../../protocol/prefix-hash";
import type { RoutingStrategy } from "./strategy";

/**
 * Requests with the same session key go to the same node while it lives: rendezvous (highest
 * random weight) hashing of key and node id, so a node joining or leaving moves only the sessions
 * that belong to it. Requests without a key spread at random.
 */
export function sessionAffinityStrategy(): RoutingStrategy {
  const weight = (key: string, nodeId: string) => {
    const s = `${key}\u0000${nodeId}`;
    return hashBlock(s, 0, s.length, 0x51ed270b);
  };
  return {
    name: "session-affinity",
    score: (ctx, nodes) => ({
      polarity: "most",
      scores: nodes.map((n) => (ctx.sessionKey === undefined ? ctx.random() : weight(ctx.sessionKey, n.id))),
    }),
  };
}
