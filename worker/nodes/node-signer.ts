/**
 * Signs edge → agent requests with the node's current secret. Secrets are derived or read once per
 * node and version and kept in the isolate, so signing costs one HMAC per request.
 */
import { signRequest } from "../../protocol/signing";
import type { Db } from "../db/client";
import type { Env } from "../env";
import { TtlCache } from "../lib/ttl-cache";
import { getNode } from "./node-directory";
import { resolveNodeSecret } from "./node-secrets";

const secrets = new TtlCache<{ secret: string; version: number } | null>(5_000, 10_000);

export function forgetNodeSecret(nodeId: string): void {
  secrets.delete(nodeId);
}

export async function nodeSecret(env: Env, db: Db, nodeId: string): Promise<{ secret: string; version: number } | null> {
  return secrets.getOrLoad(nodeId, async () => {
    const node = await getNode(db, nodeId);
    if (!node) return null;
    const secret = await resolveNodeSecret(node.secretRef, node.id, env as unknown as Record<string, unknown>);
    return secret ? { secret, version: node.secretRef.version } : null;
  });
}

export async function signForNode(env: Env, db: Db, nodeId: string, method: string, path: string, body: Uint8Array): Promise<Record<string, string>> {
  const s = await nodeSecret(env, db, nodeId);
  if (!s) throw new Error(`no signing secret for node ${nodeId}`);
  return signRequest({ nodeId, keyVersion: s.version, secret: s.secret, method, path, body });
}
