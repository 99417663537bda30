/**
 * The decision: one strategy alone uses its own rule (or best score); several are combined by
 * min-max normalising each one's scores to [0,1] (flipped for `least`), weighting and summing.
 */
import type { NodeView, RoutingContext, RoutingStrategy, StrategyScores, WeightedStrategy } from "./strategy";

const EPSILON = 1e-9;

/** Normalised scores in [0,1], higher better; nodes without a score get 0, all-equal get 1. */
export function normalise({ polarity, scores }: StrategyScores): number[] {
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  for (const s of scores) {
    if (s === undefined || Number.isNaN(s)) continue;
    if (s < min) min = s;
    if (s > max) max = s;
  }
  return scores.map((s) => {
    if (s === undefined || Number.isNaN(s)) return 0;
    if (max - min < EPSILON) return 1;
    return polarity === "least" ? (max - s) / (max - min) : (s - min) / (max - min);
  });
}

/** Index of the best total; ties (within epsilon) broken uniformly at random. */
function argmaxRandomTie(totals: number[], random: () => number): number {
  let best = Number.NEGATIVE_INFINITY;
  let winners: number[] = [];
  totals.forEach((t, i) => {
    if (t > best + EPSILON) {
      best = t;
      winners = [i];
    } else if (Math.abs(t - best) <= EPSILON) winners.push(i);
  });
  return winners[Math.floor(random() * winners.length)] ?? 0;
}

export function decide(
  ctx: RoutingContext,
  nodes: readonly NodeView[],
  spec: readonly WeightedStrategy[],
  strategies: ReadonlyMap<string, RoutingStrategy>,
): { node: NodeView; used: RoutingStrategy[] } | undefined {
  if (nodes.length === 0) return undefined;
  const used = spec.map((s) => {
    const strategy = strategies.get(s.name);
    if (!strategy) throw new Error(`strategy ${s.name} is not built`);
    return strategy;
  });
  if (used.length === 1) {
    const only = used[0] as RoutingStrategy;
    const picked = only.select ? only.select(ctx, nodes) : nodes[argmaxRandomTie(normalise(only.score(ctx, nodes)), ctx.random)];
    return picked ? { node: picked, used } : undefined;
  }
  const totalWeight = spec.reduce((sum, s) => sum + s.weight, 0);
  const totals = new Array<number>(nodes.length).fill(0);
  used.forEach((strategy, i) => {
    const weight = (spec[i]?.weight ?? 0) / totalWeight;
    normalise(strategy.score(ctx, nodes)).forEach((s, j) => {
      totals[j] = (totals[j] ?? 0) + weight * s;
    });
  });
  const node = nodes[argmaxRandomTie(totals, ctx.random)];
  return node ? { node, used } : undefined;
}
