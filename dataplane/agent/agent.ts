/**
 * Starting and stopping a node agent: engines up, HTTP server listening, heartbeats flowing.
 * Stop is graceful: a `leaving` heartbeat first (the edge stops routing here), then the server,
 * then the engines.
 */
import { serve, type ServerType } from "@hono/node-server";
import type { AddressInfo } from "node:net";
import type { Heartbeat } from "../../protocol/heartbeat";
import type { EngineAdapter } from "../engines/engine";
import { createEngine } from "../engines/registry";
import { createLogger, setLogLevel, type Logger } from "../lib/log";
import { Admission } from "./admission";
import type { AgentConfig } from "./config";
import { HeartbeatLoop } from "./heartbeat-loop";
import { InboundVerifier } from "./inbound-auth";
import { AgentMetrics } from "./metrics";
import { createAgentApp, type EngineSlot } from "./server";

export const AGENT_VERSION = "0.1.0";

export interface RunningAgent {
  readonly nodeId: string;
  /** Where the agent listens (the actual port when configured with 0). */
  readonly url: string;
  readonly engines: ReadonlyMap<string, EngineSlot>;
  readonly heartbeat: HeartbeatLoop;
  stop(opts?: { leaving?: boolean }): Promise<void>;
}

export interface StartOptions {
  /** Pre-built engines (tests); otherwise built from config. */
  engines?: EngineAdapter[];
  log?: Logger;
}

export async function startAgent(config: AgentConfig, opts: StartOptions = {}): Promise<RunningAgent> {
  setLogLevel(config.logLevel);
  const log = opts.log ?? createLogger({ component: "agent", node: config.nodeId });
  const adapters = opts.engines ?? (await Promise.all(config.engines.map((e) => createEngine(e, log.child({ engine: e.kind, model: e.model })))));
  const engines = new Map<string, EngineSlot>();
  for (const engine of adapters) engines.set(engine.model, { engine, admission: new Admission(engine.maxConcurrency, config.queue.maxWaiting) });

  const started: EngineAdapter[] = [];
  try {
    for (const engine of adapters) {
      await engine.start();
      started.push(engine);
      log.info("engine_started", { model: engine.model, engine: engine.kind, maxConcurrency: engine.maxConcurrency });
    }
  } catch (err) {
    await Promise.allSettled(started.map((e) => e.stop()));
    throw err;
  }

  const secrets = [config.edge.nodeSecret, ...(config.edge.previousNodeSecret ? [config.edge.previousNodeSecret] : [])];
  const verifier = new InboundVerifier(config.nodeId, secrets, config.signatureWindowMs);
  const metrics = new AgentMetrics(config.nodeId, engines);
  const app = createAgentApp({ nodeId: config.nodeId, engines, verifier, metrics, log });

  let server: ServerType;
  try {
    server = await new Promise<ServerType>((resolve, reject) => {
      // A listen error (port taken, bad host) must fail the start, not leave it pending forever.
      const s = serve({ fetch: app.fetch, hostname: config.listen.host, port: config.listen.port }, () => {
        s.off("error", reject);
        resolve(s);
      });
      s.once("error", reject);
    });
  } catch (err) {
    await Promise.allSettled(started.map((e) => e.stop()));
    throw err;
  }
  const address = server.address() as AddressInfo;
  const url = `http://${config.listen.host.includes(":") ? `[${config.listen.host}]` : config.listen.host}:${address.port}`;
  const advertised = config.advertiseUrl ?? url;
  log.info("agent_listening", { url, advertised });

  const snapshot = (leaving: boolean): Heartbeat => ({
    nodeId: config.nodeId,
    region: config.region,
    url: advertised,
    agentVersion: AGENT_VERSION,
    sentAt: Date.now(),
    leaving,
    engines: [...engines.values()].map(({ engine, admission }) => {
      const load = engine.load();
      return {
        model: engine.model,
        engine: engine.kind,
        healthy: load.healthy,
        running: Math.max(load.running, admission.running),
        waiting: load.waiting + admission.waiting,
        maxConcurrency: engine.maxConcurrency,
        kvUsage: load.kvUsage,
        kvCapacityTokens: load.kvCapacityTokens,
        ...(load.kvEvictedTokens !== undefined ? { kvEvictedTokens: load.kvEvictedTokens } : {}),
        ...(load.kvEpoch !== undefined ? { kvEpoch: load.kvEpoch } : {}),
      };
    }),
  });
  const heartbeat = new HeartbeatLoop({
    edgeUrl: config.edge.url,
    nodeId: config.nodeId,
    secret: config.edge.nodeSecret,
    intervalMs: config.edge.heartbeatIntervalMs,
    snapshot,
    log,
    onResult: (ok) => metrics.heartbeats.inc({ result: ok ? "ok" : "failed" }),
  });
  heartbeat.start();

  let stopping: Promise<void> | undefined;
  return {
    nodeId: config.nodeId,
    url,
    engines,
    heartbeat,
    stop: ({ leaving = true } = {}) =>
      (stopping ??= (async () => {
        await heartbeat.stop(leaving);
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          // Open keep-alive and streaming connections would hold close() forever.
          (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
        });
        await Promise.allSettled(adapters.map((e) => e.stop()));
        log.info("agent_stopped");
      })()),
  };
}
