/**
 * How long a prefill takes, from the H100 / Llama-3-8B calibration (calibration/): the edge's cost
 * models need it to weigh "recompute these tokens there" against "wait behind that load here".
 * Piecewise-linear interpolation over the measured points; beyond the last point, the measured
 * marginal rate.
 */
import calibration from "../../calibration/h100-llama3-8b.json";

interface Point {
  tokens: number;
  ms: number;
}

const PREFILL: Point[] = calibration.prefill.map((p) => ({ tokens: p.tokens, ms: p.ms })).sort((a, b) => a.tokens - b.tokens);

function interpolate(points: readonly Point[], x: number): number {
  const first = points[0] as Point;
  if (x <= first.tokens) return first.ms;
  for (let i = 1; i < points.length; i++) {
    const a = points[i - 1] as Point;
    const b = points[i] as Point;
    if (x <= b.tokens) return a.ms + ((x - a.tokens) * (b.ms - a.ms)) / (b.tokens - a.tokens);
  }
  const a = points[points.length - 2] as Point;
  const b = points[points.length - 1] as Point;
  return b.ms + ((x - b.tokens) * (b.ms - a.ms)) / (b.tokens - a.tokens);
}

/** Fixed cost of a forward pass (the flat part of the curve: launch overhead). */
const PASS_FLOOR_MS = (PREFILL[0] as Point).ms;

/**
 * Prefill time (ms) of `newTokens` uncached tokens on top of `cachedTokens` of reused prefix.
 * The cached prefix costs attention reads but no recompute: measured 4096 cached + 128 new ≈ 27 ms
 * against 131 ms cold. Modelled as the cold time of the new tokens alone plus 1.5 ms per 1k cached.
 */
export function prefillMs(newTokens: number, cachedTokens = 0): number {
  if (newTokens <= 0) return cachedTokens > 0 ? PASS_FLOOR_MS : 0;
  return interpolate(PREFILL, newTokens) + (1.5 * cachedTokens) / 1000;
}

/** Median decode step (ms) at moderate batch: the per-token cost of a running request. */
export const DECODE_STEP_MS = 9;
