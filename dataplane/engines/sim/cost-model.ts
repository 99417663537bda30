/**
 * Time of one engine iteration (one forward pass over the batch the scheduler chose), from the
 * measured calibration. The model, with every coefficient read off the calibration:
 *
 *   pure decode step (B sequences, Σctx tokens of context):
 *     D = G(B) + w·Σctx
 *   step with prefill (chunks of nᵢ new tokens over cᵢ tokens already in KV, plus B decodes):
 *     T = L(N) + Σᵢ [ b·nᵢ·(cᵢ + nᵢ/2) + X(cᵢ) ] + w·Σctx_decode,   N = Σᵢ nᵢ + B
 *
 * - w: KV read per context token in decode (memory-bound attention), fitted across the measured
 *   batch sizes from how the decode step grows with context (≈ 42 ns/token ≈ 3 TB/s for 128 KiB/token).
 * - G(B): the rest of a decode step (weights read once, GEMMs over B rows), piecewise-linear in B
 *   through the measured batch sizes.
 * - b: causal self-attention per (query, key) pair in prefill, from the curvature of the measured
 *   prefill times above the launch floor.
 * - L(N): a forward pass over N tokens without attention: measured prefill minus b·n²/2,
 *   piecewise-linear in N through the measured points, starting at a one-token pass (= G(1)).
 * - X(c): extra cost of a prefill over c tokens already cached, piecewise-linear in c through the
 *   residuals of the measured cached-prefix points.
 *
 * Mixed steps (the fused-forward rule): vLLM V1 runs prefill chunks and decode tokens in one forward,
 * so they share one weight read and one launch floor: decode tokens join the GEMMs as extra rows
 * (free below the floor, P(512) ≈ P(128) in the data; ~30 µs each above it) and add their own KV
 * reads. Summing a prefill step and a decode step would count the weights twice (≈ +6 ms a step);
 * a plain max would drop the decodes' KV reads.
 *
 * Interpolation is linear in linear space: the measured curves are close to linear above their
 * floors (prefill ≈ 31–33k tokens/s, decode linear in context), so log-space interpolation would
 * bend between points where the data does not. Beyond the last point each curve continues with
 * its last segment's slope.
 */
import type { Calibration } from "./calibration";

/** y(x) through points, linear between them; flat before the first, last slope after the last. */
export class PiecewiseLinear {
  private readonly xs: Float64Array;
  private readonly ys: Float64Array;
  private readonly tailSlope: number;

  constructor(points: ReadonlyArray<readonly [number, number]>) {
    if (points.length === 0) throw new Error("PiecewiseLinear needs at least one point");
    const sorted = [...points].sort((a, b) => a[0] - b[0]);
    this.xs = Float64Array.from(sorted, (p) => p[0]);
    this.ys = Float64Array.from(sorted, (p) => p[1]);
    const n = sorted.length;
    this.tailSlope = n >= 2 ? Math.max(0, ((this.ys[n - 1] as number) - (this.ys[n - 2] as number)) / ((this.xs[n - 1] as number) - (this.xs[n - 2] as number))) : 0;
  }

  at(x: number): number {
    const xs = this.xs;
    const ys = this.ys;
    const n = xs.length;
    if (x <= (xs[0] as number)) return ys[0] as number;
    const lastX = xs[n - 1] as number;
    if (x >= lastX) return (ys[n - 1] as number) + (x - lastX) * this.tailSlope;
    let i = 1;
    while ((xs[i] as number) < x) i++;
    const x0 = xs[i - 1] as number;
    const y0 = ys[i - 1] as number;
    return y0 + ((x - x0) * ((ys[i] as number) - y0)) / ((xs[i] as number) - x0);
  }
}

