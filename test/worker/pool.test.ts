/** The pool object on its own: registry, leases, decisions, persistence across a restart. */
import { env } from "cloudflare:workers";
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { PoolCore } from "../../worker/pool/pool-core";
import { PoolObject } from "../../worker/pool/pool-object";
import type { PoolHeartbeat, RouteResult } from "../../worker/pool/types";
import type { Env as WorkerEnv } from "../../worker/env";
import { engine, unique } from "./helpers";

function beat(nodeId: string, model: string, over: Partial<PoolHeartbeat> = {}): PoolHeartbeat {
  return { nodeId, region: "local", url: `http://${nodeId}:1`, drained: false, sentAt: Date.now(), leaving: false, engines: [engine(model)], ...over };
}

const LR = [{ name: "least-request", weight: 1 }];

describe("pool object", () => {
  it("counts in-flight requests at decision time, so a burst spreads over nodes", async () => {
    const pool = env.POOL.getByName(unique("pool"));
    for (const n of ["a", "b", "c", "d"]) await pool.heartbeat(beat(n, "m"));
    const picks = await Promise.all(Array.from({ length: 8 }, (_, i) => pool.route({ requestId: `r${i}`, tenantId: "t", model: "m", strategies: LR })));
    const counts = new Map<string, number>();
    for (const p of picks) if (p.ok) counts.set(p.nodeId, (counts.get(p.nodeId) ?? 0) + 1);
    expect([...counts.values()]).toEqual([2, 2, 2, 2]);
    const snap = await pool.snapshot();
    expect(snap.inflight).toBe(8);
    expect(snap.nodes.every((n) => n.inflight === 2)).toBe(true);
  });

  it("releases a request exactly once", async () => {
    const pool = env.POOL.getByName(unique("pool"));
    await pool.heartbeat(beat("a", "m"));
    const r = await pool.route({ requestId: "only", tenantId: "t", model: "m", strategies: LR });
    expect(r.ok).toBe(true);
    expect(await pool.release({ requestId: "only", outcome: "completed" })).toEqual({ released: true });
    expect(await pool.release({ requestId: "only", outcome: "completed" })).toEqual({ released: false });
    expect((await pool.snapshot()).inflight).toBe(0);
  });

  it("answers no_nodes, then no_healthy_nodes, with a retry hint", async () => {
    const pool = env.POOL.getByName(unique("pool"));
    const none = await pool.route({ requestId: "x", tenantId: "t", model: "m", strategies: LR });
    expect(none).toMatchObject({ ok: false, reason: "no_nodes" });
    await pool.heartbeat(beat("a", "m", { drained: true }));
    const drained = await pool.route({ requestId: "y", tenantId: "t", model: "m", strategies: LR });
    expect(drained).toMatchObject({ ok: false, reason: "no_healthy_nodes" });
    if (!drained.ok) expect(drained.retryAfterSeconds).toBeGreaterThan(0);
  });

  it("skips excluded nodes and cools down a node that failed", async () => {
    const pool = env.POOL.getByName(unique("pool"));
    await pool.heartbeat(beat("a", "m"));
    await pool.heartbeat(beat("b", "m"));
    const first = await pool.route({ requestId: "r", tenantId: "t", model: "m", strategies: LR, exclude: ["a"] });
    expect(first).toMatchObject({ ok: true, nodeId: "b" });
    await pool.reportFailure("r", "b");
    expect((await pool.snapshot()).inflight).toBe(0);
    for (let i = 0; i < 5; i++) {
      const r = await pool.route({ requestId: `s${i}`, tenantId: "t", model: "m", strategies: LR });
      expect(r).toMatchObject({ ok: true, nodeId: "a" });
    }
    expect((await pool.snapshot()).nodes.find((n) => n.nodeId === "b")?.status).toBe("failing");
  });

  it("routes a model only to nodes that serve it", async () => {
    const pool = env.POOL.getByName(unique("pool"));
    await pool.heartbeat(beat("a", "m1"));
    await pool.heartbeat(beat("b", "m2"));
    for (let i = 0; i < 4; i++) {
      expect(await pool.route({ requestId: `q${i}`, tenantId: "t", model: "m2", strategies: LR })).toMatchObject({ ok: true, nodeId: "b" });
    }
  });

  it("marks a node lost after missed heartbeats and brings it back on the next one", async () => {
    // The tests' own interval is long (so no test's nodes go stale on a slow box); this pool object
    // is built over a fresh object's storage with a 100 ms interval: stale after 3 intervals + 1 s.
    const stub = env.POOL.getByName(unique("pool"));
    await runInDurableObject(stub, async (_instance, state) => {
      const pool = new PoolObject(state, { ...(env as unknown as WorkerEnv), HEARTBEAT_INTERVAL_MS: "100" });
      const beatAt = Date.now();
      await pool.heartbeat(beat("a", "m"));
      await new Promise((r) => setTimeout(r, 500));
      // Silent for less than the bound: still healthy (only checkable when the box kept to time).
      if (Date.now() - beatAt < 1_300) expect((await pool.snapshot()).nodes[0]?.status).toBe("healthy");
      await new Promise((r) => setTimeout(r, 1_000));
      expect((await pool.snapshot()).nodes[0]?.status).toBe("lost");
      expect(await pool.route({ requestId: "z", tenantId: "t", model: "m", strategies: LR })).toMatchObject({ ok: false, reason: "no_healthy_nodes" });
      await pool.heartbeat(beat("a", "m"));
      expect((await pool.snapshot()).nodes[0]?.status).toBe("healthy");
    });
  });

  it("keeps its registry and in-flight leases across a restart", async () => {
    const stub = env.POOL.getByName(unique("pool"));
    await stub.heartbeat(beat("a", "m"), "restart-pool");
    await stub.heartbeat(beat("b", "m"), "restart-pool");
    await stub.route({ requestId: "held", tenantId: "t", model: "m", strategies: LR });
    const before = await stub.snapshot();
    // A new instance over the same storage is what the runtime builds after eviction or a deploy.
    const after = await runInDurableObject(stub, async (_instance, state) => new PoolObject(state, env as unknown as WorkerEnv).snapshot());
    expect(after.pool).toBe("restart-pool");
    expect(after.inflight).toBe(1);
    expect(after.nodes.map((n) => [n.nodeId, n.inflight])).toEqual(before.nodes.map((n) => [n.nodeId, n.inflight]));
  });

  it("forgets engines a node stops reporting", async () => {
    const pool = env.POOL.getByName(unique("pool"));
    await pool.heartbeat(beat("a", "m", { engines: [engine("m"), engine("m-other")] }));
    expect((await pool.snapshot()).nodes).toHaveLength(2);
    await pool.heartbeat(beat("a", "m", { engines: [engine("m")] }));
    expect((await pool.snapshot()).nodes.map((n) => n.model)).toEqual(["m"]);
  });
});

