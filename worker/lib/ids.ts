import { randomBytes, toBase64Url } from "../../protocol/encoding";

const ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz";

/** Random lowercase alphanumeric id with a type prefix, e.g. `key_3f9k2m1q8x`. */
export function newId(prefix: string, length = 12): string {
  const bytes = randomBytes(length);
  let out = "";
  for (const b of bytes) out += ALPHABET[b % ALPHABET.length];
  return `${prefix}_${out}`;
}

/** Random secret text with `bytes` bytes of entropy. */
export function newSecret(bytes = 32): string {
  return toBase64Url(randomBytes(bytes));
}

/** Slugs for operator-chosen ids (tenants, nodes, pools). */
export const SLUG_PATTERN = /^[a-z0-9][a-z0-9._-]{0,62}$/;
