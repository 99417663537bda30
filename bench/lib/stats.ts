/**
 * Descriptive statistics for reports: mean and percentiles with linear interpolation between
 * order statistics (numpy's default, so figures agree with AIBrix's analyze.py).
 */

export interface Stats {
  n: number;
  mean: number | null;
  p50: number | null;
  p90: number | null;
  p99: number | null;
  min: number | null;
  max: number | null;
}

/** The q-quantile (0..1) of sorted values, linear interpolation; null when empty. */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number | null {
  const n = sorted.length;
  if (n === 0) return null;
  const pos = (n - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.min(n - 1, lo + 1);
  const a = sorted[lo] as number;
  const b = sorted[hi] as number;
  return a + (b - a) * (pos - lo);
}

export function summarizeValues(values: readonly number[], scale = 1): Stats {
  const v = values.filter((x) => Number.isFinite(x)).map((x) => x * scale);
  if (v.length === 0) return { n: 0, mean: null, p50: null, p90: null, p99: null, min: null, max: null };
  const sorted = Float64Array.from(v).sort();
  let sum = 0;
  for (const x of sorted) sum += x;
  return {
    n: sorted.length,
    mean: sum / sorted.length,
    p50: quantileSorted(sorted, 0.5),
    p90: quantileSorted(sorted, 0.9),
    p99: quantileSorted(sorted, 0.99),
    min: sorted[0] as number,
    max: sorted[sorted.length - 1] as number,
  };
}

export function mean(values: readonly number[]): number {
  return values.length === 0 ? NaN : values.reduce((s, x) => s + x, 0) / values.length;
}

export function stddev(values: readonly number[]): number {
  const m = mean(values);
  return Math.sqrt(values.reduce((s, x) => s + (x - m) * (x - m), 0) / Math.max(1, values.length - 1));
}

/** Empirical CDF points (value, fraction ≤ value), at most `maxPoints` of them. */
export function cdfPoints(values: readonly number[], maxPoints = 200): Array<{ value: number; p: number }> {
  const sorted = Float64Array.from(values.filter((x) => Number.isFinite(x))).sort();
  const n = sorted.length;
  if (n === 0) return [];
  const out: Array<{ value: number; p: number }> = [];
  const step = Math.max(1, Math.floor(n / maxPoints));
  for (let i = 0; i < n; i += step) out.push({ value: sorted[i] as number, p: (i + 1) / n });
  if (out[out.length - 1]?.p !== 1) out.push({ value: sorted[n - 1] as number, p: 1 });
  return out;
}
