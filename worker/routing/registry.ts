/**
 * Every routing strategy the edge knows, by the name clients use in `routing-strategy`.
 * Factories run once per pool object, so strategies may keep per-pool state.
 */
import { leastRequestStrategy } from "./least-request";
import { randomStrategy } from "./random";
import type { RoutingStrategy } from "./strategy";

export const strategyFactories = {
  random: randomStrategy,
  "least-request": leastRequestStrategy,
} satisfies Record<string, () => RoutingStrategy>;

export type StrategyName = keyof typeof strategyFactories;

export const STRATEGY_NAMES = Object.keys(strategyFactories).sort() as StrategyName[];

export function isStrategyName(name: string): name is StrategyName {
  return Object.hasOwn(strategyFactories, name);
}

export function buildStrategies(): Map<string, RoutingStrategy> {
  const out = new Map<string, RoutingStrategy>();
  for (const name of STRATEGY_NAMES) out.set(name, strategyFactories[name]());
  return out;
}