/** Least squares y ≈ c0 + c1·x + c2·x² (3×3 normal equations); undefined if singular. */
function fitQuadratic(points: ReadonlyArray<readonly [number, number]>): [number, number, number] | undefined {
  const s = new Array<number>(5).fill(0);
  const t = [0, 0, 0];
  for (const [x, y] of points) {
    let p = 1;
    for (let k = 0; k < 5; k++) {
      s[k] = (s[k] as number) + p;
      if (k < 3) t[k] = (t[k] as number) + p * y;
      p *= x;
    }
  }
  const m = [
    [s[0], s[1], s[2], t[0]],
    [s[1], s[2], s[3], t[1]],
    [s[2], s[3], s[4], t[2]],
  ] as number[][];
  for (let col = 0; col < 3; col++) {
    let pivot = col;
    for (let r = col + 1; r < 3; r++) if (Math.abs(m[r]![col]!) > Math.abs(m[pivot]![col]!)) pivot = r;
    [m[col], m[pivot]] = [m[pivot]!, m[col]!];
    const d = m[col]![col]!;
    if (Math.abs(d) < 1e-300) return undefined;
    for (let r = 0; r < 3; r++) {
      if (r === col) continue;
      const f = m[r]![col]! / d;
      for (let k = col; k < 4; k++) m[r]![k] = m[r]![k]! - f * m[col]![k]!;
    }
  }
  return [m[0]![3]! / m[0]![0]!, m[1]![3]! / m[1]![1]!, m[2]![3]! / m[2]![2]!];
}

/** The fitted coefficients, for docs and tests. */
export interface CostModelFit {
  /** ms per context token per decoding sequence. */
  decodeKvMsPerToken: number;
  /** ms per (query, key) pair of prefill attention. */
  prefillAttentionMsPerPair: number;
  decodeBase: ReadonlyArray<readonly [number, number]>;
  forward: ReadonlyArray<readonly [number, number]>;
  cachedPrefixExtra: ReadonlyArray<readonly [number, number]>;
}

export class CostModel {
  readonly fit: CostModelFit;
  private readonly w: number;
  private readonly b: number;
  private readonly g: PiecewiseLinear;
  private readonly lin: PiecewiseLinear;
  private readonly xc: PiecewiseLinear;
  private readonly h2d: PiecewiseLinear;
  private readonly d2h: PiecewiseLinear;

  constructor(calibration: Calibration) {
    // w: Σ(Δt·BΔctx)/Σ(BΔctx)² over pairs of decode points with the same batch.
    const byBatch = new Map<number, Array<{ ctx: number; ms: number }>>();
    for (const d of calibration.decode_step) {
      const list = byBatch.get(d.batch) ?? [];
      list.push({ ctx: d.ctx, ms: d.step_ms });
      byBatch.set(d.batch, list);
    }
    let num = 0;
    let den = 0;
    for (const [batch, list] of byBatch) {
      for (let i = 0; i < list.length; i++) {
        for (let j = i + 1; j < list.length; j++) {
          const x = batch * ((list[j] as { ctx: number }).ctx - (list[i] as { ctx: number }).ctx);
          const y = (list[j] as { ms: number }).ms - (list[i] as { ms: number }).ms;
          num += x * y;
          den += x * x;
        }
      }
    }
    this.w = den > 0 ? Math.max(0, num / den) : 0;
    const gPoints: Array<[number, number]> = [];
    for (const [batch, list] of byBatch) {
      const mean = list.reduce((acc, p) => acc + p.ms - this.w * batch * p.ctx, 0) / list.length;
      gPoints.push([batch, mean]);
    }
    this.g = new PiecewiseLinear(monotone(gPoints));

    // b from the prefill points above the launch floor.
    const floor = Math.min(...calibration.prefill.map((p) => p.ms));
    const above = calibration.prefill.filter((p) => p.ms > 1.15 * floor).map((p) => [p.tokens, p.ms] as const);
    const quad = above.length >= 3 ? fitQuadratic(above) : undefined;
    this.b = quad ? Math.max(0, 2 * quad[2]) : 0;
    const linPoints: Array<[number, number]> = [[1, this.g.at(1)]];
    for (const p of calibration.prefill) if (p.tokens > 1) linPoints.push([p.tokens, p.ms - (this.b * p.tokens * p.tokens) / 2]);
    this.lin = new PiecewiseLinear(monotone(linPoints));

    // X(c): residuals of the cached-prefix points, averaged per prefix length.
    const residuals = new Map<number, number[]>();
    for (const p of calibration.prefill_with_cached_prefix) {
      const r = p.ms - this.lin.at(p.suffix) - this.b * p.suffix * (p.prefix + p.suffix / 2);
      residuals.set(p.prefix, [...(residuals.get(p.prefix) ?? []), r]);
    }
    const xcPoints: Array<[number, number]> = [[0, 0]];
    for (const [prefix, rs] of residuals) xcPoints.push([prefix, Math.max(0, rs.reduce((a, r) => a + r, 0) / rs.length)]);
    this.xc = new PiecewiseLinear(monotone(xcPoints));

    this.h2d = new PiecewiseLinear([[0, 0], ...calibration.kv_transfer.map((p) => [p.bytes, p.h2d_ms] as const)]);
    this.d2h = new PiecewiseLinear([[0, 0], ...calibration.kv_transfer.map((p) => [p.bytes, p.d2h_ms] as const)]);
    this.fit = {
      decodeKvMsPerToken: this.w,
      prefillAttentionMsPerPair: this.b,
      decodeBase: gPoints,
      forward: linPoints,
      cachedPrefixExtra: xcPoints,
    };
  }

