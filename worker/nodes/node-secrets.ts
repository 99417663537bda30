/**
 * Per-node signing secrets. D1 stores only a reference to a node's secret, `derived:<version>:<salt>`;
 * the secret is HMAC-SHA256(NODE_SECRET_KEY, "switchyard-node:<id>:<version>:<salt>"), so the only
 * stored secret is the Worker secret NODE_SECRET_KEY. Rotation makes a new version with a fresh
 * salt; the salt also keeps a node that is deleted and registered again from getting its old
 * secret back. A secret string embeds its version (`sy_ns_<version>_<mac>`), so an agent is
 * configured with one string and signs with the right version.
 */
import { randomBytes, toBase64Url, utf8 } from "../../protocol/encoding";

export interface SecretRef {
  version: number;
  salt: string;
}

export function newSecretRef(version: number): SecretRef {
  return { version, salt: toBase64Url(randomBytes(9)) };
}

export function parseSecretRef(ref: string): SecretRef | undefined {
  const m = /^derived:(\d{1,9}):([A-Za-z0-9_-]{8,64})$/.exec(ref);
  return m ? { version: Number(m[1]), salt: m[2] as string } : undefined;
}

export function formatSecretRef(ref: SecretRef): string {
  return `derived:${ref.version}:${ref.salt}`;
}

export async function deriveNodeSecret(masterKey: string, nodeId: string, ref: SecretRef): Promise<string> {
  const key = await crypto.subtle.importKey("raw", utf8(masterKey), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, utf8(`switchyard-node:${nodeId}:${ref.version}:${ref.salt}`)));
  return `sy_ns_${ref.version}_${toBase64Url(mac)}`;
}
