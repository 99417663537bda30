/**
 * Every routing strategy the edge knows, by the name clients use in `routing-strategy`.
 * Factories run once per pool, with the pool's routing state, so strategies may keep memory.
 */
import { leastKvCacheStrategy } from "./least-kv-cache";
import { leastRequestStrategy } from "./least-request";
import { powerOfTwoStrategy } from "./power-of-two";
import { prefixCacheStrategy } from "./prefix-cache";
import { prebleStrategy } from "./prefix-cache-preble";
import { randomStrategy } from "./random";
import { sessionAffinityStrategy } from "./session-affinity";
import type { PoolRoutingState, RoutingStrategy } from "./strategy";
import { throughputStrategy } from "./throughput";
import { vtcBasicStrategy } from "./vtc-basic";

export const strategyFactories = {
  random: randomStrategy,
  "least-request": leastRequestStrategy,
  "least-kv-cache": leastKvCacheStrategy,
  throughput: throughputStrategy,
  "power-of-two": powerOfTwoStrategy,
  "session-affinity": sessionAffinityStrategy,
  "prefix-cache": prefixCacheStrategy,
  "prefix-cache-preble": prebleStrategy,
  "vtc-basic": vtcBasicStrategy,
} satisfies Record<string, (state: PoolRoutingState) => RoutingStrategy>;

export type StrategyName = keyof typeof strategyFactories;

export const STRATEGY_NAMES = Object.keys(strategyFactories).sort() as StrategyName[];

export function isStrategyName(name: string): name is StrategyName {
  return Object.hasOwn(strategyFactories, name);
}

export function buildStrategies(state: PoolRoutingState): Map<string, RoutingStrategy> {
  const out = new Map<string, RoutingStrategy>();
  for (const name of STRATEGY_NAMES) out.set(name, strategyFactories[name](state));
  return out;
}
