/**
 * Arrival processes: when requests arrive, in workload milliseconds from 0 to the duration.
 *
 * | pattern | rate over time | arrivals |
 * |---|---|---|
 * | `constant` | `rate` | evenly spaced, 1000/rate ms apart |
 * | `poisson` | `rate` | exponential gaps (CV 1) |
 * | `bursty` | `rate` for `onMs`, then `offRate` for `offMs`, repeating | Poisson within each phase |
 * | `ramp` | linear from `from` to `to` over the duration | non-homogeneous Poisson (thinning) |
 * | `diurnal` | `rate · (1 + amplitude · sin(2π t / periodMs + phase))` | non-homogeneous Poisson |
 *
 * A `scale` multiplies the rate (each tenant's share of a pattern).
 *
 * @example
 * ```ts
 * arrivals({ kind: "poisson", rate: 5 }, 60_000, new Rng(1)); // ≈ 300 times in [0, 60000)
 * ```
 */
import type { Rng } from "../lib/rng";

export type Pattern =
  | { kind: "constant"; rate: number }
  | { kind: "poisson"; rate: number }
  | { kind: "bursty"; rate: number; offRate: number; onMs: number; offMs: number }
  | { kind: "ramp"; from: number; to: number }
  | { kind: "diurnal"; rate: number; amplitude: number; periodMs: number; phase?: number };

/** Requests per second at workload time `t` (ms). */
export function rateAt(p: Pattern, tMs: number, durationMs: number): number {
  switch (p.kind) {
    case "constant":
    case "poisson":
      return p.rate;
    case "bursty":
      return tMs % (p.onMs + p.offMs) < p.onMs ? p.rate : p.offRate;
    case "ramp":
      return p.from + ((p.to - p.from) * tMs) / Math.max(1, durationMs);
    case "diurnal":
      return Math.max(0, p.rate * (1 + p.amplitude * Math.sin((2 * Math.PI * tMs) / p.periodMs + (p.phase ?? 0))));
  }
}

function maxRate(p: Pattern): number {
  switch (p.kind) {
    case "constant":
    case "poisson":
      return p.rate;
    case "bursty":
      return Math.max(p.rate, p.offRate);
    case "ramp":
      return Math.max(p.from, p.to);
    case "diurnal":
      return p.rate * (1 + Math.abs(p.amplitude));
  }
}

/** Mean rate (req/s) over the duration: what "QPS" of this workload means. */
export function meanRate(p: Pattern, durationMs: number): number {
  switch (p.kind) {
    case "constant":
    case "poisson":
      return p.rate;
    case "ramp":
      return (p.from + p.to) / 2;
    case "bursty":
    case "diurnal": {
      // Numerically: exact enough for labels, and right for partial periods.
      const steps = 2000;
      let sum = 0;
      for (let i = 0; i < steps; i++) sum += rateAt(p, ((i + 0.5) * durationMs) / steps, durationMs);
      return sum / steps;
    }
  }
}

/** Arrival times (ms, ascending) in [0, durationMs). */
export function arrivals(p: Pattern, durationMs: number, rng: Rng, scale = 1): number[] {
  const out: number[] = [];
  if (scale <= 0 || durationMs <= 0) return out;
  if (p.kind === "constant") {
    if (p.rate <= 0) return out;
    const gap = 1000 / (p.rate * scale);
    for (let t = 0; t < durationMs; t += gap) out.push(t);
    return out;
  }
  if (p.kind === "poisson") {
    if (p.rate <= 0) return out;
    const meanGap = 1000 / (p.rate * scale);
    for (let t = rng.exponential(meanGap); t < durationMs; t += rng.exponential(meanGap)) out.push(t);
    return out;
  }
  // Non-homogeneous Poisson by thinning (Lewis & Shedler).
  const lambdaMax = maxRate(p) * scale;
  if (lambdaMax <= 0) return out;
  const meanGap = 1000 / lambdaMax;
  for (let t = rng.exponential(meanGap); t < durationMs; t += rng.exponential(meanGap)) {
    if (rng.next() * lambdaMax < rateAt(p, t, durationMs) * scale) out.push(t);
  }
  return out;
}

export function describePattern(p: Pattern): string {
  switch (p.kind) {
    case "constant":
      return `constant ${p.rate} req/s`;
    case "poisson":
      return `poisson ${p.rate} req/s`;
    case "bursty":
      return `bursty ${p.rate} req/s for ${p.onMs} ms, ${p.offRate} req/s for ${p.offMs} ms`;
    case "ramp":
      return `ramp ${p.from} → ${p.to} req/s`;
    case "diurnal":
      return `diurnal ${p.rate} req/s ± ${Math.round(p.amplitude * 100)}% over ${p.periodMs} ms`;
  }
}
