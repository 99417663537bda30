/**
 * The routing contract. A strategy scores candidate nodes; the pool object combines the scores of
 * the strategies a request names (AIBrix's weighted soft scoring) or, for a strategy used alone
 * that has its own decision rule (thresholds, fallbacks), lets it pick directly.
 * A new strategy is one file plus one line in registry.ts.
 */

/** A node as routing sees it at decision time. */
export interface NodeView {
  id: string;
  region: string;
  url: string;
  /** Requests this pool has sent to the node and not yet seen finish (counted at decision time). */
  inflight: number;
  /** Engine-reported load from the last heartbeat. */
  running: number;
  waiting: number;
  maxConcurrency: number;
  kvUsage: number;
  kvCapacityTokens: number;
  lastHeartbeatAt: number;
}

export interface RoutingContext {
  requestId: string;
  tenantId: string;
  model: string;
  now: number;
  /** Uniform [0,1); injectable for deterministic tests. */
  random: () => number;
}

/** `least`: lower raw score is better; `most`: higher is better. */
export type Polarity = "least" | "most";

export interface StrategyScores {
  polarity: Polarity;
  /** One raw score per candidate, in candidate order; undefined = no opinion about that node. */
  scores: Array<number | undefined>;
}

export interface RoutingStrategy {
  readonly name: string;
  score(ctx: RoutingContext, nodes: readonly NodeView[]): StrategyScores;
  /** Own decision rule when the strategy is used alone; absent = best score wins. */
  select?(ctx: RoutingContext, nodes: readonly NodeView[]): NodeView | undefined;
  /** Bookkeeping after the pool committed to `node` (e.g. remembering which prefix went where). */
  onRouted?(ctx: RoutingContext, node: NodeView): void;
}

export interface WeightedStrategy {
  name: string;
  weight: number;
}
