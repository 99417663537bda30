/**
 * Node secrets at run time: the edge signs requests to an agent with the node's active secret, and
 * checks heartbeats against the active secret or a pending (rotated, not yet used) one. Derived
 * secrets are cached per isolate like the node records they come from.
 */
import { eq } from "drizzle-orm";
import type { RequestPriority } from "../../protocol/priority";
import { signRequest } from "../../protocol/signing";
import type { Db } from "../db/client";
import { nodes } from "../db/schema";
import type { Env } from "../env";
import { TtlCache } from "../lib/ttl-cache";
import { forgetNode, getNode } from "./node-directory";
import { deriveNodeSecret, formatSecretRef, type SecretRef } from "./node-secrets";

interface NodeSecrets {
  active: { secret: string; version: number };
  pending: { secret: string; version: number; ref: SecretRef } | null;
}

const secrets = new TtlCache<NodeSecrets | null>(5_000, 10_000);

export function forgetNodeSecret(nodeId: string): void {
  secrets.delete(nodeId);
}

async function secretsOf(env: Env, db: Db, nodeId: string): Promise<NodeSecrets | null> {
  return secrets.getOrLoad(nodeId, async () => {
    const node = await getNode(db, nodeId);
    const master = env.NODE_SECRET_KEY;
    if (!node || !master) return null;
    const active = { secret: await deriveNodeSecret(master, node.id, node.secretRef), version: node.secretRef.version };
    const pending = node.nextSecretRef
      ? { secret: await deriveNodeSecret(master, node.id, node.nextSecretRef), version: node.nextSecretRef.version, ref: node.nextSecretRef }
      : null;
    return { active, pending };
  });
}

/** The active secret, used to sign requests to the node. */
export async function nodeSecret(env: Env, db: Db, nodeId: string): Promise<{ secret: string; version: number } | null> {
  return (await secretsOf(env, db, nodeId))?.active ?? null;
}

/** The secret a heartbeat signed with `version` must verify against: active, or pending rotation. */
export async function heartbeatSecret(env: Env, db: Db, nodeId: string, version: number): Promise<{ secret: string; pending: boolean } | undefined> {
  const s = await secretsOf(env, db, nodeId);
  if (!s) return undefined;
  if (s.active.version === version) return { secret: s.active.secret, pending: false };
  if (s.pending?.version === version) return { secret: s.pending.secret, pending: true };
  return undefined;
}

/**
 * The agent has proved it holds the rotated secret: make it the active one. Idempotent, and safe
 * when several isolates race (the update only applies while that rotation is still pending).
 */
export async function promotePendingSecret(env: Env, db: Db, nodeId: string): Promise<void> {
  const s = await secretsOf(env, db, nodeId);
  if (!s?.pending) return;
  const ref = formatSecretRef(s.pending.ref);
  await db.update(nodes).set({ secretRef: ref, nextSecretRef: null, updatedAt: Date.now() }).where(eq(nodes.nextSecretRef, ref));
  forgetNode(nodeId);
  forgetNodeSecret(nodeId);
}

/** Signature headers (and the signed tenant, cache-namespace and priority headers) for a request to `nodeId`. */
export async function signForNode(
  env: Env,
  db: Db,
  nodeId: string,
  req: { method: string; path: string; body: Uint8Array; tenant: string; cacheNamespace: string; priority?: RequestPriority },
): Promise<Record<string, string>> {
  const s = await nodeSecret(env, db, nodeId);
  if (!s) throw new Error(`no signing secret for node ${nodeId}`);
  return signRequest({ nodeId, keyVersion: s.version, secret: s.secret, ...req });
}
