/**
 * Configuration of the engine emulator (`kind: "sim"`), validated at start-up. Defaults describe
 * vLLM serving Llama-3-8B on one H100 80GB.
 */
import { z } from "zod";
import { loadCalibration, h100Llama3Calibration, type Calibration } from "./calibration";
import type { Clock } from "./clock";
import type { EngineCoreOptions } from "./engine-core";
import type { KvLowerTier } from "./kv-cache";

const modelShapeSchema = z.strictObject({
  layers: z.number().int().min(1).default(32),
  kvHeads: z.number().int().min(1).default(8),
  headDim: z.number().int().min(1).default(128),
  /** Bytes per KV element: 2 for bf16/fp16, 1 for fp8. */
  dtypeBytes: z.number().positive().default(2),
});

/** Memory budget from which the default KV capacity is derived (decimal GB). */
const gpuSchema = z.strictObject({
  memoryGB: z.number().positive().default(80),
  /** vLLM's --gpu-memory-utilization. */
  memoryUtilization: z.number().gt(0).max(1).default(0.9),
  /** Model weights: 8.03e9 parameters × 2 bytes. */
  weightsGB: z.number().min(0).default(16.06),
  /** Activation peak, CUDA graphs and non-torch allocations. */
  reserveGB: z.number().min(0).default(1),
});

const eosSchema = z.discriminatedUnion("kind", [
  z.strictObject({ kind: z.literal("lognormal"), median: z.number().positive(), sigma: z.number().min(0) }),
  z.strictObject({ kind: z.literal("exponential"), mean: z.number().positive() }),
  z.strictObject({ kind: z.literal("fixed"), tokens: z.number().int().min(1) }),
  z.strictObject({ kind: z.literal("never") }),
]);

export const simEngineConfigSchema = z.strictObject({
  kind: z.literal("sim"),
  /** Model name as clients and the edge call it. */
  model: z.string().min(1).max(256),
  /** Model time runs this many times faster than the wall clock; reported figures stay in model time. */
  timeScale: z.number().positive().max(100_000).default(1),
  /** KV memory in tokens; default derived from `gpu` and `modelShape` (≈ 419k tokens). */
  kvCapacityTokens: z.number().int().min(16).optional(),
  gpu: gpuSchema.prefault({}),
  modelShape: modelShapeSchema.prefault({}),
  blockSize: z.number().int().min(1).max(1024).default(16),
  maxNumSeqs: z.number().int().min(1).max(65_536).default(256),
  maxNumBatchedTokens: z.number().int().min(1).max(1_048_576).default(8192),
  /** vLLM's `--scheduling-policy`: `priority` orders the queue by the requests' `priority` (smaller first). */
  schedulingPolicy: z.enum(["fcfs", "priority"]).default("fcfs"),
  /** vLLM's `--long-prefill-token-threshold`: most prompt tokens one request computes in a step (0: no cap). */
  longPrefillTokenThreshold: z.number().int().min(0).max(1_048_576).default(0),
  /**
   * Switchyard's extension, not a vLLM setting (docs/fairness.md): requests of priority above 0
   * compute at most `chunkTokens` prompt tokens a step between them, and none while a request of
   * smaller priority prefills. Needs `schedulingPolicy: priority`.
   */
  priorityPrefill: z.strictObject({ chunkTokens: z.number().int().min(1).max(1_048_576).default(1024) }).optional(),
  /** Longest prompt + completion (Llama-3-8B: 8192). */
  maxModelLen: z.number().int().min(2).max(1_048_576).default(8192),
  enablePrefixCaching: z.boolean().default(true),
  /** Seeds answer lengths and words. */
  seed: z.number().int().default(0),
  /** Answer length when no max_tokens stops it first (ignore_eos skips it). */
  eos: eosSchema.default({ kind: "lognormal", median: 180, sigma: 0.9 }),
  /** A calibration JSON of the same shape as the bundled H100 one. */
  calibrationPath: z.string().min(1).optional(),
  /** Host time added to each step (scheduling, sampling, detokenizing); the calibration is GPU time. */
  stepOverheadMs: z.number().min(0).default(0),
  /** Requests the agent sends at once; default maxNumSeqs + 256 (the engine queues the rest). */
  maxConcurrency: z.number().int().min(1).max(1_000_000).optional(),
}).superRefine((c, ctx) => {
  if (c.priorityPrefill && c.schedulingPolicy !== "priority") ctx.addIssue({ code: "custom", path: ["priorityPrefill"], message: 'priorityPrefill needs schedulingPolicy: "priority"' });
});

export type SimEngineConfig = z.infer<typeof simEngineConfigSchema>;
/** What a caller may pass: defaults filled in by the schema. */
export type SimEngineConfigInput = z.input<typeof simEngineConfigSchema>;

/** KV bytes per token: K and V, every layer, every KV head. Llama-3-8B bf16: 131072. */
export function kvBytesPerToken(shape: SimEngineConfig["modelShape"]): number {
  return 2 * shape.layers * shape.kvHeads * shape.headDim * shape.dtypeBytes;
}

/** (memory × utilization − weights − reserve) / bytes per token, in whole blocks. */
export function kvCapacityTokens(config: SimEngineConfig): number {
  if (config.kvCapacityTokens !== undefined) return config.kvCapacityTokens;
  const { memoryGB, memoryUtilization, weightsGB, reserveGB } = config.gpu;
  const bytes = (memoryGB * memoryUtilization - weightsGB - reserveGB) * 1e9;
  const blocks = Math.floor(bytes / kvBytesPerToken(config.modelShape) / config.blockSize);
  if (blocks < 1) throw new RangeError("the GPU memory left for KV after weights and reserve holds no block");
  return blocks * config.blockSize;
}

export function maxConcurrency(config: SimEngineConfig): number {
  return config.maxConcurrency ?? config.maxNumSeqs + 256;
}

export function calibrationOf(config: SimEngineConfig): Calibration {
  return config.calibrationPath ? loadCalibration(config.calibrationPath) : h100Llama3Calibration();
}

/** Engine-core options for a validated config. */
export function coreOptions(config: SimEngineConfig, clock: Clock, extra: { lowerTier?: KvLowerTier; epochMs?: number } = {}): EngineCoreOptions {
  return {
    clock,
    modelName: config.model,
    calibration: calibrationOf(config),
    kvCapacityTokens: kvCapacityTokens(config),
    blockSize: config.blockSize,
    maxNumSeqs: config.maxNumSeqs,
    maxNumBatchedTokens: config.maxNumBatchedTokens,
    schedulingPolicy: config.schedulingPolicy,
    longPrefillTokenThreshold: config.longPrefillTokenThreshold,
    ...(config.priorityPrefill ? { priorityPrefill: config.priorityPrefill } : {}),
    maxModelLen: config.maxModelLen,
    enablePrefixCaching: config.enablePrefixCaching,
    kvBytesPerToken: kvBytesPerToken(config.modelShape),
    seed: config.seed,
    eos: config.eos,
    stepOverheadMs: config.stepOverheadMs,
    gpuMemoryUtilization: config.gpu.memoryUtilization,
    ...extra,
  };
}
