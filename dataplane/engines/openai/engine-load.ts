/**
 * Engine load from an OpenAI-compatible server's /metrics, read the same way whatever the engine:
 * vLLM (`vllm:`), SGLang (`sglang:`), llama-server (`llamacpp:`) — and Switchyard's emulator, which
 * speaks vLLM's names. Returns undefined fields for what the engine does not report.
 */
import { type Sample, sumOf } from "./prometheus-text";

export interface ScrapedLoad {
  running?: number;
  waiting?: number;
  kvUsage?: number;
  kvCapacityTokens?: number;
  /** Cumulative prefix-cache counters in tokens (vLLM), for hit rates. */
  prefixCacheQueries?: number;
  prefixCacheHits?: number;
}

export function loadFromMetrics(samples: readonly Sample[]): ScrapedLoad {
  const pick = (...names: string[]) => {
    for (const n of names) {
      const v = sumOf(samples, n);
      if (v !== undefined) return v;
    }
    return undefined;
  };
  // A usage fraction is exported once per engine core (vLLM data parallelism): average, never sum.
  const meanOf = (...names: string[]) => {
    for (const n of names) {
      const values = samples.filter((s) => s.name === n).map((s) => s.value);
      if (values.length > 0) return values.reduce((a, b) => a + b, 0) / values.length;
    }
    return undefined;
  };
  const out: ScrapedLoad = {
    running: pick("vllm:num_requests_running", "sglang:num_running_reqs", "llamacpp:requests_processing"),
    waiting: pick("vllm:num_requests_waiting", "sglang:num_queue_reqs", "llamacpp:requests_deferred"),
    kvUsage: meanOf("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc", "sglang:token_usage"),
    prefixCacheQueries: pick("vllm:prefix_cache_queries_total", "vllm:prefix_cache_queries"),
    prefixCacheHits: pick("vllm:prefix_cache_hits_total", "vllm:prefix_cache_hits"),
  };
  // vLLM: capacity = num_gpu_blocks × block_size, published as labels of an info gauge (one per engine core).
  for (const info of samples) {
    if (info.name !== "vllm:cache_config_info") continue;
    const blocks = Number(info.labels.num_gpu_blocks);
    const blockSize = Number(info.labels.block_size);
    if (Number.isFinite(blocks) && Number.isFinite(blockSize) && blocks > 0 && blockSize > 0) out.kvCapacityTokens = (out.kvCapacityTokens ?? 0) + blocks * blockSize;
  }
  const sglangMax = sumOf(samples, "sglang:max_total_num_tokens");
  if (out.kvCapacityTokens === undefined && sglangMax !== undefined) out.kvCapacityTokens = sglangMax;
  if (out.kvUsage !== undefined) out.kvUsage = Math.min(1, Math.max(0, out.kvUsage));
  return out;
}
