/**
 * L2 membership from the edge, end to end in the agents: two agents, each advertising the cache
 * server beside it, converge on the same ring from the heartbeat replies, so a chunk one of them
 * writes is found by the other; when one leaves, its server leaves the other's ring. One of the two
 * servers runs 2 shards: the edge still carries one address for it, the clients find the shards. The edge here
 * is the production PoolCore behind a plain HTTP handler (the worker's route, signatures and
 * Durable Object around it are tested in workerd: test/worker/cache-servers.test.ts).
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningAgent, startAgent } from "../../../dataplane/agent/agent";
import { parseAgentConfig } from "../../../dataplane/agent/config";
import type { CacheServer } from "../../../dataplane/kvcache/server/cache-server";
import { ShardedCacheServer } from "../../../dataplane/kvcache/server/sharded-server";
import { heartbeatSchema, type HeartbeatReply } from "../../../protocol/heartbeat";
import { PoolCore } from "../../../worker/pool/pool-core";
import { addr, bytes, key, quietLogger, startServer } from "../kvcache/l2-test-support";
import { SECRET, silent, waitFor } from "../kvcache/llamacpp-tiers-support";

/** The pool's registry and its cache-server list, answering heartbeats as the edge does. */
async function poolEdge(): Promise<{ url: string; close(): Promise<void> }> {
  const core = new PoolCore({ staleAfterMs: 3 * 200 + 1_000 });
  const server: Server = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString("utf8")));
    req.on("end", () => {
      const hb = heartbeatSchema.parse(JSON.parse(body));
      const out = core.heartbeat({
        nodeId: hb.nodeId,
        region: hb.region ?? "local",
        url: hb.url ?? "",
        drained: false,
        sentAt: hb.sentAt,
        leaving: hb.leaving,
        engines: hb.engines,
        ...(hb.cacheServer !== undefined ? { cacheServer: hb.cacheServer } : {}),
      });
      const reply: HeartbeatReply = { ok: true, accepted: hb.engines.map((e) => e.model), ignored: [], draining: out.draining, intervalMs: 200, ...(out.cacheServers ? { cacheServers: out.cacheServers } : {}) };
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(reply));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise<void>((r) => server.close(() => r())) };
}

let s1: CacheServer;
let s2: ShardedCacheServer;
const addr2 = () => `127.0.0.1:${s2.endpoint.port}`;
beforeAll(async () => {
  [s1, s2] = await Promise.all([startServer(), ShardedCacheServer.start({ port: 0, shards: 2, capacityBytes: 64 * 1024 * 1024, metricsPort: null, logger: quietLogger })]);
});
afterAll(async () => {
  await Promise.allSettled([s1?.close(), s2?.close()]);
});

function agent(nodeId: string, edgeUrl: string, cacheServer: string): Promise<RunningAgent> {
  return startAgent(
    parseAgentConfig(
      {
        nodeId,
        region: "local",
        listen: { port: 0 },
        edge: { url: edgeUrl, nodeSecret: SECRET, heartbeatIntervalMs: 200 },
        engines: [{ kind: "sim", model: "sim", kvCapacityTokens: 4096, modelShape: { layers: 1, kvHeads: 1, headDim: 8 } }],
        // No servers configured: the membership comes from the edge.
        kvCache: { l1: { bytes: "1MiB" }, l2: {} },
        advertiseCacheServer: cacheServer,
      },
      "test",
    ),
    { log: silent },
  );
}

describe("L2 membership from the edge", () => {
  it("two agents converge on one ring from the edge's replies, share chunks through it, and drop a server whose node left", async () => {
    const edge = await poolEdge();
    const a = await agent("node-a", edge.url, addr(s1));
    const b = await agent("node-b", edge.url, addr2());
    try {
      const both = [addr(s1), addr2()].sort();
      await waitFor(() => a.kvTiers?.l2?.members().length === 2 && b.kvTiers?.l2?.members().length === 2, "both agents to learn both servers");
      expect(a.kvTiers?.l2?.members().sort()).toEqual(both);
      expect(b.kvTiers?.l2?.members().sort()).toEqual(both);
      const ks = Array.from({ length: 64 }, (_, i) => key(`ring:${i}`));
      const owners = ks.map((k) => a.kvTiers?.l2?.serversFor(k)[0]);
      expect(ks.map((k) => b.kvTiers?.l2?.serversFor(k)[0])).toEqual(owners);
      expect(new Set(owners)).toEqual(new Set(both));

      // What a writes, b finds in L2 (it has nothing in its own L1).
      const shared = ks.slice(0, 8);
      const values = shared.map((_, i) => bytes(4_096, i + 1));
      a.kvTiers?.store(shared, values);
      await a.kvTiers?.flushWrites();
      const found = await b.kvTiers?.lookup(shared);
      expect(found).toMatchObject({ fromL1: 0, fromL2: 8 });
      expect(b.kvTiers?.l2?.clientStats().servers.find((h) => h.id === addr2())?.shards).toHaveLength(2);
      found?.values.forEach((v, i) => expect(Buffer.from(v).equals(values[i] as Buffer)).toBe(true));
      found?.done();

      await a.stop();
      await waitFor(() => b.kvTiers?.l2?.members().length === 1, "a's server to leave b's ring");
      expect(b.kvTiers?.l2?.members()).toEqual([addr2()]);
    } finally {
      await Promise.allSettled([a.stop(), b.stop({ leaving: false })]);
      await edge.close();
    }
  });
});
