/**
 * Only the edge may call an agent: every inbound request must carry a valid signature for this
 * node, made with its current (or, during a rotation, previous) secret, inside the time window,
 * with a nonce not seen before.
 */
import { NonceCache, verifyRequest, type VerifyResult } from "../../protocol/signing";

export function secretVersionOf(secret: string): number {
  const m = /^sy_ns_(\d{1,9})_/.exec(secret);
  if (!m) throw new Error("node secret has no version");
  return Number(m[1]);
}

export class InboundVerifier {
  private readonly secrets = new Map<number, string>();
  private readonly nonces: NonceCache;

  constructor(
    private readonly nodeId: string,
    secrets: string[],
    private readonly windowMs: number,
  ) {
    for (const s of secrets) this.secrets.set(secretVersionOf(s), s);
    this.nonces = new NonceCache(windowMs);
  }

  verify(method: string, path: string, body: Uint8Array, headers: { get(name: string): string | null }): Promise<VerifyResult> {
    return verifyRequest({
      method,
      path,
      body,
      headers,
      windowMs: this.windowMs,
      secretFor: (nodeId, version) => (nodeId === this.nodeId ? this.secrets.get(version) : null),
      rememberNonce: (nodeId, nonce, ts) => this.nonces.remember(nodeId, nonce, ts),
    });
  }
}
