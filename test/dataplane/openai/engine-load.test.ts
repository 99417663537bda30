/**
 * Engine load read from realistic /metrics dumps of vLLM (V1), SGLang and llama-server.
 */
import { describe, expect, it } from "vitest";
import { loadFromMetrics } from "../../../dataplane/engines/openai/engine-load";
import { parsePrometheusText } from "../../../dataplane/engines/openai/prometheus-text";

const load = (text: string) => loadFromMetrics(parsePrometheusText(text));

const M = 'model_name="meta-llama/Llama-3.1-8B-Instruct"';

/** A trimmed vLLM 0.10-style scrape (prometheus_client output, one engine core). */
const VLLM = `# HELP python_gc_objects_collected_total Objects collected during gc
# TYPE python_gc_objects_collected_total counter
python_gc_objects_collected_total{generation="0"} 12345.0
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",${M}} 7.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",${M}} 2.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",${M}} 0.4375
# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.
# TYPE vllm:prefix_cache_queries_total counter
vllm:prefix_cache_queries_total{engine="0",${M}} 81920.0
# HELP vllm:prefix_cache_hits_total Prefix cache hits, in terms of number of cached tokens.
# TYPE vllm:prefix_cache_hits_total counter
vllm:prefix_cache_hits_total{engine="0",${M}} 40960.0
# HELP vllm:num_preemptions_total Cumulative number of preemption from the engine.
# TYPE vllm:num_preemptions_total counter
vllm:num_preemptions_total{engine="0",${M}} 0.0
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.001",${M}} 0.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",${M}} 120.0
vllm:time_to_first_token_seconds_count{engine="0",${M}} 120.0
vllm:time_to_first_token_seconds_sum{engine="0",${M}} 9.5
# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig
# TYPE vllm:cache_config_info gauge
vllm:cache_config_info{block_size="16",cache_dtype="auto",calculate_kv_scales="False",cpu_offload_gb="0",enable_prefix_caching="True",engine="0",gpu_memory_utilization="0.9",is_attention_free="False",num_cpu_blocks="None",num_gpu_blocks="2048",num_gpu_blocks_override="None",prefix_caching_hash_algo="sha256",sliding_window="None",swap_space="4",swap_space_bytes="4294967296"} 1.0
`;

describe("loadFromMetrics — vLLM", () => {
  it("reads running, waiting, KV usage, prefix-cache counters and capacity = blocks × block_size", () => {
    expect(load(VLLM)).toEqual({
      running: 7,
      waiting: 2,
      kvUsage: 0.4375,
      kvCapacityTokens: 2048 * 16,
      prefixCacheQueries: 81920,
      prefixCacheHits: 40960,
    });
  });

  it("falls back to the deprecated gpu_cache_usage_perc and un-suffixed counters of older builds", () => {
    const old = `vllm:num_requests_running{${M}} 1.0
vllm:num_requests_waiting{${M}} 0.0
vllm:gpu_cache_usage_perc{${M}} 0.25
vllm:prefix_cache_queries{${M}} 100.0
vllm:prefix_cache_hits{${M}} 60.0
`;
    expect(load(old)).toEqual({ running: 1, waiting: 0, kvUsage: 0.25, prefixCacheQueries: 100, prefixCacheHits: 60 });
  });

  it("prefers kv_cache_usage_perc when both names are exported", () => {
    expect(load(`vllm:gpu_cache_usage_perc{${M}} 0.9\nvllm:kv_cache_usage_perc{${M}} 0.1\n`).kvUsage).toBe(0.1);
  });

  it("with data parallelism, sums requests and capacity over engines and averages KV usage", () => {
    const dp = `vllm:num_requests_running{engine="0",${M}} 4.0
vllm:num_requests_running{engine="1",${M}} 6.0
vllm:num_requests_waiting{engine="0",${M}} 1.0
vllm:num_requests_waiting{engine="1",${M}} 0.0
vllm:kv_cache_usage_perc{engine="0",${M}} 0.5
vllm:kv_cache_usage_perc{engine="1",${M}} 0.7
vllm:cache_config_info{block_size="16",engine="0",num_gpu_blocks="2048"} 1.0
vllm:cache_config_info{block_size="16",engine="1",num_gpu_blocks="2048"} 1.0
`;
    const l = load(dp);
    expect(l.running).toBe(10);
    expect(l.waiting).toBe(1);
    // A fraction: two engines each half-full are half-full together, not "full".
    expect(l.kvUsage).toBeCloseTo(0.6, 10);
    expect(l.kvCapacityTokens).toBe(2 * 2048 * 16);
  });

  it("ignores a cache_config_info whose block labels are missing or not numbers", () => {
    expect(load(`vllm:cache_config_info{block_size="16",num_gpu_blocks="None"} 1.0\n`).kvCapacityTokens).toBeUndefined();
    expect(load(`vllm:cache_config_info{cache_dtype="auto"} 1.0\n`).kvCapacityTokens).toBeUndefined();
    expect(load(`vllm:cache_config_info{block_size="0",num_gpu_blocks="10"} 1.0\n`).kvCapacityTokens).toBeUndefined();
  });

  it("clamps KV usage into 0..1", () => {
    expect(load(`vllm:kv_cache_usage_perc{${M}} 1.0000002\n`).kvUsage).toBe(1);
    expect(load(`vllm:kv_cache_usage_perc{${M}} -0.0001\n`).kvUsage).toBe(0);
  });
});

