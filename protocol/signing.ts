/**
 * HMAC request signing between the edge and node agents, in both directions:
 * the edge signs every request it forwards to an agent, and agents sign their heartbeats.
 *
 * The signed string binds method, path (with query), timestamp, nonce and a SHA-256 of the body,
 * so a captured request can be neither altered nor replayed outside the timestamp window, and the
 * receiver keeps the nonces it has seen inside that window to refuse exact replays.
 */
import { HeaderNames } from "./headers";
import { fromHex, sha256Hex, timingSafeEqual, toBase64Url, toHex, randomBytes, utf8 } from "./encoding";

export const SIGNATURE_SCHEME = "v1";
/** How far a signed timestamp may be from the receiver's clock. */
export const DEFAULT_SIGNATURE_WINDOW_MS = 30_000;

export interface SignInput {
  nodeId: string;
  /** Secret version used (lets receivers hold two secrets during a rotation). */
  keyVersion: number;
  secret: string;
  method: string;
  /** Path plus query string, exactly as sent. */
  path: string;
  body: Uint8Array;
  /** Tenant the request is for; signed and sent as x-switchyard-tenant. */
  tenant?: string;
  /** Cache namespace of the prompt; signed and sent as x-switchyard-cache-namespace. */
  cacheNamespace?: string;
  /** Scheduling priority (protocol/priority.ts); signed and sent as x-switchyard-priority. */
  priority?: string;
  timestampMs?: number;
  nonce?: string;
}

export type SignatureHeaders = Record<string, string>;

