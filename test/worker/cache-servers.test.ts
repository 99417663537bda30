/**
 * L2 membership from the edge: agents advertise their cache server in heartbeats, and each reply
 * carries the servers of the live nodes of the agent's region in its pools — only when one of them
 * advertises, so agents configured with their own list keep it. The edge also keeps each node's
 * last KV-tier report (shown in the admin pool stats, see stats.test.ts).
 */
import { env } from "cloudflare:workers";
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { HeartbeatReply, KvCacheReport } from "../../protocol/heartbeat";
import { PoolCore } from "../../worker/pool/pool-core";
import { PoolObject } from "../../worker/pool/pool-object";
import type { Env as WorkerEnv } from "../../worker/env";
import { configureModel, engine, errorOf, heartbeat, poolSnapshot, registerNode, unique } from "./helpers";

async function pool() {
  const model = unique("l2-model");
  await configureModel(model);
  const node = async (region = "local") => {
    const id = unique("node");
    const secret = await registerNode(id, [model], `http://${id}.agent.test:8801`, region);
    const beat = async (extra: Record<string, unknown> = {}, over: { leaving?: boolean } = {}) => {
      const res = await heartbeat(id, secret, [engine(model)], { ...over, extra });
      expect(res.status).toBe(200);
      return (await res.json()) as HeartbeatReply;
    };
    return { id, beat };
  };
  return { model, node };
}

const report: KvCacheReport = {
  chunkTokens: 256,
  windowMs: 60_000,
  tiers: [
    { tier: "l1", capacityBytes: 1 << 30, bytesUsed: 1 << 29, queries: 40, hits: 30, hitRate: 0.75, evictions: 2 },
    { tier: "l2", capacityBytes: 4 << 30, bytesUsed: 1 << 30, queries: 10, hits: 4, hitRate: 0.4, servers: 2, serversUp: 2 },
  ],
};

describe("cache servers from the edge", () => {
  it("hands every agent of the region the servers its live peers advertise, and nothing when none does", async () => {
    const { node } = await pool();
    const a = await node();
    const b = await node();
    const far = await node("far-away");
    expect((await a.beat()).cacheServers).toBeUndefined();
    expect((await a.beat({ cacheServer: "10.0.0.9:7400" })).cacheServers).toEqual(["10.0.0.9:7400"]);
    // b advertises nothing but hears of a's server; far is in another region and hears nothing.
    expect((await b.beat()).cacheServers).toEqual(["10.0.0.9:7400"]);
    expect((await far.beat({ cacheServer: "10.9.9.9:7400" })).cacheServers).toEqual(["10.9.9.9:7400"]);
    expect((await b.beat({ cacheServer: "10.0.0.7:7400" })).cacheServers).toEqual(["10.0.0.7:7400", "10.0.0.9:7400"]);
    expect((await a.beat({ cacheServer: "10.0.0.9:7400" })).cacheServers).toEqual(["10.0.0.7:7400", "10.0.0.9:7400"]);
  });

  it("drops a node's server when it leaves or stops advertising, and sends none once no one advertises", async () => {
    const { node } = await pool();
    const a = await node();
    const b = await node();
    await a.beat({ cacheServer: "[fd00::1]:7400" });
    expect((await b.beat({ cacheServer: "10.0.0.7:7400" })).cacheServers).toEqual(["10.0.0.7:7400", "[fd00::1]:7400"]);
    await a.beat({ cacheServer: "[fd00::1]:7400" }, { leaving: true });
    expect((await b.beat({ cacheServer: "10.0.0.7:7400" })).cacheServers).toEqual(["10.0.0.7:7400"]);
    // a is back, without a server.
    await a.beat();
    expect((await b.beat({ cacheServer: "10.0.0.7:7400" })).cacheServers).toEqual(["10.0.0.7:7400"]);
    expect((await b.beat()).cacheServers).toBeUndefined();
  });

  it("answers 400 naming the field for a cache server that is not host:port", async () => {
    const { model } = await pool();
    const id = unique("node");
    const secret = await registerNode(id, [model]);
    for (const bad of ["10.0.0.7", "10.0.0.7:0", "10.0.0.7:70000", "http://10.0.0.7:7400", "fd00::1:7400"]) {
      const res = await heartbeat(id, secret, [engine(model)], { extra: { cacheServer: bad } });
      expect(res.status, bad).toBe(400);
      expect((await errorOf(res)).param).toBe("cacheServer");
    }
  });

  it("keeps each node's server and last KV-tier report, across a restart of the pool object", async () => {
    const { model, node } = await pool();
    const a = await node();
    await a.beat({ cacheServer: "10.0.0.9:7400", kvCache: report });
    const snap = await poolSnapshot(model);
    expect(snap.nodes[0]).toMatchObject({ nodeId: a.id, cacheServer: "10.0.0.9:7400", kvCache: report });
    const stub = env.POOL.getByName(model);
    const after = await runInDurableObject(stub, async (_instance, state) => new PoolObject(state, env as unknown as WorkerEnv).snapshot());
    expect(after.nodes[0]).toMatchObject({ cacheServer: "10.0.0.9:7400", kvCache: report });
    // A beat without a report clears it: the tiers are gone.
    await a.beat();
    expect((await poolSnapshot(model)).nodes[0]).toMatchObject({ cacheServer: null, kvCache: null });
  });

  it("leaves out the server of a node gone silent (lost), and takes it back when it beats again", () => {
    let now = 1_000_000;
    const core = new PoolCore({ staleAfterMs: 4_000, now: () => now });
    const beat = (nodeId: string, cacheServer?: string) =>
      core.heartbeat({ nodeId, region: "r", url: `http://${nodeId}:1`, drained: false, sentAt: now, leaving: false, engines: [engine("m")], ...(cacheServer ? { cacheServer } : {}) });
    beat("a", "10.0.0.1:7400");
    expect(beat("b", "10.0.0.2:7400").cacheServers).toEqual(["10.0.0.1:7400", "10.0.0.2:7400"]);
    now += 3_000;
    expect(beat("b", "10.0.0.2:7400").cacheServers).toEqual(["10.0.0.1:7400", "10.0.0.2:7400"]);
    now += 2_000; // a: 5 s silent
    expect(beat("b", "10.0.0.2:7400").cacheServers).toEqual(["10.0.0.2:7400"]);
    expect(beat("a", "10.0.0.1:7400").cacheServers).toEqual(["10.0.0.1:7400", "10.0.0.2:7400"]);
    // Unhealthy or draining nodes still beat, and so does the server beside them: they stay.
    core.heartbeat({ nodeId: "a", region: "r", url: "http://a:1", drained: true, sentAt: now + 1, leaving: false, engines: [engine("m", { healthy: false })], cacheServer: "10.0.0.1:7400" });
    expect(core.cacheServersOf("r")).toEqual(["10.0.0.1:7400", "10.0.0.2:7400"]);
  });
});