/** SGLang (0.4/0.5 era) scrape. */
const SGLANG = `# HELP sglang:num_running_reqs The number of running requests.
# TYPE sglang:num_running_reqs gauge
sglang:num_running_reqs{engine_type="unified",model_name="Qwen/Qwen2.5-7B-Instruct",pp_rank="0",tp_rank="0"} 12.0
# HELP sglang:num_used_tokens The number of used tokens.
# TYPE sglang:num_used_tokens gauge
sglang:num_used_tokens{engine_type="unified",model_name="Qwen/Qwen2.5-7B-Instruct",pp_rank="0",tp_rank="0"} 117813.0
# HELP sglang:token_usage The token usage.
# TYPE sglang:token_usage gauge
sglang:token_usage{engine_type="unified",model_name="Qwen/Qwen2.5-7B-Instruct",pp_rank="0",tp_rank="0"} 0.25
# HELP sglang:gen_throughput The generation throughput (token/s).
# TYPE sglang:gen_throughput gauge
sglang:gen_throughput{engine_type="unified",model_name="Qwen/Qwen2.5-7B-Instruct",pp_rank="0",tp_rank="0"} 1423.7
# HELP sglang:num_queue_reqs The number of requests in the waiting queue.
# TYPE sglang:num_queue_reqs gauge
sglang:num_queue_reqs{engine_type="unified",model_name="Qwen/Qwen2.5-7B-Instruct",pp_rank="0",tp_rank="0"} 3.0
# HELP sglang:cache_hit_rate The prefix cache hit rate.
# TYPE sglang:cache_hit_rate gauge
sglang:cache_hit_rate{engine_type="unified",model_name="Qwen/Qwen2.5-7B-Instruct",pp_rank="0",tp_rank="0"} 0.33
# HELP sglang:max_total_num_tokens Maximum total number of tokens in the KV cache pool.
# TYPE sglang:max_total_num_tokens gauge
sglang:max_total_num_tokens{engine_type="unified",model_name="Qwen/Qwen2.5-7B-Instruct",pp_rank="0",tp_rank="0"} 471258.0
# HELP sglang:prompt_tokens_total Number of prefill tokens processed.
# TYPE sglang:prompt_tokens_total counter
sglang:prompt_tokens_total{model_name="Qwen/Qwen2.5-7B-Instruct"} 9.87654e+06
`;

describe("loadFromMetrics — SGLang", () => {
  it("reads running, queued, token usage and pool capacity", () => {
    expect(load(SGLANG)).toEqual({ running: 12, waiting: 3, kvUsage: 0.25, kvCapacityTokens: 471258 });
  });

  it("vLLM's cache_config_info wins over an SGLang capacity when both appear", () => {
    expect(load(`${SGLANG}vllm:cache_config_info{block_size="32",num_gpu_blocks="10"} 1.0\n`).kvCapacityTokens).toBe(320);
  });
});

/** llama-server --metrics (b5000+): no KV gauges any more. */
const LLAMA_SERVER = `# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total 1024
# HELP llamacpp:prompt_seconds_total Prompt process time
# TYPE llamacpp:prompt_seconds_total counter
llamacpp:prompt_seconds_total 1.234
# HELP llamacpp:tokens_predicted_total Number of generation tokens processed.
# TYPE llamacpp:tokens_predicted_total counter
llamacpp:tokens_predicted_total 4096
# HELP llamacpp:prompt_tokens_seconds Average prompt throughput in tokens/s.
# TYPE llamacpp:prompt_tokens_seconds gauge
llamacpp:prompt_tokens_seconds 829.8
# HELP llamacpp:predicted_tokens_seconds Average generation throughput in tokens/s.
# TYPE llamacpp:predicted_tokens_seconds gauge
llamacpp:predicted_tokens_seconds 41.2
# HELP llamacpp:requests_processing Number of requests processing.
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 2
# HELP llamacpp:requests_deferred Number of requests deferred.
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 5
# HELP llamacpp:n_decode_total Total number of llama_decode() calls
# TYPE llamacpp:n_decode_total counter
llamacpp:n_decode_total 2048
`;

describe("loadFromMetrics — llama-server", () => {
  it("reads processing and deferred requests and leaves KV fields undefined", () => {
    expect(load(LLAMA_SERVER)).toEqual({ running: 2, waiting: 5 });
  });
});

describe("loadFromMetrics — nothing known", () => {
  it("returns only undefined fields for an unrelated scrape", () => {
    const l = load("process_cpu_seconds_total 12.5\nhttp_requests_total{code=\"200\"} 3\n");
    expect(Object.values(l).every((v) => v === undefined)).toBe(true);
  });
});