describe("leases nobody will release", () => {
  it("are dropped once old when their node's beats cannot account for them, the oldest first, and no others", () => {
    let now = 1_000_000;
    const core = new PoolCore({ staleAfterMs: 1e9, now: () => now, orphanLeaseAfterMs: 10_000 });
    const beatRunning = (running: number, waiting = 0) => core.heartbeat(beat("a", "m", { sentAt: now, engines: [engine("m", { running, waiting })] }));
    const route = (requestId: string) => {
      let out: RouteResult | undefined;
      core.submit({ requestId, tenantId: "t", model: "m", strategies: LR }, (r) => {
        out = r;
      });
      expect(out).toMatchObject({ ok: true, nodeId: "a" });
    };
    beatRunning(0);
    route("r0");
    now += 1;
    route("r1");
    now += 1;
    route("r2");
    // Young leases are never questioned: the agent may not have the request yet.
    now += 5_000;
    beatRunning(0);
    expect(core.snapshot("p").inflight).toBe(3);
    // Eleven seconds on, the agent runs one request and queues none: two of the three are orphans.
    now += 6_000;
    route("r3");
    beatRunning(1);
    expect(core.snapshot("p").inflight).toBe(2);
    expect(core.release({ requestId: "r0", outcome: "completed" })).toEqual({ released: false });
    expect(core.release({ requestId: "r1", outcome: "completed" })).toEqual({ released: false });
    // The agent's queue counts as held too.
    beatRunning(0, 1);
    expect(core.snapshot("p").inflight).toBe(2);
    expect(core.release({ requestId: "r2", outcome: "completed" })).toEqual({ released: true });
    expect(core.release({ requestId: "r3", outcome: "completed" })).toEqual({ released: true });
  });

  it("are left to expire when the core is not told to look for them", () => {
    let now = 0;
    const core = new PoolCore({ staleAfterMs: 1e9, now: () => now });
    core.heartbeat(beat("a", "m", { sentAt: now }));
    core.submit({ requestId: "r", tenantId: "t", model: "m", strategies: LR }, () => {});
    now += 3_600_000;
    core.heartbeat(beat("a", "m", { sentAt: now }));
    expect(core.snapshot("p").inflight).toBe(1);
  });
});

