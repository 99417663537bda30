/**
 * Serving-cost calibration: measured step costs of one GPU for one model shape. The default is
 * calibration/h100-llama3-8b.json at the repository root ("measured, H100, Llama-3-8B shapes",
 * 2026-11-24, by calibration/measure.py), shared with the edge's cost models. Another file of the
 * same shape can be given with `calibrationPath`.
 */
import { readFileSync } from "node:fs";
import { z } from "zod";

export const calibrationSchema = z.looseObject({
  device: z.string().optional(),
  kv_bytes_per_token_llama3_8b: z.number().positive().optional(),
  kv_transfer: z.array(z.looseObject({ tokens: z.number().positive(), bytes: z.number().positive(), h2d_ms: z.number().positive(), d2h_ms: z.number().positive() })).min(1),
  prefill: z.array(z.looseObject({ tokens: z.number().int().positive(), ms: z.number().positive() })).min(2),
  prefill_with_cached_prefix: z.array(z.looseObject({ prefix: z.number().int().positive(), suffix: z.number().int().positive(), ms: z.number().positive() })),
  decode_step: z.array(z.looseObject({ batch: z.number().int().positive(), ctx: z.number().int().positive(), step_ms: z.number().positive() })).min(1),
});

export type Calibration = z.infer<typeof calibrationSchema>;

let defaultCalibration: Calibration | undefined;

/** The bundled H100 / Llama-3-8B calibration. */
export function h100Llama3Calibration(): Calibration {
  defaultCalibration ??= loadCalibration(new URL("../../../calibration/h100-llama3-8b.json", import.meta.url));
  return defaultCalibration;
}

/** Reads and validates a calibration file. */
export function loadCalibration(path: string | URL): Calibration {
  const raw: unknown = JSON.parse(readFileSync(path, "utf8"));
  const parsed = calibrationSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`invalid calibration file ${String(path)}: ${issue ? `${issue.path.join(".")}: ${issue.message}` : "bad shape"}`);
  }
  return parsed.data;
}
