/**
 * Length and time distributions for generators, written as short strings on the command line
 * (`normal:1024,128`) or as objects in JSON files (`{"kind": "normal", "mean": 1024, "sd": 128}`).
 *
 * | text | meaning |
 * |---|---|
 * | `512` or `fixed:512` | always 512 |
 * | `uniform:100,200` | uniform in [100, 200] |
 * | `normal:1024,128` | normal, mean 1024, standard deviation 128 |
 * | `lognormal:1024,512` | lognormal with that mean and standard deviation (of the lengths themselves) |
 * | `lognormal:median=180,sigma=0.9` | lognormal by median and log-space sigma |
 * | `exponential:2000` | exponential with mean 2000 (think times) |
 *
 * Any of them takes `min=` and `max=` clamps: `normal:1024,300,min=16,max=4096`. Integer draws
 * are rounded and never below `min` (default 1 for lengths, 0 for times).
 *
 * @example
 * ```ts
 * const d = parseDistribution("lognormal:1024,512");
 * sampleInt(d, new Rng(1)); // e.g. 873
 * ```
 */
import { z } from "zod";
import type { Rng } from "./rng";

export type Distribution =
  | { kind: "fixed"; value: number; min?: number; max?: number }
  | { kind: "uniform"; low: number; high: number; min?: number; max?: number }
  | { kind: "normal"; mean: number; sd: number; min?: number; max?: number }
  | { kind: "lognormal"; mu: number; sigma: number; min?: number; max?: number }
  | { kind: "exponential"; mean: number; min?: number; max?: number };

const clamp = { min: z.number().optional(), max: z.number().optional() };

/** JSON form of a distribution (files); lognormal by mean/sd or by median/sigma. */
export const distributionSchema = z.union([
  z.number().min(0).transform((value): Distribution => ({ kind: "fixed", value })),
  z.string().transform((text, ctx): Distribution => {
    try {
      return parseDistribution(text);
    } catch (err) {
      ctx.addIssue({ code: "custom", message: (err as Error).message });
      return z.NEVER;
    }
  }),
  z.strictObject({ kind: z.literal("fixed"), value: z.number().min(0), ...clamp }),
  z.strictObject({ kind: z.literal("uniform"), low: z.number().min(0), high: z.number().min(0), ...clamp }).refine((d) => d.high >= d.low, "high must be ≥ low"),
  z.strictObject({ kind: z.literal("normal"), mean: z.number().min(0), sd: z.number().min(0), ...clamp }),
  z
    .strictObject({ kind: z.literal("lognormal"), mean: z.number().positive().optional(), sd: z.number().min(0).optional(), median: z.number().positive().optional(), sigma: z.number().min(0).optional(), ...clamp })
    .transform((d, ctx): Distribution => {
      if (d.mean !== undefined && d.sd !== undefined) return withClamp(lognormalFromMeanSd(d.mean, d.sd), d);
      if (d.median !== undefined && d.sigma !== undefined) return withClamp({ kind: "lognormal", mu: Math.log(d.median), sigma: d.sigma }, d);
      ctx.addIssue({ code: "custom", message: "lognormal needs mean and sd, or median and sigma" });
      return z.NEVER;
    }),
  z.strictObject({ kind: z.literal("exponential"), mean: z.number().positive(), ...clamp }),
]);

function withClamp(d: Distribution, c: { min?: number | undefined; max?: number | undefined }): Distribution {
  return { ...d, ...(c.min !== undefined ? { min: c.min } : {}), ...(c.max !== undefined ? { max: c.max } : {}) };
}

/** Lognormal parameters whose draws have this mean and standard deviation. */
export function lognormalFromMeanSd(mean: number, sd: number): Distribution {
  const sigma2 = Math.log(1 + (sd * sd) / (mean * mean));
  return { kind: "lognormal", mu: Math.log(mean) - sigma2 / 2, sigma: Math.sqrt(sigma2) };
}

function num(text: string, what: string): number {
  const v = Number(text);
  if (text.trim() === "" || !Number.isFinite(v)) throw new Error(`${what} must be a number (got '${text}')`);
  if (v < 0) throw new Error(`${what} must be ≥ 0 (got ${v})`);
  return v;
}

