/**
 * Per-node signing secrets. D1 stores only a reference to where a node's secret lives:
 *  - `derived:<version>`: HMAC-SHA256(NODE_SECRET_KEY, "switchyard-node:<id>:<version>"), so the
 *    only stored secret is the Worker secret NODE_SECRET_KEY, and rotating a node bumps the version;
 *  - `env:<BINDING>`: a Worker secret binding holding the node's secret (for operators who keep
 *    every node secret in a secret store of their own).
 * A secret string embeds its version (`sy_ns_<version>_<mac>`), so an agent is configured with one
 * string and signs with the right version without further config.
 */
import { toBase64Url, utf8 } from "../../protocol/encoding";

export type SecretRef = { kind: "derived"; version: number } | { kind: "env"; binding: string; version: number };

export function parseSecretRef(ref: string): SecretRef | undefined {
  const derived = /^derived:(\d{1,9})$/.exec(ref);
  if (derived) return { kind: "derived", version: Number(derived[1]) };
  const env = /^env:([A-Z_][A-Z0-9_]{0,127})(?::(\d{1,9}))?$/.exec(ref);
  if (env) return { kind: "env", binding: env[1] as string, version: env[2] ? Number(env[2]) : 1 };
  return undefined;
}

export function formatSecretRef(ref: SecretRef): string {
  return ref.kind === "derived" ? `derived:${ref.version}` : `env:${ref.binding}:${ref.version}`;
}

export async function deriveNodeSecret(masterKey: string, nodeId: string, version: number): Promise<string> {
  const key = await crypto.subtle.importKey("raw", utf8(masterKey), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, utf8(`switchyard-node:${nodeId}:${version}`)));
  return `sy_ns_${version}_${toBase64Url(mac)}`;
}

/** The version embedded in a secret string, or undefined when the string is not one of ours. */
export function secretVersion(secret: string): number | undefined {
  const m = /^sy_ns_(\d{1,9})_/.exec(secret);
  return m ? Number(m[1]) : undefined;
}

/** Resolves a node's current secret; undefined when the reference cannot be resolved. */
export async function resolveNodeSecret(ref: SecretRef, nodeId: string, env: { NODE_SECRET_KEY?: string } & Record<string, unknown>): Promise<string | undefined> {
  if (ref.kind === "derived") {
    if (!env.NODE_SECRET_KEY) return undefined;
    return deriveNodeSecret(env.NODE_SECRET_KEY, nodeId, ref.version);
  }
  const value = env[ref.binding];
  return typeof value === "string" && value.length > 0 ? value : undefined;
}