async function hmacHex(secret: string, message: string): Promise<string> {
  const key = await crypto.subtle.importKey("raw", utf8(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return toHex(await crypto.subtle.sign("HMAC", key, utf8(message)));
}

/**
 * The signed string. The tenant and cache-namespace headers are part of it because agents scope
 * caches by them: a request re-addressed to another tenant in transit must not verify. The
 * priority header is too (engines schedule by it), appended only when the request carries one, so
 * heartbeats and requests without it sign exactly as before; a priority added or removed in
 * transit changes the string either way (header values hold no newline).
 */
export async function canonicalString(
  method: string,
  path: string,
  timestampMs: number,
  nonce: string,
  body: Uint8Array,
  nodeId: string,
  tenant = "",
  cacheNamespace = "",
  priority?: string,
): Promise<string> {
  const fields = [SIGNATURE_SCHEME, method.toUpperCase(), path, String(timestampMs), nonce, nodeId, tenant, cacheNamespace, await sha256Hex(body)];
  if (priority !== undefined) fields.push(priority);
  return fields.join("\n");
}

export async function signRequest(input: SignInput): Promise<SignatureHeaders> {
  const timestampMs = input.timestampMs ?? Date.now();
  const nonce = input.nonce ?? toBase64Url(randomBytes(16));
  const canonical = await canonicalString(input.method, input.path, timestampMs, nonce, input.body, input.nodeId, input.tenant ?? "", input.cacheNamespace ?? "", input.priority);
  const mac = await hmacHex(input.secret, canonical);
  return {
    ...(input.tenant !== undefined ? { [HeaderNames.tenant]: input.tenant } : {}),
    ...(input.cacheNamespace !== undefined ? { [HeaderNames.cacheNamespace]: input.cacheNamespace } : {}),
    ...(input.priority !== undefined ? { [HeaderNames.priority]: input.priority } : {}),
    [HeaderNames.sigNode]: input.nodeId,
    [HeaderNames.sigTimestamp]: String(timestampMs),
    [HeaderNames.sigNonce]: nonce,
    [HeaderNames.sigKeyVersion]: String(input.keyVersion),
    [HeaderNames.signature]: `${SIGNATURE_SCHEME}=${mac}`,
  };
}

export type VerifyFailure =
  | "missing_signature"
  | "malformed_signature"
  | "unknown_node"
  | "unknown_key_version"
  | "expired_timestamp"
  | "bad_signature"
  | "replayed_nonce";

export type VerifyResult = { ok: true; nodeId: string; keyVersion: number; nonce: string; timestampMs: number } | { ok: false; reason: VerifyFailure };

export interface VerifyInput {
  method: string;
  path: string;
  body: Uint8Array;
  headers: { get(name: string): string | null };
  /** The secret for (node, version): undefined when the version is unknown, null when the node is. */
  secretFor: (nodeId: string, keyVersion: number) => Promise<string | null | undefined> | string | null | undefined;
  nowMs?: number;
  windowMs?: number;
  /** Records a nonce; returns false when it was already seen inside the window. */
  rememberNonce?: (nodeId: string, nonce: string, timestampMs: number) => boolean;
}

export async function verifyRequest(input: VerifyInput): Promise<VerifyResult> {
  const h = input.headers;
  const nodeId = h.get(HeaderNames.sigNode);
  const ts = h.get(HeaderNames.sigTimestamp);
  const nonce = h.get(HeaderNames.sigNonce);
  const version = h.get(HeaderNames.sigKeyVersion);
  const sig = h.get(HeaderNames.signature);
  if (!nodeId || !ts || !nonce || !sig || !version) return { ok: false, reason: "missing_signature" };
  const timestampMs = Number(ts);
  const keyVersion = Number(version);
  const prefix = `${SIGNATURE_SCHEME}=`;
  if (!Number.isSafeInteger(timestampMs) || !Number.isSafeInteger(keyVersion) || !sig.startsWith(prefix) || nonce.length > 128 || nodeId.length > 128) {
    return { ok: false, reason: "malformed_signature" };
  }
  const given = fromHex(sig.slice(prefix.length));
  if (!given || given.length !== 32) return { ok: false, reason: "malformed_signature" };
  const now = input.nowMs ?? Date.now();
  const windowMs = input.windowMs ?? DEFAULT_SIGNATURE_WINDOW_MS;
  if (Math.abs(now - timestampMs) > windowMs) return { ok: false, reason: "expired_timestamp" };
  const secret = await input.secretFor(nodeId, keyVersion);
  if (secret === null) return { ok: false, reason: "unknown_node" };
  if (secret === undefined) return { ok: false, reason: "unknown_key_version" };
  const canonical = await canonicalString(input.method, input.path, timestampMs, nonce, input.body, nodeId, h.get(HeaderNames.tenant) ?? "", h.get(HeaderNames.cacheNamespace) ?? "", h.get(HeaderNames.priority) ?? undefined);
  const expected = fromHex(await hmacHex(secret, canonical));
  if (!expected || !timingSafeEqual(expected, given)) return { ok: false, reason: "bad_signature" };
  if (input.rememberNonce && !input.rememberNonce(nodeId, nonce, timestampMs)) return { ok: false, reason: "replayed_nonce" };
  return { ok: true, nodeId, keyVersion, nonce, timestampMs };
}

/**
 * Remembers nonces for the signature window so an exact replay inside the window is refused.
 * Memory is bounded: entries expire with the window and the map is capped. When a flood of fresh
 * nonces fills it with live entries, the oldest is dropped and its timestamp becomes that node's
 * floor: nothing signed at or before the floor is accepted any more, so a dropped nonce can never be
 * replayed. Under such a flood the cache fails closed for old timestamps rather than forgetting.
 */
export class NonceCache {
  private readonly seen = new Map<string, number>();
  /** Per node: the newest timestamp among nonces dropped while still live. */
  private readonly floors = new Map<string, number>();
  /** A full cache scans for expired entries at most once a second, so a flood costs O(1) per nonce. */
  private lastPruneMs = Number.NEGATIVE_INFINITY;
  constructor(
    private readonly windowMs = DEFAULT_SIGNATURE_WINDOW_MS,
    private readonly maxEntries = 200_000,
  ) {}

  remember(nodeId: string, nonce: string, timestampMs: number, nowMs = Date.now()): boolean {
    const key = `${nodeId}\u0000${nonce}`;
    if (this.seen.has(key)) return false;
    if (timestampMs <= (this.floors.get(nodeId) ?? Number.NEGATIVE_INFINITY)) return false;
    if (this.seen.size >= this.maxEntries && nowMs - this.lastPruneMs >= 1_000) this.prune(nowMs);
    // Still full after pruning means a flood of fresh nonces: drop the oldest rather than grow, and
    // raise its node's floor so the dropped nonce stays refused.
    if (this.seen.size >= this.maxEntries) {
      const oldest = this.seen.entries().next().value;
      if (oldest !== undefined) {
        const [oldKey, oldTs] = oldest;
        this.seen.delete(oldKey);
        const node = oldKey.slice(0, oldKey.indexOf("\u0000"));
        this.floors.set(node, Math.max(this.floors.get(node) ?? Number.NEGATIVE_INFINITY, oldTs));
      }
    }
    this.seen.set(key, timestampMs);
    return true;
  }

  prune(nowMs = Date.now()): void {
    this.lastPruneMs = nowMs;
    // Entries older than two windows can no longer pass the timestamp check, so forgetting them is safe.
    for (const [key, ts] of this.seen) if (nowMs - ts > 2 * this.windowMs) this.seen.delete(key);
    for (const [node, floor] of this.floors) if (nowMs - floor > 2 * this.windowMs) this.floors.delete(node);
  }

  get size(): number {
    return this.seen.size;
  }
}
