/**
 * The KV configurations the KV recipes compare, each served as its own model: the emulator without
 * prefix caching (vLLM's baseline), with its GPU prefix cache, and the seed's two tier rows — the
 * GPU cache plus the agent's L1 DRAM tier ("AIBrix L1"), and plus L1 and an L2 cache server
 * ("AIBrix + InfiniStore"). Tier systems run on nodes of their own (bench/recipes/common.ts), since
 * an agent's tiers serve all its engines.
 *
 * Tier sizes are the discrete-event study's ratios to one GPU's KV capacity (bench/kvcache/offload/
 * study.ts): DRAM 160 GiB and remote 1 TiB against an H100's 419,152 tokens of Llama-3-8B KV, i.e.
 * 3.13× and 20× the GPU KV. With Workload-2 (8× KV) GPU + DRAM then hold about half the prefixes and
 * the remote tier all of them.
 *
 * @example
 * ```ts
 * const tiers = KV_SYSTEMS.find((s) => s.name === "gpu-dram")?.tiers?.(65_536, 256); // { l1Bytes: 52.4 MB }
 * ```
 */
import type { SimEngineConfigInput } from "../../dataplane/engines/sim/config";
import { H100_KV_CAPACITY_TOKENS } from "../../dataplane/engines/sim/des";
import { DEFAULT_DRAM_GIB, DEFAULT_REMOTE_GIB, KV_BYTES_PER_TOKEN } from "../kvcache/offload/study";

const GiB = 2 ** 30;
const H100_KV_BYTES = H100_KV_CAPACITY_TOKENS * KV_BYTES_PER_TOKEN;
/** Host DRAM per engine relative to its GPU KV (the study's 160 GiB: 3.13×). */
export const DRAM_KV_RATIO = (DEFAULT_DRAM_GIB * GiB) / H100_KV_BYTES;
/** The remote tier relative to one GPU's KV (the study's 1 TiB: 20×). */
export const REMOTE_KV_RATIO = (DEFAULT_REMOTE_GIB * GiB) / H100_KV_BYTES;

export interface KvSystem {
  /** Column name in comparisons; also the model name suffix. */
  name: string;
  title: string;
  /** Engine settings for a GPU KV capacity of `kvCapacityTokens`. */
  engine: (kvCapacityTokens: number) => Partial<SimEngineConfigInput>;
  /** The agent's tiers for a GPU KV of `kvCapacityTokens` at `kvBytesPerToken`; absent: none. */
  tiers?: (kvCapacityTokens: number, kvBytesPerToken: number) => { l1Bytes: number; l2Bytes?: number };
}

export const KV_SYSTEMS: KvSystem[] = [
  { name: "no-prefix-cache", title: "vLLM without prefix caching", engine: () => ({ enablePrefixCaching: false }) },
  { name: "gpu-prefix-cache", title: "vLLM prefix caching (GPU KV only)", engine: () => ({ enablePrefixCaching: true }) },
  {
    name: "gpu-dram",
    title: "+ DRAM tier (agent L1, 3.13× the GPU KV)",
    engine: () => ({ enablePrefixCaching: true }),
    tiers: (kv, bytesPerToken) => ({ l1Bytes: Math.floor(kv * DRAM_KV_RATIO * bytesPerToken) }),
  },
  {
    name: "gpu-dram-remote",
    title: "+ DRAM + remote (L1 3.13×, L2 cache server 20× the GPU KV)",
    engine: () => ({ enablePrefixCaching: true }),
    tiers: (kv, bytesPerToken) => ({ l1Bytes: Math.floor(kv * DRAM_KV_RATIO * bytesPerToken), l2Bytes: Math.floor(kv * REMOTE_KV_RATIO * bytesPerToken) }),
  },
];

export function kvModelName(system: KvSystem): string {
  return `bench-kv-${system.name}`;
}
