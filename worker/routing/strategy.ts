/**
 * The routing contract. A strategy scores candidate nodes; the pool combines the scores of the
 * strategies a request names (AIBrix's weighted soft scoring) or, for a strategy used alone that
 * has its own decision rule, lets it pick directly. A new strategy is one file plus one line in
 * registry.ts; strategies that need memory (prefix index, recent load) get it from PoolRoutingState.
 */
import type { NodeLoad } from "./node-load";
import type { PrefixIndex } from "./prefix-index";
import type { TenantTokens } from "./tenant-tokens";

/** A node as routing sees it at decision time. */
export interface NodeView {
  id: string;
  region: string;
  url: string;
  /** Requests this pool has sent to the node and not yet seen finish (counted at decision time). */
  inflight: number;
  /** Estimated prefill work (tokens) sent to the node and not yet done, draining at the calibrated rate. */
  prefillBacklogTokens: number;
  /** Engine-reported load from the last heartbeat. */
  running: number;
  waiting: number;
  maxConcurrency: number;
  /** KV use reported at the last heartbeat, plus what was routed there since (0..1). */
  kvUsage: number;
  kvCapacityTokens: number;
  lastHeartbeatAt: number;
}

/** What the edge knows of the prompt without a tokenizer (protocol/prefix-hash.ts). */
export interface PromptInfo {
  /** Chained hashes of the canonical prompt's full blocks, in the tenant's (or model's) namespace. */
  blocks: number[];
  /** Estimated prompt tokens. */
  tokens: number;
  /** Completion tokens the request may produce (max_tokens, or the edge's default estimate). */
  maxTokens: number;
}

export interface RoutingContext {
  requestId: string;
  tenantId: string;
  model: string;
  now: number;
  /** Uniform [0,1); injectable for deterministic tests and simulations. */
  random: () => number;
  prompt: PromptInfo | undefined;
  /** Client-chosen affinity key (session header or the OpenAI `user` field). */
  sessionKey: string | undefined;
  /** Leading prompt blocks each candidate is believed to hold (computed once per decision). */
  prefixMatch(): ReadonlyMap<string, number>;
  /** Tokens a block stands for. */
  tokensPerBlock: number;
}

/** Per-pool memory strategies may consult; the pool keeps it up to date. */
export interface PoolRoutingState {
  prefixIndex: PrefixIndex;
  /** Recent work per node over a short window (throughput ranking). */
  recentLoad: NodeLoad;
  /** Work per node over Preble's history window. */
  windowLoad: NodeLoad;
  /** Weighted tokens each tenant was served over the last minutes (vtc-basic). */
  tenantTokens: TenantTokens;
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
}

export interface WeightedStrategy {
  name: string;
  weight: number;
}
