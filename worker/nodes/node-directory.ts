/**
 * Registered nodes as the heartbeat path sees them (D1, cached per isolate). Registration is the
 * operator's act (admin API); heartbeats only report load, so an unregistered or deleted node can
 * never join a pool however well it signs.
 */
import { eq } from "drizzle-orm";
import type { Db } from "../db/client";
import { nodeModels, nodes } from "../db/schema";
import { TtlCache } from "../lib/ttl-cache";
import { parseSecretRef, type SecretRef } from "./node-secrets";

export interface NodeRecord {
  id: string;
  region: string;
  url: string | null;
  secretRef: SecretRef;
  /** Pending rotation, if any. */
  nextSecretRef: SecretRef | null;
  drained: boolean;
  models: string[];
  createdAt: number;
  updatedAt: number;
}

const cache = new TtlCache<NodeRecord | null>(5_000, 10_000);

export function forgetNode(id: string): void {
  cache.delete(id);
}

export async function loadNode(db: Db, id: string): Promise<NodeRecord | null> {
  const row = (await db.select().from(nodes).where(eq(nodes.id, id)).limit(1))[0];
  if (!row) return null;
  const ref = parseSecretRef(row.secretRef);
  if (!ref) throw new Error(`node ${id} has an unreadable secret_ref`);
  const next = row.nextSecretRef ? (parseSecretRef(row.nextSecretRef) ?? null) : null;
  // A reference we cannot read is treated as no pending rotation rather than a broken node.
  const served = await db.select({ model: nodeModels.model }).from(nodeModels).where(eq(nodeModels.nodeId, id));
  return {
    id: row.id,
    region: row.region,
    url: row.url,
    secretRef: ref,
    nextSecretRef: next,
    drained: row.drained,
    models: served.map((m) => m.model).sort(),
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}

export function getNode(db: Db, id: string): Promise<NodeRecord | null> {
  return cache.getOrLoad(id, () => loadNode(db, id));
}
