/**
 * `prefix-cache-preble`: Preble's E2 rule (ICLR'25; peers.md §5), with its costs taken from the
 * calibration instead of Preble's profiled regressions.
 * - Exploit: when the longest cached prefix of the prompt is longer than the rest (matched >
 *   uncached), go to a node holding that longest prefix — the one with the least load L among them.
 * - Explore: otherwise go to the node with the lowest L + M + P:
 *   L = compute time (prefill + decode, ms) of the requests the node was given over the last
 *       3 minutes (its history window);
 *   M = eviction cost: the prefill time of the cached tokens this request would push out of the
 *       node's KV cache (its KV use plus this request's tokens, beyond capacity);
 *   P = prefill time of the prompt tokens the node does not hold.
 * - Rebalance: once the window holds history (5 requests per candidate), if the chosen node's L is
 *   1.5× or more the lightest node's, the lightest takes the request instead (Preble moves load off
 *   a node that carries 1.5× another's).
 */
import { prefillMs } from "./prefill-cost";
import type { NodeView, PoolRoutingState, RoutingContext, RoutingStrategy } from "./strategy";

export const PREBLE_WINDOW_MS = 3 * 60_000;
const REBALANCE_RATIO = 1.5;
/**
 * Rebalancing starts once the window holds some history: Preble waits for 50 requests per GPU;
 * we ask for 5 per candidate, since the edge's windows are per pool rather than per cluster.
 */
const REBALANCE_MIN_REQUESTS_PER_NODE = 5;

export function prebleStrategy(state: PoolRoutingState): RoutingStrategy {
  const parts = (ctx: RoutingContext, n: NodeView, matched: number) => {
    const tokens = ctx.prompt?.tokens ?? 0;
    const cached = Math.min(tokens, matched * ctx.tokensPerBlock);
    const uncached = tokens - cached;
    const L = state.windowLoad.loadMs(n.id, ctx.now);
    const free = n.kvCapacityTokens * (1 - n.kvUsage);
    const overflow = Math.max(0, uncached + (ctx.prompt?.maxTokens ?? 0) - free);
    const M = overflow > 0 ? prefillMs(overflow) : 0;
    const P = prefillMs(uncached, cached);
    return { L, M, P, cached, uncached };
  };

  const choose = (ctx: RoutingContext, nodes: readonly NodeView[]): { node: NodeView; cost: Map<NodeView, number> } | undefined => {
    if (nodes.length === 0) return undefined;
    const match = ctx.prefixMatch();
    const cost = new Map<NodeView, number>();
    let best = 0;
    for (const n of nodes) best = Math.max(best, match.get(n.id) ?? 0);
    const info = new Map(nodes.map((n) => [n, parts(ctx, n, match.get(n.id) ?? 0)]));
    const sample = info.get(nodes[0] as NodeView);
    const bestCached = Math.min(ctx.prompt?.tokens ?? 0, best * ctx.tokensPerBlock);
    let pick: NodeView | undefined;
    if (best > 0 && sample && bestCached > (ctx.prompt?.tokens ?? 0) - bestCached) {
      // Exploit: among holders of the longest prefix, the least loaded.
      for (const n of nodes) {
        if ((match.get(n.id) ?? 0) !== best) continue;
        const c = (info.get(n) as { L: number }).L;
        cost.set(n, c);
        if (!pick || c < (cost.get(pick) as number) || (c === cost.get(pick) && ctx.random() < 0.5)) pick = n;
      }
    } else {
      for (const n of nodes) {
        const p = info.get(n) as { L: number; M: number; P: number };
        const c = p.L + p.M + p.P;
        cost.set(n, c);
        if (!pick || c < (cost.get(pick) as number) || (c === cost.get(pick) && ctx.random() < 0.5)) pick = n;
      }
    }
    if (!pick) return undefined;
    // Rebalance away from a node carrying 1.5× the lightest node's load.
    let lightest = pick;
    let lightestL = (info.get(pick) as { L: number }).L;
    for (const n of nodes) {
      const l = (info.get(n) as { L: number }).L;
      if (l < lightestL) {
        lightest = n;
        lightestL = l;
      }
    }
    const pickL = (info.get(pick) as { L: number }).L;
    let history = 0;
    for (const n of nodes) history += state.windowLoad.count(n.id, ctx.now);
    if (history >= REBALANCE_MIN_REQUESTS_PER_NODE * nodes.length && pickL >= REBALANCE_RATIO * lightestL && pickL > lightestL) pick = lightest;
    return { node: pick, cost };
  };

  return {
    name: "prefix-cache-preble",
    score(ctx, nodes) {
      const match = ctx.prefixMatch();
      return {
        polarity: "least",
        scores: nodes.map((n) => {
          const p = parts(ctx, n, match.get(n.id) ?? 0);
          return p.L + p.M + p.P;
        }),
      };
    },
    select: (ctx, nodes) => choose(ctx, nodes)?.node,
  };
}
