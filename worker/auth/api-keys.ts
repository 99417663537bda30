/**
 * Tenant API keys: `sk-sy-<key id>.<secret>`. Only a SHA-256 of the whole key is stored; the
 * key id part doubles as the visible prefix so operators can tell keys apart in listings.
 */
import { sha256Hex } from "../../protocol/encoding";
import { newId, newSecret } from "../lib/ids";

export const KEY_PREFIX = "sk-sy-";
const KEY_PATTERN = /^sk-sy-key_[a-z0-9]{12}\.[A-Za-z0-9_-]{43}$/;

export interface IssuedKey {
  id: string;
  plaintext: string;
  prefix: string;
  hash: string;
}

export async function issueKey(): Promise<IssuedKey> {
  const id = newId("key");
  const plaintext = `${KEY_PREFIX}${id}.${newSecret(32)}`;
  return { id, plaintext, prefix: `${KEY_PREFIX}${id}`, hash: await hashKey(plaintext) };
}

export function hashKey(plaintext: string): Promise<string> {
  return sha256Hex(plaintext);
}

/** Cheap syntactic check so garbage never reaches D1. */
export function looksLikeKey(value: string): boolean {
  return KEY_PATTERN.test(value);
}
