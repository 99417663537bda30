/**
 * The KV configurations the KV recipes compare, each served as its own model on the same sim nodes.
 *
 * Today: the emulator without prefix caching (vLLM's baseline) and with its GPU prefix cache. The
 * KV tiers of issue 6 (L1 DRAM, L2 cache servers) plug in here: one more entry whose `engine`
 * settings turn a tier on, sized relative to the GPU's KV capacity (the seed's "AIBrix L1" and
 * "AIBrix + InfiniStore" rows), and the recipes run it next to the others with no other change.
 *
 * @example
 * ```ts
 * // When the sim engine config accepts tiers (dataplane/engines/sim/config.ts), add for example:
 * // { name: "gpu+l1", title: "GPU + L1 DRAM tier", engine: (kv) => ({ enablePrefixCaching: true, kvTiers: { l1: { capacityTokens: 8 * kv } } }) },
 * ```
 */
import type { SimEngineConfigInput } from "../../dataplane/engines/sim/config";

export interface KvSystem {
  /** Column name in comparisons; also the model name suffix. */
  name: string;
  title: string;
  /** Engine settings for a GPU KV capacity of `kvCapacityTokens`. */
  engine: (kvCapacityTokens: number) => Partial<SimEngineConfigInput>;
}

export const KV_SYSTEMS: KvSystem[] = [
  { name: "no-prefix-cache", title: "vLLM without prefix caching", engine: () => ({ enablePrefixCaching: false }) },
  { name: "gpu-prefix-cache", title: "vLLM prefix caching (GPU KV only)", engine: () => ({ enablePrefixCaching: true }) },
  // KV tiers (issue 6) go here: see the example above.
];

export function kvModelName(system: KvSystem): string {
  return `bench-kv-${system.name}`;
}
