/**
 * `prefix-cache`: send the request where it will see its first token soonest, counting what a
 * cached prefix saves. For each candidate node the estimate is
 *
 *   ttft(n) = backlog(n) / R  +  prefill(uncached(n), cached(n))  +  inflight(n) · interferenceMs
 *
 * - backlog: prefill tokens routed to the node and not yet worked off, draining at the calibrated
 *   prefill rate R (the pool updates it at every decision, so a burst spreads out at once);
 * - prefill: the calibrated time to compute the prompt tokens the node does not hold (the longest
 *   run of leading blocks it holds counts as cached);
 * - interference: each request decoding on the node slows every engine step a little, and keeps
 *   the rule from piling decode-heavy traffic onto one node when prompts are short.
 * A node at its concurrency limit gets a large penalty (its agent would queue the request).
 * The lowest estimate wins; ties go at random. A prefix is therefore followed as long as waiting
 * for its holder costs less than recomputing it elsewhere — and is replicated when it does not.
 */
import { prefillMs } from "./prefill-cost";
import type { NodeView, RoutingContext, RoutingStrategy } from "./strategy";

/** Prefill throughput of one engine (tokens/ms): H100, Llama-3-8B, long prompts (calibration). */
export const PREFILL_TOKENS_PER_MS = 31;
/** Extra time-to-first-token per request already running on the node (ms). */
export const INTERFERENCE_MS = 4;
/** Penalty for a node whose agent would have to queue the request (ms). */
const SATURATED_MS = 60_000;

export function estimatedTtftMs(ctx: RoutingContext, n: NodeView, matchedBlocks: number): number {
  const tokens = ctx.prompt?.tokens ?? 0;
  const cached = Math.min(tokens, matchedBlocks * ctx.tokensPerBlock);
  const wait = n.prefillBacklogTokens / PREFILL_TOKENS_PER_MS;
  const saturated = n.inflight >= n.maxConcurrency ? SATURATED_MS : 0;
  return wait + prefillMs(tokens - cached, cached) + n.inflight * INTERFERENCE_MS + saturated;
}

export function prefixCacheStrategy(): RoutingStrategy {
  return {
    name: "prefix-cache",
    score(ctx, nodes) {
      const match = ctx.prefixMatch();
      return { polarity: "least", scores: nodes.map((n) => estimatedTtftMs(ctx, n, match.get(n.id) ?? 0)) };
    },
  };
}
