import { describe, expect, it } from "vitest";
import { call, configureModel, engine, errorOf, heartbeat, poolSnapshot, registerNode, unique } from "./helpers";
import { HEARTBEAT_PATH } from "../../protocol/heartbeat";

async function setup() {
  const model = unique("hb-model");
  await configureModel(model);
  const nodeId = unique("node");
  const secret = await registerNode(nodeId, [model]);
  return { model, nodeId, secret };
}

describe("heartbeats", () => {
  it("a signed heartbeat puts the node in its model's pool", async () => {
    const { model, nodeId, secret } = await setup();
    const res = await heartbeat(nodeId, secret, [engine(model, { running: 3, kvUsage: 0.25 })]);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ ok: true, accepted: [model], ignored: [], draining: false });
    const snap = await poolSnapshot(model);
    expect(snap.nodes).toHaveLength(1);
    expect(snap.nodes[0]).toMatchObject({ nodeId, status: "healthy", running: 3, kvUsage: 0.25, url: `http://${nodeId}.agent.test:8801` });
  });

  it("ignores models the node is not registered for or that are not configured", async () => {
    const { model, nodeId, secret } = await setup();
    const res = await heartbeat(nodeId, secret, [engine(model), engine("someone-elses-model")]);
    expect(await res.json()).toMatchObject({ accepted: [model], ignored: ["someone-elses-model"] });
  });

  it("refuses unsigned, badly signed, replayed and stale heartbeats", async () => {
    const { model, nodeId, secret } = await setup();
    const body = JSON.stringify({ nodeId, agentVersion: "t", sentAt: Date.now(), engines: [engine(model)] });
    const unsigned = await call(HEARTBEAT_PATH, { method: "POST", body });
    expect(unsigned.status).toBe(401);
    expect((await errorOf(unsigned)).code).toBe("missing_signature");

    const forged = await heartbeat(nodeId, `sy_ns_1_${"x".repeat(43)}`, [engine(model)]);
    expect(forged.status).toBe(401);
    expect((await errorOf(forged)).code).toBe("bad_signature");

    const first = await heartbeat(nodeId, secret, [engine(model)], { nonce: "fixed-nonce-1" });
    expect(first.status).toBe(200);
    const replay = await heartbeat(nodeId, secret, [engine(model)], { nonce: "fixed-nonce-1" });
    expect(replay.status).toBe(401);
    expect((await errorOf(replay)).code).toBe("replayed_nonce");

    const stale = await heartbeat(nodeId, secret, [engine(model)], { timestampMs: Date.now() - 5 * 60_000 });
    expect(stale.status).toBe(401);
    expect((await errorOf(stale)).code).toBe("expired_timestamp");
  });

  it("refuses a heartbeat from an unregistered node", async () => {
    const res = await heartbeat("ghost-node", `sy_ns_1_${"y".repeat(43)}`, []);
    expect(res.status).toBe(401);
  });

  it("answers 400 naming the bad field of a well-signed but malformed heartbeat", async () => {
    const { model, nodeId, secret } = await setup();
    const res = await heartbeat(nodeId, secret, [], { body: { nodeId, agentVersion: "t", sentAt: Date.now(), engines: [{ ...engine(model), kvUsage: 7 }] } });
    expect(res.status).toBe(400);
    expect((await errorOf(res)).param).toBe("engines[0].kvUsage");
  });

  it("a leaving heartbeat takes the node out at once; the next one brings it back", async () => {
    const { model, nodeId, secret } = await setup();
    await heartbeat(nodeId, secret, [engine(model)]);
    await heartbeat(nodeId, secret, [engine(model)], { leaving: true });
    expect((await poolSnapshot(model)).nodes[0]?.status).toBe("left");
    await heartbeat(nodeId, secret, [engine(model)]);
    expect((await poolSnapshot(model)).nodes[0]?.status).toBe("healthy");
  });

  it("an engine reported unhealthy is not routed to", async () => {
    const { model, nodeId, secret } = await setup();
    await heartbeat(nodeId, secret, [engine(model, { healthy: false })]);
    expect((await poolSnapshot(model)).nodes[0]?.status).toBe("unhealthy");
  });

  it("ignores a heartbeat older than one already seen", async () => {
    const { model, nodeId, secret } = await setup();
    const now = Date.now();
    await heartbeat(nodeId, secret, [engine(model, { running: 5 })], { sentAt: now });
    await heartbeat(nodeId, secret, [engine(model, { running: 1 })], { sentAt: now - 1_000 });
    expect((await poolSnapshot(model)).nodes[0]?.running).toBe(5);
  });
});
