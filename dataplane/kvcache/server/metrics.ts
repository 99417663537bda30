/**
 * The cache server's Prometheus metrics, served on their own small HTTP port (`/metrics`,
 * `/healthz`) so a scrape never queues behind 32 MiB values on the data port. Names are listed in
 * docs/kv-cache.md ("Cache server metrics").
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { StoreStats } from "./store";

/** Seconds: 50 µs (a PREFIX probe) .. 5 s (a 128 MiB value on a slow link). */
const LATENCY_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export class CacheServerMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<"op" | "status">;
  readonly duration: Histogram<"op">;
  readonly protocolErrors: Counter<"reason">;
  readonly connectionsTotal: Counter;

  constructor(stats: () => StoreStats, connections: () => number) {
    collectDefaultMetrics({ register: this.registry, prefix: "switchyard_kvcache_server_" });
    const registers = [this.registry];
    this.requests = new Counter({ name: "switchyard_kvcache_server_requests_total", help: "Requests answered, by op and status", labelNames: ["op", "status"], registers });
    this.duration = new Histogram({
      name: "switchyard_kvcache_server_request_duration_seconds",
      help: "From a request's last byte received to its reply's last byte handed to the kernel",
      labelNames: ["op"],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.protocolErrors = new Counter({ name: "switchyard_kvcache_server_protocol_errors_total", help: "Connections closed for unreadable framing or a stalled frame", labelNames: ["reason"], registers });
    this.connectionsTotal = new Counter({ name: "switchyard_kvcache_server_connections_accepted_total", help: "Connections accepted", registers });
    // Store counters are read at scrape time: the hot path only bumps plain numbers.
    const fromStats = (name: string, help: string, read: (s: StoreStats) => number, kind: "counter" | "gauge") => {
      if (kind === "counter") {
        new Counter({
          name,
          help,
          registers,
          collect() {
            this.reset();
            this.inc(read(stats()));
          },
        });
      } else {
        new Gauge({
          name,
          help,
          registers,
          collect() {
            this.set(read(stats()));
          },
        });
      }
    };
    fromStats("switchyard_kvcache_server_hits_total", "GETs that found their key", (s) => s.hits, "counter");
    fromStats("switchyard_kvcache_server_misses_total", "GETs that did not find their key", (s) => s.misses, "counter");
    fromStats("switchyard_kvcache_server_bytes_in_total", "Value bytes stored by PUTs", (s) => s.bytesIn, "counter");
    fromStats("switchyard_kvcache_server_bytes_out_total", "Value bytes returned by GETs", (s) => s.bytesOut, "counter");
    fromStats("switchyard_kvcache_server_evictions_total", "Objects evicted to make room", (s) => s.evictions, "counter");
    fromStats("switchyard_kvcache_server_evicted_bytes_total", "Value bytes evicted to make room", (s) => s.evictedBytes, "counter");
    fromStats("switchyard_kvcache_server_objects", "Objects held", (s) => s.objects, "gauge");
    fromStats("switchyard_kvcache_server_bytes_used", "Value bytes held", (s) => s.bytesUsed, "gauge");
    fromStats("switchyard_kvcache_server_capacity_bytes", "Value bytes the server may hold", (s) => s.capacityBytes, "gauge");
    new Gauge({
      name: "switchyard_kvcache_server_connections",
      help: "Open data connections",
      registers,
      collect() {
        this.set(connections());
      },
    });
  }
}

/** The supervisor's own metrics in a sharded server (sharded-server.ts), beside the shards' sums. */
export class ShardSupervisorMetrics {
  readonly registry = new Registry();
  readonly restarts: Counter;

  constructor(shards: () => { configured: number; up: number }) {
    const registers = [this.registry];
    this.restarts = new Counter({ name: "switchyard_kvcache_server_shard_restarts_total", help: "Shards that died and were started again (empty)", registers });
    new Gauge({
      name: "switchyard_kvcache_server_shards",
      help: "Shards configured",
      registers,
      collect() {
        this.set(shards().configured);
      },
    });
    new Gauge({
      name: "switchyard_kvcache_server_shards_up",
      help: "Shards serving",
      registers,
      collect() {
        this.set(shards().up);
      },
    });
  }
}

/** Serves `/metrics` and `/healthz`; resolves with the bound port. */
export async function startMetricsServer(registry: Registry, host: string, port: number): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method === "GET" && path === "/metrics") {
      registry.metrics().then(
        (text) => {
          res.writeHead(200, { "content-type": registry.contentType });
          res.end(text);
        },
        (err: unknown) => {
          res.writeHead(500, { "content-type": "text/plain" });
          res.end(String(err));
        },
      );
      return;
    }
    if (req.method === "GET" && path === "/healthz") {
      res.writeHead(200, { "content-type": "text/plain" });
      res.end("ok\n");
      return;
    }
    res.writeHead(404, { "content-type": "text/plain" });
    res.end("not found\n");
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
