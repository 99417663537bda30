/**
 * Header names of the Switchyard wire contract. Client-facing names follow AIBrix where it has one
 * (`routing-strategy`), the rest carry an `x-switchyard-` prefix.
 */
export const HeaderNames = {
  /** Request id, honoured when a client sends a sane one; echoed on every response. */
  requestId: "x-request-id",
  /** Client picks a routing strategy (`least-request`, `prefix-cache:2,least-request`, ...). */
  routingStrategy: "routing-strategy",
  /** Response: node that served the request. */
  node: "x-switchyard-node",
  /** Response: region of that node. */
  region: "x-switchyard-region",
  /** Response: strategy actually used for the decision. */
  strategy: "x-switchyard-routing-strategy",
  /** Edge → agent: tenant id (for tenant-scoped caches and logs; never a credential). */
  tenant: "x-switchyard-tenant",
  /** Edge → agent signature headers (see protocol/signing.ts). */
  sigNode: "x-switchyard-node-id",
  sigTimestamp: "x-switchyard-timestamp",
  sigNonce: "x-switchyard-nonce",
  sigKeyVersion: "x-switchyard-key-version",
  signature: "x-switchyard-signature",
} as const;
