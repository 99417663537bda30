/**
 * vLLM's Prometheus surface for the emulator: the same names, types, meanings and histogram buckets
 * as vLLM V1's PrometheusStatLogger, every series labelled `model_name` and `engine="0"`, all times
 * in seconds of model time. Hand-rendered (no registry): the engine core bumps plain fields on its hot
 * path and the text is built only when `/metrics` is read.
 */
import type { FinishReason } from "./scheduler";

export const TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0];
export const ITL_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0];
export const REQUEST_LATENCY_BUCKETS = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0];
export const ITERATION_TOKENS_BUCKETS = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384];

/** vLLM's build_1_2_5_buckets: 1, 2, 5, 10, 20, 50, … up to `max`. */
export function buckets125(max: number): number[] {
  const out: number[] = [];
  for (let p = 1; ; p *= 10) {
    for (const m of [1, 2, 5]) {
      if (m * p > max) return out;
      out.push(m * p);
    }
  }
}

export class Histogram {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(readonly buckets: readonly number[]) {
    this.counts = new Float64Array(buckets.length);
  }

  observe(value: number, times = 1): void {
    const b = this.buckets;
    let i = 0;
    while (i < b.length && value > (b[i] as number)) i++;
    if (i < b.length) this.counts[i] = (this.counts[i] as number) + times;
    this.sum += value * times;
    this.count += times;
  }
}

/** Engine state read when rendering (gauges). */
export interface MetricsSnapshot {
  running: number;
  waiting: number;
  kvUsage: number;
  /** Labels of vllm:cache_config_info. */
  cacheConfig: Record<string, string | number | boolean>;
}

export class SimMetrics {
  promptTokens = 0;
  generationTokens = 0;
  preemptions = 0;
  prefixCacheQueries = 0;
  prefixCacheHits = 0;
  externalPrefixCacheQueries = 0;
  externalPrefixCacheHits = 0;
  readonly success: Record<FinishReason, number> = { stop: 0, length: 0, abort: 0 };
  readonly timeToFirstToken = new Histogram(TTFT_BUCKETS);
  readonly interTokenLatency = new Histogram(ITL_BUCKETS);
  readonly e2eLatency = new Histogram(REQUEST_LATENCY_BUCKETS);
  readonly queueTime = new Histogram(REQUEST_LATENCY_BUCKETS);
  readonly inferenceTime = new Histogram(REQUEST_LATENCY_BUCKETS);
  readonly prefillTime = new Histogram(REQUEST_LATENCY_BUCKETS);
  readonly decodeTime = new Histogram(REQUEST_LATENCY_BUCKETS);
  readonly iterationTokens = new Histogram(ITERATION_TOKENS_BUCKETS);
  readonly requestPromptTokens: Histogram;
  readonly requestGenerationTokens: Histogram;

  constructor(
    readonly modelName: string,
    maxModelLen: number,
  ) {
    this.requestPromptTokens = new Histogram(buckets125(maxModelLen));
    this.requestGenerationTokens = new Histogram(buckets125(maxModelLen));
  }

  /** The Prometheus text exposition of everything, as vLLM prints it. */
  render(s: MetricsSnapshot): string {
    const base = `model_name="${escapeLabel(this.modelName)}",engine="0"`;
    const out: string[] = [];
    const head = (name: string, type: string, help: string) => out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    const gauge = (name: string, help: string, value: number) => {
      head(name, "gauge", help);
      out.push(`${name}{${base}} ${num(value)}`);
    };
    const counter = (name: string, help: string, value: number) => {
      head(name, "counter", help);
      out.push(`${name}_total{${base}} ${num(value)}`);
    };
    const histogram = (name: string, help: string, h: Histogram) => {
      head(name, "histogram", help);
      let cumulative = 0;
      h.buckets.forEach((le, i) => {
        cumulative += h.counts[i] as number;
        out.push(`${name}_bucket{${base},le="${num(le)}"} ${num(cumulative)}`);
      });
      out.push(`${name}_bucket{${base},le="+Inf"} ${num(h.count)}`, `${name}_count{${base}} ${num(h.count)}`, `${name}_sum{${base}} ${num(h.sum)}`);
    };

    gauge("vllm:num_requests_running", "Number of requests in model execution batches.", s.running);
    gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", s.waiting);
    gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", s.kvUsage);
    counter("vllm:prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens.", this.prefixCacheQueries);
    counter("vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.", this.prefixCacheHits);
    counter("vllm:external_prefix_cache_queries", "External prefix cache queries from KV connector cross-instance cache sharing, in terms of number of queried tokens.", this.externalPrefixCacheQueries);
    counter("vllm:external_prefix_cache_hits", "External prefix cache hits from KV connector cross-instance cache sharing, in terms of number of cached tokens.", this.externalPrefixCacheHits);
    counter("vllm:num_preemptions", "Cumulative number of preemption from the engine.", this.preemptions);
    counter("vllm:prompt_tokens", "Number of prefill tokens processed.", this.promptTokens);
    counter("vllm:generation_tokens", "Number of generation tokens processed.", this.generationTokens);
    head("vllm:request_success", "counter", "Count of successfully processed requests.");
    for (const reason of ["stop", "length", "abort"] as const) out.push(`vllm:request_success_total{${base},finished_reason="${reason}"} ${num(this.success[reason])}`);
    histogram("vllm:request_prompt_tokens", "Number of prefill tokens processed.", this.requestPromptTokens);
    histogram("vllm:request_generation_tokens", "Number of generation tokens processed.", this.requestGenerationTokens);
    histogram("vllm:iteration_tokens_total", "Histogram of number of tokens per engine_step.", this.iterationTokens);
    histogram("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", this.timeToFirstToken);
    histogram("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", this.interTokenLatency);
    histogram("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", this.e2eLatency);
    histogram("vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.", this.queueTime);
    histogram("vllm:request_inference_time_seconds", "Histogram of time spent in RUNNING phase for request.", this.inferenceTime);
    histogram("vllm:request_prefill_time_seconds", "Histogram of time spent in PREFILL phase for request.", this.prefillTime);
    histogram("vllm:request_decode_time_seconds", "Histogram of time spent in DECODE phase for request.", this.decodeTime);
    head("vllm:cache_config_info", "gauge", "Information of the LLMEngine CacheConfig");
    const info = Object.entries(s.cacheConfig)
      .map(([k, v]) => `${k}="${escapeLabel(String(v))}"`)
      .join(",");
    out.push(`vllm:cache_config_info{${info},${base}} 1.0`);
    return `${out.join("\n")}\n`;
  }
}

function num(v: number): string {
  if (v === Number.POSITIVE_INFINITY) return "+Inf";
  return Number.isInteger(v) ? `${v}.0` : String(v);
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}
