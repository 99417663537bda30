/**
 * Eviction policies by name. A new policy is one file in this folder plus one line in POLICIES.
 *
 * Contract shared by every policy (EvictionPolicy in ../tier.ts), as the tiers use it:
 * - sizes are bytes; the policy does not enforce a budget, the owning tier does: while
 *   `used + incoming > capacity` it calls `victim()` and drops what it names, then `onInsert`s;
 * - `victim()` returns a resident key and the policy forgets it at once (S3-FIFO remembers it in
 *   its ghost); calling `onRemove` for it afterwards is a harmless no-op;
 * - `onAccess` / `onRemove` of a key the policy does not hold are ignored;
 * - `onInsert` of a key that is resident replaces it (see each policy); tiers call onRemove first;
 * - all methods are synchronous and O(1) amortized, with no I/O: safe on the hot path.
 *
 * Chains: a policy sees independent chunks. It does not know that chunk i+1 is useless without
 * chunk i; the order in which a tier reports a request's chunks decides which end of a chain goes
 * first (see bench/results/kv-eviction/results.md for the measurement and DramTier for the advice).
 */
import { z } from "zod";
import type { EvictionPolicy, KvKey } from "../tier";
import { LruPolicy } from "./lru";
import { S3FifoPolicy, s3fifoOptionsSchema } from "./s3fifo";

export { LruPolicy, type LruOptions } from "./lru";
export { S3FifoPolicy, s3fifoOptionsSchema, type S3FifoConfig, type S3FifoOptions } from "./s3fifo";

/** Options every policy accepts. */
export interface CommonPolicyOptions {
  /** The owning tier's byte budget (S3-FIFO splits it between its queues). */
  capacityBytes: number;
  /** Called synchronously when an entry becomes hot (AIBrix on_hot_access; each policy says when). */
  onHot?: (key: KvKey) => void;
}

const POLICIES = {
  lru: (o: CommonPolicyOptions) => new LruPolicy(o),
  s3fifo: (o: CommonPolicyOptions & { smallRatio?: number; threshold?: number; ghostRatio?: number }) => new S3FifoPolicy(o),
} satisfies Record<string, (o: never) => EvictionPolicy>;

export type EvictionPolicyName = keyof typeof POLICIES;
export const EVICTION_POLICY_NAMES = Object.keys(POLICIES) as EvictionPolicyName[];
export const evictionPolicyNameSchema = z.enum(EVICTION_POLICY_NAMES as [EvictionPolicyName, ...EvictionPolicyName[]]);

/** `{ name, capacityBytes, ...that policy's options }`. */
export type EvictionPolicyConfig = { [N in EvictionPolicyName]: { name: N } & Parameters<(typeof POLICIES)[N]>[0] }[EvictionPolicyName];

export function createEvictionPolicy(config: EvictionPolicyConfig): EvictionPolicy {
  const make = POLICIES[config.name] as (o: EvictionPolicyConfig) => EvictionPolicy;
  if (make === undefined) throw new RangeError(`unknown eviction policy '${String(config.name)}' (known: ${EVICTION_POLICY_NAMES.join(", ")})`);
  return make(config);
}

/** The policy part of a tier config: `policy` plus the options of the policies that take any. */
export const evictionConfigSchema = z.strictObject({
  policy: evictionPolicyNameSchema.default("s3fifo"),
  s3fifo: s3fifoOptionsSchema.default({ smallRatio: 0.1, threshold: 1 }),
});
export type EvictionConfig = z.infer<typeof evictionConfigSchema>;

/** The policy an `evictionConfigSchema` value names (its options are under its own name), for a tier of `capacityBytes`. */
export function policyFromConfig(config: EvictionConfig, capacityBytes: number, onHot?: (key: KvKey) => void): EvictionPolicy {
  const options = (config as Record<string, unknown>)[config.policy];
  return createEvictionPolicy({ ...(typeof options === "object" ? options : {}), name: config.policy, capacityBytes, onHot } as EvictionPolicyConfig);
}
