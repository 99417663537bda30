import type { RoutingStrategy } from "./strategy";

/** Uniform choice: the baseline every other strategy is measured against. */
export function randomStrategy(): RoutingStrategy {
  return {
    name: "random",
    score: (ctx, nodes) => ({ polarity: "most", scores: nodes.map(() => ctx.random()) }),
    select: (ctx, nodes) => nodes[Math.floor(ctx.random() * nodes.length)],
  };
}
