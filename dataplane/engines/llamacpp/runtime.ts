/**
 * One shared `Llama` (the loaded llama.cpp binding) per process and GPU setting.
 *
 * Threads are always explicit: node-llama-cpp's CPU default is max(4, cores), which on a small box
 * oversubscribes the cores and makes everything 50–400× slower (llamacpp.md §4.1). `maxThreads`
 * here caps every context; contexts also pass their own `threads`.
 */
import { getLlama, LlamaLogLevel, type Llama } from "node-llama-cpp";

export type LlamaGpuSetting = false | "auto" | "cuda" | "vulkan" | "metal";

export interface LlamaRuntimeOptions {
  gpu?: LlamaGpuSetting;
  /** Upper bound on threads any context of this Llama may use. Default 1. */
  maxThreads?: number;
  /** llama.cpp log level; `warn` keeps the real cause of state-restore failures visible. */
  logLevel?: LlamaLogLevel;
}

const runtimes = new Map<string, Promise<Llama>>();

/** Returns the process-wide Llama for these options, loading the binding on first use (≈0.5 s). */
export function getLlamaRuntime(opts: LlamaRuntimeOptions = {}): Promise<Llama> {
  const gpu = opts.gpu ?? false;
  const maxThreads = Math.max(1, Math.floor(opts.maxThreads ?? 1));
  const logLevel = opts.logLevel ?? LlamaLogLevel.warn;
  const key = JSON.stringify([gpu, maxThreads, logLevel]);
  let runtime = runtimes.get(key);
  if (!runtime) {
    runtime = getLlama({ gpu, build: "never", maxThreads, logLevel, progressLogs: false });
    runtime.catch(() => runtimes.delete(key));
    runtimes.set(key, runtime);
  }
  return runtime;
}