describe("per-request state", () => {
  // Every way a request ends at the edge, as worker/api/proxy.ts drives the pool object; once all
  // have ended, nothing the pool keeps per request may be left (a soak would otherwise grow it).
  it("is dropped on every path a request can end by", async () => {
    const pool = env.POOL.getByName(unique("pool"));
    await pool.heartbeat(beat("a", "m"));
    await pool.heartbeat(beat("b", "m"));
    const prompt = { blocks: [1, 2, 3], tokens: 150, maxTokens: 32 };
    const route = (requestId: string, over: Record<string, unknown> = {}) => pool.route({ requestId, tenantId: "t", model: "m", strategies: LR, prompt, ...over });
    // Waited for room and left the queue when its client went away.
    const full = { policy: "fcfs", maxWaitMs: 60_000, nodeLimit: 1 };
    await route("holder-a", { admission: full });
    await route("holder-b", { admission: full });
    const waiting = route("waiter", { admission: full });
    expect(await pool.cancelWait("waiter")).toBe(true);
    expect(await waiting).toMatchObject({ ok: false, reason: "cancelled" });
    await pool.release({ requestId: "holder-a", outcome: "cancelled" });
    await pool.release({ requestId: "holder-b", outcome: "completed", usage: { promptTokens: 150, completionTokens: 1, cachedTokens: 0, estimated: false } });
    // Completed: the engine's usage came back.
    await route("done");
    await pool.release({ requestId: "done", outcome: "completed", usage: { promptTokens: 150, completionTokens: 32, cachedTokens: 0, estimated: false } });
    // Cancelled or broken before any token: the edge has no usage to report.
    await route("cancelled");
    await pool.release({ requestId: "cancelled", outcome: "cancelled" });
    await route("broken");
    await pool.release({ requestId: "broken", outcome: "failed" });
    // Refused by its first node, then served by another.
    const first = await route("retried");
    if (!first.ok) throw new Error("expected a node");
    await pool.reportFailure("retried", first.nodeId);
    await route("retried", { exclude: [first.nodeId] });
    await pool.release({ requestId: "retried", outcome: "completed", usage: { promptTokens: 150, completionTokens: 8, cachedTokens: 0, estimated: false } });
    // Refused by every node it tried (failed nodes cool down, so this comes last): the edge
    // answers 503 and releases nothing.
    const lone = await route("refused");
    if (!lone.ok) throw new Error("expected a node");
    await pool.reportFailure("refused", lone.nodeId);

    const snap = await pool.snapshot();
    expect(snap.inflight).toBe(0);
    // Load windows keep entries for their window's length by design; the rest is per request.
    expect(snap.memory).toMatchObject({ leases: 0, tenantTokenEstimates: 0, tenants: 1 });
  });
});
