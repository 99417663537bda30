import type { NodeView, RoutingContext, RoutingStrategy } from "./strategy";

function twoCandidates(ctx: RoutingContext, n: number): [number, number] {
  const a = Math.floor(ctx.random() * n);
  if (n < 2) return [a, a];
  let b = Math.floor(ctx.random() * (n - 1));
  if (b >= a) b++;
  return [a, b];
}

/**
 * Power of two choices: sample two nodes at random, take the one with fewer requests in flight.
 * Nearly as balanced as least-request, without every decision converging on the same node.
 */
export function powerOfTwoStrategy(): RoutingStrategy {
  return {
    name: "power-of-two",
    score(ctx, nodes) {
      const [a, b] = twoCandidates(ctx, nodes.length);
      return { polarity: "least", scores: nodes.map((n, i) => (i === a || i === b ? n.inflight : undefined)) };
    },
    select(ctx, nodes): NodeView | undefined {
      const [a, b] = twoCandidates(ctx, nodes.length);
      const x = nodes[a];
      const y = nodes[b];
      if (!x || !y) return x ?? y;
      if (x.inflight !== y.inflight) return x.inflight < y.inflight ? x : y;
      return ctx.random() < 0.5 ? x : y;
    },
  };
}