  /** A decode-only step: `batch` sequences with `contextTokens` tokens of KV between them. */
  decodeStepMs(batch: number, contextTokens: number): number {
    return this.g.at(batch) + this.w * contextTokens;
  }

  /** Prefill of `newTokens` over `cachedTokens` already in KV, alone in a step. */
  prefillMs(newTokens: number, cachedTokens = 0): number {
    return this.lin.at(newTokens) + this.prefillSequenceMs(newTokens, cachedTokens);
  }

  /** The per-sequence part of a prefill chunk: its attention and the cached-prefix extra. */
  prefillSequenceMs(newTokens: number, cachedTokens: number): number {
    return this.b * newTokens * (cachedTokens + newTokens / 2) + (cachedTokens > 0 ? this.xc.at(cachedTokens) : 0);
  }

  /**
   * A whole step: `tokens` new tokens in all (prefill chunks + one per decoding sequence),
   * `prefillSequenceMs` the sum of `prefillSequenceMs(...)` over the prefilling sequences,
   * `decodeSeqs` sequences decoding with `decodeContextTokens` tokens of context between them.
   */
  stepMs(tokens: number, prefillSeqs: number, prefillSequenceMs: number, decodeSeqs: number, decodeContextTokens: number): number {
    if (prefillSeqs === 0) return decodeSeqs === 0 ? 0 : this.decodeStepMs(decodeSeqs, decodeContextTokens);
    return this.lin.at(tokens) + prefillSequenceMs + this.w * decodeContextTokens;
  }

  /** Host → GPU copy of `bytes` of KV (loading from a lower tier). */
  h2dMs(bytes: number): number {
    return bytes <= 0 ? 0 : this.h2d.at(bytes);
  }

  /** GPU → host copy of `bytes` of KV (offloading). */
  d2hMs(bytes: number): number {
    return bytes <= 0 ? 0 : this.d2h.at(bytes);
  }
}

/** Points sorted by x with y made non-decreasing (a bigger step never costs less). */
function monotone(points: Array<[number, number]>): Array<[number, number]> {
  const sorted = [...points].sort((a, b) => a[0] - b[0]);
  let max = -Infinity;
  return sorted.map(([x, y]) => {
    max = Math.max(max, y);
    return [x, max];
  });
}
