/**
 * Configuration of the embedded llama.cpp engine, validated at start-up.
 */
import { z } from "zod";

export const llamaCppEngineConfigSchema = z.object({
  kind: z.literal("llamacpp"),
  /** Model name as clients and the edge call it. */
  model: z.string().min(1),
  /** GGUF to serve. Absent: a tiny random-weight Llama is generated into `generatedModelDir`. */
  modelPath: z.string().min(1).optional(),
  /** Where the generated model is written (relative paths resolve against the working directory). */
  generatedModelDir: z.string().min(1).default(".switchyard/models"),
  /** Tokens each sequence holds (prompt + completion). */
  contextSize: z.number().int().min(16).default(4096),
  /** Parallel sequences (slots): requests that run, batched, at once. */
  sequences: z.number().int().min(1).max(64).default(4),
  /** CPU threads per evaluation. Never leave it to node-llama-cpp's default (see llamacpp.md). */
  threads: z.number().int().min(1).max(256).default(1),
  gpu: z.union([z.literal(false), z.enum(["auto", "cuda", "vulkan", "metal"])]).default(false),
  /** `max_tokens` for requests that give none (capped by what the context has left). */
  defaultMaxTokens: z.number().int().min(1).default(256),
});

export type LlamaCppEngineConfig = z.infer<typeof llamaCppEngineConfigSchema>;
/** What a caller may pass: defaults filled in by the schema. */
export type LlamaCppEngineConfigInput = z.input<typeof llamaCppEngineConfigSchema>;
