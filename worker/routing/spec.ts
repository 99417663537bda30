/**
 * Parsing of the `routing-strategy` header / a model's default strategy:
 * `least-request`, or weighted combinations such as `prefix-cache:2,least-request` (weight 1 when
 * omitted, integers 0..1,000,000, weight 0 drops the strategy — AIBrix's syntax).
 */
import { ApiError } from "../../protocol/openai-error";
import { isStrategyName, STRATEGY_NAMES } from "./registry";
import type { WeightedStrategy } from "./strategy";

export const MAX_WEIGHT = 1_000_000;

export type SpecResult = { ok: true; strategies: WeightedStrategy[] } | { ok: false; message: string };

export function parseStrategySpec(spec: string): SpecResult {
  const text = spec.trim().toLowerCase();
  if (text.length === 0) return { ok: false, message: "routing strategy is empty" };
  if (text.length > 512) return { ok: false, message: "routing strategy is too long" };
  const out: WeightedStrategy[] = [];
  const seen = new Set<string>();
  for (const raw of text.split(",")) {
    const part = raw.trim();
    const [name = "", weightText, extra] = part.split(":").map((s) => s.trim());
    if (extra !== undefined) return { ok: false, message: `'${part}' is not name[:weight]` };
    if (!isStrategyName(name)) {
      return { ok: false, message: `unknown routing strategy '${name}'; valid strategies: ${STRATEGY_NAMES.join(", ")}` };
    }
    let weight = 1;
    if (weightText !== undefined) {
      if (!/^\d{1,7}$/.test(weightText) || Number(weightText) > MAX_WEIGHT) {
        return { ok: false, message: `weight of '${name}' must be an integer from 0 to ${MAX_WEIGHT}` };
      }
      weight = Number(weightText);
    }
    if (seen.has(name)) return { ok: false, message: `routing strategy '${name}' is listed twice` };
    seen.add(name);
    if (weight > 0) out.push({ name, weight });
  }
  if (out.length === 0) return { ok: false, message: "every routing strategy has weight 0" };
  return { ok: true, strategies: out };
}

/** Like parseStrategySpec but throws the API's 400, naming where the bad spec came from. */
export function requireStrategySpec(spec: string, param: string): WeightedStrategy[] {
  const parsed = parseStrategySpec(spec);
  if (!parsed.ok) throw new ApiError(400, parsed.message, { param, code: "invalid_routing_strategy" });
  return parsed.strategies;
}

export function formatStrategySpec(strategies: readonly WeightedStrategy[]): string {
  return strategies.map((s) => (s.weight === 1 ? s.name : `${s.name}:${s.weight}`)).join(",");
}
