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
  /** Edge → agent: tenant id (for tenant-scoped caches and logs; never a credential). Signed. */
  tenant: "x-switchyard-tenant",
  /**
   * Edge → agent: the cache namespace of the request's prompt (`t:<tenant>:<model>`, or
   * `m:<model>` for models that share prefixes). Engines never reuse KV across namespaces. Signed.
   */
  cacheNamespace: "x-switchyard-cache-namespace",
  /**
   * Edge → agent: the request's scheduling priority (`high`, `normal` or `low`, protocol/priority.ts),
   * the edge's fairness decision. Engines that schedule by priority rank its work by it. Signed;
   * clients cannot set it.
   */
  priority: "x-switchyard-priority",
  /** Response: prompt blocks the chosen node was believed to hold / blocks in the prompt. */
  prefixBlocks: "x-switchyard-prefix-blocks",
  /** Request: client-chosen session affinity key (AIBrix's name is accepted too). */
  sessionKey: "x-session-key",
  /** Edge → agent signature headers (see protocol/signing.ts). */
  sigNode: "x-switchyard-node-id",
  sigTimestamp: "x-switchyard-timestamp",
  sigNonce: "x-switchyard-nonce",
  sigKeyVersion: "x-switchyard-key-version",
  signature: "x-switchyard-signature",
} as const;
