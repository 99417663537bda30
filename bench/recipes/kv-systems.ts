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
 * Every system's engines get a small KV shape (256 B a token, `KV_MODEL_SHAPE`) so the tiers hold
 * their 3.13× and 20× of the GPU KV in tens to hundreds of MB; the emulator's compute times do not
 * depend on it, but its host→GPU loads then cost next to nothing, while L2's loopback round trips are
 * real wall time before the request is queued. The recipes that measure tiers (`kv-offload`,
 * `multi-turn`) write `tiers.md`: per run, where the prompt tokens the GPU lacked came from.
 *
 * @example
 * ```ts
 * const systems = kvSystemsAt(65_536); // four entries; gpu-dram's tiers: { l1Bytes: 52.4 MB }
 * ```
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { kvBytesPerToken, type SimEngineConfigInput } from "../../dataplane/engines/sim/config";
import { H100_KV_CAPACITY_TOKENS } from "../../dataplane/engines/sim/des";
import { DEFAULT_DRAM_GIB, DEFAULT_REMOTE_GIB, KV_BYTES_PER_TOKEN } from "../kvcache/offload/study";
import type { RunSummary } from "../report/summary";
import { type BenchStack, tierTokens } from "./common";

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

/** 1 layer × 1 KV head × 64 × bf16, K and V: 256 B a token (see the file comment). */
export const KV_MODEL_SHAPE = { layers: 1, kvHeads: 1, headDim: 64, dtypeBytes: 2 };
export const KV_BYTES_PER_MODEL_TOKEN = kvBytesPerToken(KV_MODEL_SHAPE);

/** A KV system at a GPU KV capacity: the model it is served as, its engine settings and its tiers. */
export interface KvSystemAt {
  system: KvSystem;
  model: string;
  engine: Partial<SimEngineConfigInput>;
  tiers: { l1Bytes: number; l2Bytes?: number } | undefined;
}

/** `systems` (default all of `KV_SYSTEMS`) at a GPU KV of `kvCapacityTokens`, tiers sized for `KV_MODEL_SHAPE`. */
export function kvSystemsAt(kvCapacityTokens: number, systems: KvSystem[] = KV_SYSTEMS): KvSystemAt[] {
  return systems.map((k) => ({ system: k, model: kvModelName(k), engine: k.engine(kvCapacityTokens), tiers: k.tiers?.(kvCapacityTokens, KV_BYTES_PER_MODEL_TOKEN) }));
}

/** What `startBenchStack` needs of each system: its model, engine and, for a tier system, its own nodes' tiers. */
export function benchSystems(systems: KvSystemAt[]): Array<{ model: string; engine: Partial<SimEngineConfigInput>; kvTiers?: { l1Bytes: number; l2Bytes?: number } }> {
  return systems.map((x) => ({ model: x.model, engine: x.engine, ...(x.tiers ? { kvTiers: x.tiers } : {}) }));
}

/** How each system ran, for a recipe's recipe.json: its engine, its tiers and the nodes that served it. */
export function describeSystems(systems: KvSystemAt[], bench: BenchStack) {
  return systems.map((x) => ({ name: x.system.name, title: x.system.title, model: x.model, engine: x.engine, tiers: x.tiers ?? null, nodes: bench.nodesOf(x.model) }));
}

export interface TierRow {
  workload: string;
  system: string;
  /** Prompt tokens the GPU cache lacked that L1 / L2 supplied, and that were computed. */
  l1_tokens: number;
  l2_tokens: number;
  computed_tokens: number;
  cache_hit_rate: number | null;
}

/**
 * Runs `measure` (a recipe run, which calls `beforeMeasure` right before its measured part) and, for
 * a system with tiers, appends to `rows` where the prompt tokens the GPU lacked came from during it:
 * the difference of the agents' counters across the measured part.
 */
export async function withTierCounts(bench: BenchStack, x: KvSystemAt, workload: string, rows: TierRow[], measure: (beforeMeasure: () => Promise<void>) => Promise<RunSummary | undefined>): Promise<RunSummary | undefined> {
  let before: Awaited<ReturnType<typeof tierTokens>> | undefined;
  const run = await measure(async () => {
    if (x.tiers) before = await tierTokens(bench, x.model);
  });
  if (run && before) {
    const after = await tierTokens(bench, x.model);
    rows.push({ workload, system: x.system.name, l1_tokens: after.l1 - before.l1, l2_tokens: after.l2 - before.l2, computed_tokens: after.computed - before.computed, cache_hit_rate: run.cache_hit_rate });
  }
  return run;
}

/** tiers.md: per tier system and workload, where the prompt tokens the GPU cache lacked came from. */
export function writeTierTable(outDir: string, rows: TierRow[]): void {
  const pct = (v: number | null) => (v === null ? "–" : `${(v * 100).toFixed(1)}%`);
  const lines = [
    "# KV tiers: where the prompt tokens the GPU cache lacked came from",
    "",
    "Summed over the system's agents (`switchyard_kv_tier_lookup_tokens_total`, difference across the run). Tier hit rate: (L1 + L2) ÷ all three. Cache hit rate: cached ÷ prompt tokens as the engine reported them (GPU and tiers).",
    "",
    "| workload | system | L1 tokens | L2 tokens | computed | tier hit rate | cache hit rate |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const r of rows) {
    const asked = r.l1_tokens + r.l2_tokens + r.computed_tokens;
    lines.push(`| ${r.workload} | ${r.system} | ${r.l1_tokens} | ${r.l2_tokens} | ${r.computed_tokens} | ${pct(asked > 0 ? (r.l1_tokens + r.l2_tokens) / asked : null)} | ${pct(r.cache_hit_rate)} |`);
  }
  writeFileSync(join(outDir, "tiers.md"), `${lines.join("\n")}\n`);
}
