/**
 * The agent's Prometheus metrics (`/metrics`). Names and labels are documented in
 * docs/operations.md; engine gauges are read at scrape time so they are never stale.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { EngineAdapter } from "../engines/engine";
import type { AgentKvTiers } from "../kvcache/agent-tiers";
import type { Admission } from "./admission";

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80];

export class AgentMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<"model" | "endpoint" | "status">;
  readonly ttft: Histogram<"model">;
  readonly duration: Histogram<"model">;
  readonly rejectedSignatures: Counter<"reason">;
  readonly heartbeats: Counter<"result">;

  constructor(nodeId: string, engines: ReadonlyMap<string, { engine: EngineAdapter; admission: Admission }>, kv?: AgentKvTiers) {
    this.registry.setDefaultLabels({ node: nodeId });
    // prom-client names these process_* and nodejs_*: with this prefix, switchyard_agent_process_cpu_seconds_total etc.
    collectDefaultMetrics({ register: this.registry, prefix: "switchyard_agent_" });
    this.requests = new Counter({ name: "switchyard_agent_requests_total", help: "Requests served, by final HTTP status", labelNames: ["model", "endpoint", "status"], registers: [this.registry] });
    this.ttft = new Histogram({ name: "switchyard_agent_ttft_seconds", help: "Time from request arrival to the first response byte", labelNames: ["model"], buckets: LATENCY_BUCKETS, registers: [this.registry] });
    this.duration = new Histogram({ name: "switchyard_agent_request_duration_seconds", help: "Time from request arrival to the end of the response", labelNames: ["model"], buckets: LATENCY_BUCKETS, registers: [this.registry] });
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
    // switchyard_kv_tier_* (docs/operations.md): per tier hits, misses, bytes, evictions, latency.
    kv?.registerMetrics(this.registry);
  }
}
