/**
 * `POST /agent/v1/heartbeat`: a registered node, signing with its secret, reports its engines'
 * load. The edge forwards each engine's report to the pool object of that model; models the node is
 * not registered for, or that are not configured, are ignored and named in the reply.
 */
import { Hono } from "hono";
import { DEFAULT_HEARTBEAT_INTERVAL_MS, HEARTBEAT_PATH, heartbeatSchema, type HeartbeatReply } from "../../protocol/heartbeat";
import { ApiError } from "../../protocol/openai-error";
import { paramPath } from "../../protocol/openai-request";
import { NonceCache, verifyRequest } from "../../protocol/signing";
import { parseJsonBody, readBodyLimited } from "../api/body";
import { openDb } from "../db/client";
import { type AppEnv, numberVar } from "../env";
import { log } from "../lib/log";
import { listModels } from "../models/catalog";
import type { PoolHeartbeat } from "../pool/types";
import { getNode } from "./node-directory";
import { heartbeatSecret, promotePendingSecret } from "./node-signer";

const MAX_HEARTBEAT_BYTES = 64 * 1024;
const nonces = new NonceCache();

export const heartbeatRoutes = new Hono<AppEnv>().post(HEARTBEAT_PATH, async (c) => {
  const raw = await readBodyLimited(c.req.raw, MAX_HEARTBEAT_BYTES);
  const db = openDb(c.env.DB);
  const url = new URL(c.req.url);
  let signedWithPending = false;
  const verdict = await verifyRequest({
    method: "POST",
    path: url.pathname + url.search,
    body: raw,
    headers: c.req.raw.headers,
    secretFor: async (nodeId, version) => {
      const s = await heartbeatSecret(c.env, db, nodeId, version);
      signedWithPending = s?.pending ?? false;
      return s?.secret;
    },
    rememberNonce: (nodeId, nonce, ts) => nonces.remember(nodeId, nonce, ts),
  });
  if (!verdict.ok) {
    log("warn", "heartbeat_rejected", { reason: verdict.reason });
    throw new ApiError(401, `Heartbeat rejected: ${verdict.reason.replace(/_/g, " ")}.`, { code: verdict.reason });
  }
  const parsed = heartbeatSchema.safeParse(parseJsonBody(raw));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const param = issue ? paramPath(issue.path) : null;
    throw new ApiError(400, `Heartbeat field '${param ?? "body"}' is invalid: ${issue?.message ?? "bad value"}.`, { param, code: "invalid_heartbeat" });
  }
  const hb = parsed.data;
  if (hb.nodeId !== verdict.nodeId) throw new ApiError(400, "'nodeId' does not match the signing node.", { param: "nodeId", code: "invalid_heartbeat" });
  if (signedWithPending) {
    await promotePendingSecret(c.env, db, hb.nodeId);
    log("info", "node_secret_promoted", { node: hb.nodeId, keyVersion: verdict.keyVersion });
  }
  const node = await getNode(db, hb.nodeId);
  if (!node) throw new ApiError(401, "Heartbeat rejected: unknown node.", { code: "unknown_node" });
  const address = node.url ?? hb.url;
  if (!address) throw new ApiError(400, "The node has no registered URL and the heartbeat advertises none.", { param: "url", code: "invalid_heartbeat" });

  const configured = new Map((await listModels(db)).map((m) => [m.name, m.pool]));
  const registered = new Set(node.models);
  const byPool = new Map<string, PoolHeartbeat>();
  const accepted: string[] = [];
  const ignored: string[] = [];
  // Every pool of the node's registered models hears from it, even with no engines, so a pool whose
  // model the node stopped serving forgets it at once.
  for (const model of node.models) {
    const pool = configured.get(model);
    if (pool && !byPool.has(pool)) {
      byPool.set(pool, {
        nodeId: node.id,
        region: node.region,
        url: address,
        drained: node.drained,
        sentAt: hb.sentAt,
        leaving: hb.leaving,
        engines: [],
        ...(hb.cacheServer !== undefined ? { cacheServer: hb.cacheServer } : {}),
        ...(hb.kvCache !== undefined ? { kvCache: hb.kvCache } : {}),
      });
    }
  }
  for (const engine of hb.engines) {
    const pool = configured.get(engine.model);
    if (!pool || !registered.has(engine.model)) {
      ignored.push(engine.model);
      continue;
    }
    byPool.get(pool)?.engines.push(engine);
    accepted.push(engine.model);
  }
  const pools = await Promise.all([...byPool].map(([pool, beat]) => c.env.POOL.getByName(pool).heartbeat(beat, pool)));
  // L2 membership: the union over the node's pools of what the region's live nodes advertise. Only
  // sent when someone advertises, so agents configured with their own list keep it.
  const advertised = pools.flatMap((p) => p.cacheServers ?? []);
  const reply: HeartbeatReply = {
    ok: true,
    accepted,
    ignored,
    draining: node.drained,
    intervalMs: numberVar(c.env.HEARTBEAT_INTERVAL_MS, DEFAULT_HEARTBEAT_INTERVAL_MS),
    ...(advertised.length > 0 ? { cacheServers: [...new Set(advertised)].sort() } : {}),
  };
  return c.json(reply);
});
