/**
 * The agent's Prometheus metrics (`/metrics`). Names and labels are documented in
 * docs/dashboard.md (a test checks the table against this registry); engine gauges are read at
 * scrape time so they are never stale.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { EngineAdapter } from "../engines/engine";
import type { AgentKvTiers } from "../kvcache/agent-tiers";
import type { Admission } from "./admission";

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80];
/** Seconds per output token: 1 ms (a small model on a big GPU) .. 2.5 s (a CPU under load). */
const TPOT_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2.5];

export class AgentMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<"model" | "endpoint" | "status">;
  readonly ttft: Histogram<"model">;
  readonly duration: Histogram<"model">;
  readonly tpot: Histogram<"model">;
  readonly promptTokens: Counter<"model">;
  readonly cachedPromptTokens: Counter<"model">;
  readonly generationTokens: Counter<"model">;
  readonly rejectedSignatures: Counter<"reason">;
  readonly heartbeats: Counter<"result">;

  constructor(nodeId: string, engines: ReadonlyMap<string, { engine: EngineAdapter; admission: Admission }>, kv?: AgentKvTiers) {
    this.registry.setDefaultLabels({ node: nodeId });
    // prom-client names these process_* and nodejs_*: with this prefix, switchyard_agent_process_cpu_seconds_total etc.
    collectDefaultMetrics({ register: this.registry, prefix: "switchyard_agent_" });
    this.requests = new Counter({ name: "switchyard_agent_requests_total", help: "Requests served, by final HTTP status", labelNames: ["model", "endpoint", "status"], registers: [this.registry] });
    this.ttft = new Histogram({ name: "switchyard_agent_ttft_seconds", help: "Time from request arrival to the first response byte", labelNames: ["model"], buckets: LATENCY_BUCKETS, registers: [this.registry] });
    this.duration = new Histogram({ name: "switchyard_agent_request_duration_seconds", help: "Time from request arrival to the end of the response", labelNames: ["model"], buckets: LATENCY_BUCKETS, registers: [this.registry] });
    this.tpot = new Histogram({
      name: "switchyard_agent_tpot_seconds",
      help: "Mean time per output token after the first, per streamed request with 2+ output tokens",
      labelNames: ["model"],
      buckets: TPOT_BUCKETS,
      registers: [this.registry],
    });
    this.promptTokens = new Counter({ name: "switchyard_agent_prompt_tokens_total", help: "Prompt tokens of served requests, as the engine reported them", labelNames: ["model"], registers: [this.registry] });
    this.cachedPromptTokens = new Counter({ name: "switchyard_agent_cached_prompt_tokens_total", help: "Prompt tokens the engine found cached", labelNames: ["model"], registers: [this.registry] });
    this.generationTokens = new Counter({ name: "switchyard_agent_generation_tokens_total", help: "Output tokens of served requests, as the engine reported them", labelNames: ["model"], registers: [this.registry] });
    this.rejectedSignatures = new Counter({ name: "switchyard_agent_rejected_requests_total", help: "Inbound requests refused by signature checks", labelNames: ["reason"], registers: [this.registry] });
    this.heartbeats = new Counter({ name: "switchyard_agent_heartbeats_total", help: "Heartbeats sent to the edge", labelNames: ["result"], registers: [this.registry] });
    const gauge = (name: string, help: string, read: (e: { engine: EngineAdapter; admission: Admission }) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ["model", "engine"],
        registers: [this.registry],
        collect() {
          for (const [model, entry] of engines) this.set({ model, engine: entry.engine.kind }, read(entry));
        },
      });
    gauge("switchyard_agent_queue_waiting", "Requests waiting at the agent for an engine slot", (e) => e.admission.waiting);
    gauge("switchyard_agent_queue_running", "Requests the agent has admitted to the engine", (e) => e.admission.running);
    gauge("switchyard_engine_running", "Requests the engine reports running", (e) => e.engine.load().running);
    gauge("switchyard_engine_waiting", "Requests the engine reports queued", (e) => e.engine.load().waiting);
    gauge("switchyard_engine_kv_usage_ratio", "Fraction of the engine's KV cache in use", (e) => e.engine.load().kvUsage);
    gauge("switchyard_engine_kv_capacity_tokens", "Engine KV cache capacity in tokens", (e) => e.engine.load().kvCapacityTokens);
    gauge("switchyard_engine_healthy", "1 when the engine is healthy", (e) => (e.engine.load().healthy ? 1 : 0));
    // switchyard_kv_tier_* (docs/dashboard.md): per tier hits, misses, bytes, evictions, latency.
    kv?.registerMetrics(this.registry);
  }
}
