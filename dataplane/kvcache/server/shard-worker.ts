/**
 * One shard of a sharded cache server, in its own worker thread (started by sharded-server.ts):
 * a plain CacheServer over its share of the capacity, on its own port, with its own event loop, so
 * N shards move bytes on N cores. Talks to the supervisor with the messages below; logs are
 * forwarded so the supervisor's logger decides where they go.
 */
import { parentPort, workerData } from "node:worker_threads";
import type { Logger, LogLevel } from "../../lib/log";
import { CacheServer } from "./cache-server";
import type { CacheServerConfigInput } from "./config";

/** Supervisor → shard. */
export type ToShard = { type: "ports"; ports: number[] } | { type: "metrics"; id: number } | { type: "close"; graceMs?: number };
/** Shard → supervisor. */
export type FromShard =
  | { type: "listening"; port: number }
  | { type: "failed"; message: string; code?: string }
  | { type: "ready" }
  | { type: "metrics"; id: number; json: unknown }
  | { type: "log"; level: LogLevel; event: string; fields?: Record<string, unknown> }
  | { type: "closed" };

export interface ShardWorkerData {
  options: CacheServerConfigInput;
}

const port = parentPort;
if (port === null) throw new Error("shard-worker.ts runs in a worker thread (see sharded-server.ts)");
const post = (m: FromShard) => port.postMessage(m);

/** A shard's start and stop are `shard_listening` / `shard_stopped`: the process's one `listening` line is the supervisor's, once every shard is up. */
const RENAMED: Record<string, string> = { listening: "shard_listening", stopped: "shard_stopped" };

function forwardingLogger(base: Record<string, unknown>): Logger {
  const emit = (level: LogLevel) => (event: string, fields?: Record<string, unknown>) => post({ type: "log", level, event: RENAMED[event] ?? event, fields: { ...base, ...fields } });
  return { debug: emit("debug"), info: emit("info"), warn: emit("warn"), error: emit("error"), child: (fields) => forwardingLogger({ ...base, ...fields }) };
}

const { options } = workerData as ShardWorkerData;
let server: CacheServer;
try {
  server = await CacheServer.start({ ...options, logger: forwardingLogger({}) });
} catch (err) {
  const e = err as NodeJS.ErrnoException;
  post({ type: "failed", message: e.message, code: e.code ?? e.name });
  port.close();
  throw err;
}
post({ type: "listening", port: server.endpoint.port });
port.on("message", (m: ToShard) => {
  if (m.type === "ports") {
    server.setShardPorts(m.ports);
    post({ type: "ready" });
  } else if (m.type === "metrics") {
    void server.metrics.registry.getMetricsAsJSON().then((json) => post({ type: "metrics", id: m.id, json }));
  } else if (m.type === "close") {
    void server.close({ graceMs: m.graceMs }).then(() => {
      post({ type: "closed" });
      port.close();
    });
  }
});
