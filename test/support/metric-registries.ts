/**
 * The agent's and the cache server's Prometheus registries exactly as the code builds them (an
 * agent with KV tiers, L1 and L2, so every series it can export is registered), for the tests
 * that check the Grafana dashboards and docs/dashboard.md against what is really exported.
 */
import type { Registry } from "prom-client";
import { AgentMetrics } from "../../dataplane/agent/metrics";
import { AgentKvTiers } from "../../dataplane/kvcache/agent-tiers";
import type { Logger } from "../../dataplane/lib/log";
import { CacheServerMetrics, ShardSupervisorMetrics } from "../../dataplane/kvcache/server/metrics";
import type { StoreStats } from "../../dataplane/kvcache/server/store";

const silent: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => silent };

export interface MetricInfo {
  name: string;
  type: string;
  /** The metric's own labels, without the registry's default labels. */
  labels: string[];
}

export function metricsOf(registry: Registry): MetricInfo[] {
  return registry.getMetricsAsArray().map((m) => {
    const meta = m as unknown as { name: string; type: string; labelNames?: string[] };
    return { name: meta.name, type: meta.type, labels: [...(meta.labelNames ?? [])] };
  });
}

/** An agent's registry with KV tiers (L1 and an L2 client with no servers yet: nothing connects). */
export async function withAgentMetrics<T>(use: (agent: AgentMetrics) => Promise<T> | T): Promise<T> {
  const kv = new AgentKvTiers({ l1: { bytes: 1024 * 1024 }, l2: {} }, { log: silent });
  try {
    return await use(new AgentMetrics("probe-node", new Map(), kv));
  } finally {
    await kv.close();
  }
}

export function cacheServerRegistry(): Registry {
  const zero = new Proxy({}, { get: () => 0 }) as StoreStats;
  return new CacheServerMetrics(() => zero, () => 0).registry;
}

/** The supervisor's own metrics of a sharded cache server (its shards' are cacheServerRegistry's, summed). */
export function shardSupervisorRegistry(): Registry {
  return new ShardSupervisorMetrics(() => ({ configured: 2, up: 2 })).registry;
}
