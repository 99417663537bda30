/**
 * Starting and stopping a node agent: engines up, HTTP server listening, heartbeats flowing.
 * Stop is graceful: a `leaving` heartbeat first (the edge stops routing here), then the server,
 * then the engines.
 */
import { serve, type ServerType } from "@hono/node-server";
import type { AddressInfo } from "node:net";
import { cacheServerListSchema, type Heartbeat, type HeartbeatReply } from "../../protocol/heartbeat";
import type { EngineAdapter } from "../engines/engine";
import { AgentKvTiers } from "../kvcache/agent-tiers";
import { createLogger, setLogLevel, type Logger } from "../lib/log";
import { Admission } from "./admission";
import type { AgentConfig } from "./config";
import { createAgentEngine } from "./engine-factory";
import { HeartbeatLoop } from "./heartbeat-loop";
import { InboundVerifier } from "./inbound-auth";
import { AgentMetrics } from "./metrics";
import { createAgentApp, type EngineSlot } from "./server";


/** Idle keep-alive of the agent's inbound connections (see where it is set). */
const AGENT_KEEP_ALIVE_MS = 120_000;
export const AGENT_VERSION = "0.1.0";

export interface RunningAgent {
  readonly nodeId: string;
  /** Where the agent listens (the actual port when configured with 0). */
  readonly url: string;
  readonly engines: ReadonlyMap<string, EngineSlot>;
  readonly heartbeat: HeartbeatLoop;
  /** The agent's KV tiers (config `kvCache`), shared by its engines. */
  readonly kvTiers: AgentKvTiers | undefined;
  stop(opts?: { leaving?: boolean }): Promise<void>;
}

export interface StartOptions {
  /** Pre-built engines (tests); otherwise built from config. */
  engines?: EngineAdapter[];
  /** Pre-built KV tiers (tests that built `engines` around them); otherwise built from `kvCache`. */
  kvTiers?: AgentKvTiers;
  log?: Logger;
}

export async function startAgent(config: AgentConfig, opts: StartOptions = {}): Promise<RunningAgent> {
  setLogLevel(config.logLevel);
  const log = opts.log ?? createLogger({ component: "agent", node: config.nodeId });
  const kv = opts.kvTiers ?? (config.kvCache ? new AgentKvTiers(config.kvCache, { log: log.child({ component: "kv-tiers" }) }) : undefined);
  let adapters: EngineAdapter[];
  try {
    adapters = opts.engines ?? (await Promise.all(config.engines.map((e) => createAgentEngine(e, log.child({ engine: e.kind, model: e.model }), kv))));
  } catch (err) {
    await kv?.close();
    throw err;
  }
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
    await kv?.close();
    throw err;
  }

  const secrets = [config.edge.nodeSecret, ...(config.edge.previousNodeSecret ? [config.edge.previousNodeSecret] : [])];
  const verifier = new InboundVerifier(config.nodeId, secrets, config.signatureWindowMs);
  const metrics = new AgentMetrics(config.nodeId, engines, kv);
  const app = createAgentApp({ nodeId: config.nodeId, engines, verifier, metrics, log });

  let server: ServerType;
  try {
    server = await new Promise<ServerType>((resolve, reject) => {
      // A listen error (port taken, bad host) must fail the start, not leave it pending forever.
      const s = serve({ fetch: app.fetch, hostname: config.listen.host, port: config.listen.port }, () => {
        s.off("error", reject);
        resolve(s);
      });
      // The edge keeps connections to agents pooled. Node closes an idle one after 5 s by default,
      // which races the edge reusing it: the request dies as "connection lost" before reaching us.
      // Outlast the client's idle pool instead (the usual rule for a server behind a proxy).
      const http = s as unknown as { keepAliveTimeout: number; headersTimeout: number };
      http.keepAliveTimeout = AGENT_KEEP_ALIVE_MS;
      http.headersTimeout = AGENT_KEEP_ALIVE_MS + 5_000;
      s.once("error", reject);
    });
  } catch (err) {
    await Promise.allSettled(started.map((e) => e.stop()));
    await kv?.close();
    throw err;
  }
  const address = server.address() as AddressInfo;
  const url = `http://${config.listen.host.includes(":") ? `[${config.listen.host}]` : config.listen.host}:${address.port}`;
  const advertised = config.advertiseUrl ?? url;
  log.info("agent_listening", { url, advertised });

  const tierHitRate = (model: string): { kvTierHitRate?: number } => {
    const rate = kv?.engineHitRate(model);
    return rate === undefined ? {} : { kvTierHitRate: rate };
  };
  const applyReply = (reply: HeartbeatReply) => {
    if (!kv || reply.cacheServers === undefined) return;
    const list = cacheServerListSchema.safeParse(reply.cacheServers);
    if (list.success) kv.setMembers(list.data);
    else log.warn("heartbeat_cache_servers_invalid", { error: list.error.issues[0]?.message });
  };
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
        ...tierHitRate(engine.model),
      };
    }),
    ...(kv ? { kvCache: kv.report() } : {}),
    ...(config.advertiseCacheServer !== undefined ? { cacheServer: config.advertiseCacheServer } : {}),
  });
  const heartbeat = new HeartbeatLoop({
    edgeUrl: config.edge.url,
    nodeId: config.nodeId,
    secret: config.edge.nodeSecret,
    intervalMs: config.edge.heartbeatIntervalMs,
    snapshot,
    log,
    onResult: (ok) => metrics.heartbeats.inc({ result: ok ? "ok" : "failed" }),
    onReply: applyReply,
  });
  heartbeat.start();

  let stopping: Promise<void> | undefined;
  return {
    nodeId: config.nodeId,
    url,
    engines,
    heartbeat,
    kvTiers: kv,
    stop: ({ leaving = true } = {}) =>
      (stopping ??= (async () => {
        await heartbeat.stop(leaving);
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          // Open keep-alive and streaming connections would hold close() forever.
          (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
        });
        await Promise.allSettled(adapters.map((e) => e.stop()));
        await kv?.close();
        log.info("agent_stopped");
      })()),
  };
}