/** Parses the text form; throws an Error whose message says what is wrong (the caller names the option). */
export function parseDistribution(text: string): Distribution {
  const t = text.trim();
  if (/^[0-9.]+$/.test(t)) return { kind: "fixed", value: num(t, "the value") };
  const m = /^([a-z]+):(.*)$/.exec(t);
  if (!m) throw new Error(`'${text}' is not a distribution: use N, fixed:N, uniform:MIN,MAX, normal:MEAN,SD, lognormal:MEAN,SD, lognormal:median=M,sigma=S or exponential:MEAN`);
  const kind = m[1] as string;
  const positional: number[] = [];
  const keyed: Record<string, number> = {};
  for (const part of (m[2] as string).split(",").map((p) => p.trim()).filter((p) => p !== "")) {
    const kv = /^([a-z]+)=(.*)$/.exec(part);
    if (kv) keyed[kv[1] as string] = num(kv[2] as string, kv[1] as string);
    else positional.push(num(part, `${kind} parameter`));
  }
  const known = new Set(["min", "max", "mean", "sd", "median", "sigma", "low", "high", "value"]);
  for (const k of Object.keys(keyed)) if (!known.has(k)) throw new Error(`unknown parameter '${k}' in '${text}'`);
  const arg = (i: number, key: string): number => {
    const v = positional[i] ?? keyed[key];
    if (v === undefined) throw new Error(`'${text}': ${kind} needs ${key}`);
    return v;
  };
  const c = { min: keyed.min, max: keyed.max };
  let d: Distribution;
  switch (kind) {
    case "fixed":
      d = { kind, value: arg(0, "value") };
      break;
    case "uniform": {
      const low = arg(0, "low");
      const high = arg(1, "high");
      if (high < low) throw new Error(`'${text}': uniform needs low ≤ high`);
      d = { kind, low, high };
      break;
    }
    case "normal":
      d = { kind, mean: arg(0, "mean"), sd: arg(1, "sd") };
      break;
    case "lognormal":
      if (keyed.median !== undefined || keyed.sigma !== undefined) {
        const median = arg(99, "median");
        if (median <= 0) throw new Error(`'${text}': median must be > 0`);
        d = { kind, mu: Math.log(median), sigma: arg(99, "sigma") };
      } else {
        const mean = arg(0, "mean");
        if (mean <= 0) throw new Error(`'${text}': mean must be > 0`);
        d = lognormalFromMeanSd(mean, arg(1, "sd"));
      }
      break;
    case "exponential": {
      const mean = arg(0, "mean");
      if (mean <= 0) throw new Error(`'${text}': mean must be > 0`);
      d = { kind, mean };
      break;
    }
    default:
      throw new Error(`unknown distribution '${kind}' in '${text}': use fixed, uniform, normal, lognormal or exponential`);
  }
  if (c.min !== undefined && c.max !== undefined && c.max < c.min) throw new Error(`'${text}': max must be ≥ min`);
  return withClamp(d, c);
}

/** A real-valued draw, clamped to the distribution's min/max (and `floor`). */
export function sample(d: Distribution, rng: Rng, floor = 0): number {
  let v: number;
  switch (d.kind) {
    case "fixed":
      v = d.value;
      break;
    case "uniform":
      v = rng.uniform(d.low, d.high);
      break;
    case "normal":
      v = rng.normal(d.mean, d.sd);
      break;
    case "lognormal":
      v = rng.lognormal(d.mu, d.sigma);
      break;
    case "exponential":
      v = rng.exponential(d.mean);
      break;
  }
  const lo = Math.max(floor, d.min ?? floor);
  if (v < lo) v = lo;
  if (d.max !== undefined && v > d.max) v = d.max;
  return v;
}

/** An integer draw (rounded), at least `floor` (1 for lengths). */
export function sampleInt(d: Distribution, rng: Rng, floor = 1): number {
  if (d.kind === "uniform") {
    // Integer-uniform over the whole closed range (rounding a real draw would halve the ends).
    let v = rng.int(Math.ceil(d.low), Math.floor(d.high));
    v = Math.max(v, floor, d.min ?? floor);
    return d.max !== undefined ? Math.min(v, d.max) : v;
  }
  return Math.max(floor, Math.round(sample(d, rng, floor)));
}

/** Mean of the distribution before clamping (for planning workloads). */
export function meanOf(d: Distribution): number {
  switch (d.kind) {
    case "fixed":
      return d.value;
    case "uniform":
      return (d.low + d.high) / 2;
    case "normal":
      return d.mean;
    case "lognormal":
      return Math.exp(d.mu + (d.sigma * d.sigma) / 2);
    case "exponential":
      return d.mean;
  }
}

/** The text form (for provenance in generated files). */
export function describeDistribution(d: Distribution): string {
  const c = `${d.min !== undefined ? `,min=${d.min}` : ""}${d.max !== undefined ? `,max=${d.max}` : ""}`;
  switch (d.kind) {
    case "fixed":
      return `fixed:${d.value}${c}`;
    case "uniform":
      return `uniform:${d.low},${d.high}${c}`;
    case "normal":
      return `normal:${d.mean},${d.sd}${c}`;
    case "lognormal":
      return `lognormal:median=${round(Math.exp(d.mu))},sigma=${round(d.sigma)}${c}`;
    case "exponential":
      return `exponential:${d.mean}${c}`;
  }
}

function round(v: number): number {
  return Math.round(v * 1e4) / 1e4;
}
