/**
 * Recipe `kv-offload`: the seed's Workload-1 and Workload-2 — a shared-prefix workload whose unique
 * prefixes fill 1× and 8× the GPU KV capacity — against each KV configuration of `KV_SYSTEMS`: no
 * prefix cache, GPU prefix cache, + DRAM tier (the agent's L1) and + DRAM + remote (L1 and an L2
 * cache server on loopback). With 1× the prefixes stay resident and prefix caching turns most
 * prefills into hits; with 8× they are evicted before they come back, which is where the tiers pay.
 * QPS is chosen so the no-cache baseline runs near the node's cold-prefill capacity (the seed's
 * 4.3 QPS played that role on its GPU).
 *
 * Systems, their tiers and the small KV shape that keeps the tiers in memory come from
 * kv-systems.ts, shared with `multi-turn`. tiers.md has, per run, where the prompt tokens the GPU
 * lacked came from (the agents' switchyard_kv_tier_lookup_tokens_total).
 *
 * @example
 * ```sh
 * npx tsx bench/recipes/kv-offload.ts --scale small
 * ```
 */
import { toEntry } from "../datasets/format";
import { generateSharedPrefix } from "../datasets/shared-prefix";
import { parseDistribution } from "../lib/distribution";
import { buildWorkload } from "../workloads/build";
import { isMain, type Recipe, type RecipeOptions, RecipeSession, type Scale, recipeMain, startBenchStack, warmUp } from "./common";
import { benchSystems, KV_BYTES_PER_MODEL_TOKEN, KV_MODEL_SHAPE, describeSystems, kvSystemsAt, type TierRow, withTierCounts, writeTierTable } from "./kv-systems";

interface KvScale {
  nodes: number;
  timeScale: number;
  kvCapacityTokens: number;
  prefixLength: number;
  suffixLength: string;
  outputLength: string;
  promptsPerGroup: number;
  /** Unique prefix footprint as a multiple of the cluster's GPU KV capacity. */
  footprints: Array<{ label: string; factor: number }>;
  qps: number;
  durationMs: number;
  /** Rate of the priming pass (each prefix once, unmeasured) before each system's run. */
  primeQps: number;
}

export const KV_SCALES: Record<Scale, KvScale> = {
  tiny: { nodes: 1, timeScale: 1, kvCapacityTokens: 4_096, prefixLength: 512, suffixLength: "64", outputLength: "8", promptsPerGroup: 4, footprints: [{ label: "Workload-1 (1× KV)", factor: 1 }, { label: "Workload-2 (8× KV)", factor: 8 }], qps: 8, durationMs: 4_000, primeQps: 32 },
  small: { nodes: 1, timeScale: 1, kvCapacityTokens: 65_536, prefixLength: 2048, suffixLength: "normal:128,16", outputLength: "16", promptsPerGroup: 8, footprints: [{ label: "Workload-1 (1× KV)", factor: 1 }, { label: "Workload-2 (8× KV)", factor: 8 }], qps: 10, durationMs: 30_000, primeQps: 20 },
  full: { nodes: 1, timeScale: 1, kvCapacityTokens: 419_152, prefixLength: 6000, suffixLength: "normal:200,40", outputLength: "16", promptsPerGroup: 8, footprints: [{ label: "Workload-1 (1× KV)", factor: 1 }, { label: "Workload-2 (8× KV)", factor: 8 }], qps: 4.3, durationMs: 300_000, primeQps: 4.3 },
};

export const kvOffloadRecipe: Recipe = {
  name: "kv-offload",
  title: "KV offloading: Workload-1 (1× KV) and Workload-2 (8× KV)",
  description:
    "Shared-prefix prompts whose unique prefixes fill 1× and 8× the GPU KV capacity, sent to each KV configuration (no prefix cache, GPU prefix cache, + DRAM tier, + DRAM + remote cache server). Measures TTFT mean/P99, cache hit rate, and the tokens the tiers supplied per workload and system.",
  async run(opts: RecipeOptions) {
    const p = KV_SCALES[opts.scale];
    const s = new RecipeSession(kvOffloadRecipe, opts);
    const seed = opts.seed ?? 1;
    const clusterKv = p.kvCapacityTokens * p.nodes;
    const workloads = p.footprints.map((f) => {
      const groups = Math.max(1, Math.round((f.factor * clusterKv) / p.prefixLength));
      // Enough distinct suffixes for the expected requests, no more (full scale: 559 groups × 6k tokens).
      const expected = (p.qps * p.durationMs) / 1000;
      const promptsPerGroup = Math.min(p.promptsPerGroup, Math.max(2, Math.ceil((1.5 * expected) / groups)));
      const dataset = generateSharedPrefix({
        groups,
        promptsPerGroup,
        prefixLength: parseDistribution(String(p.prefixLength)),
        suffixLength: parseDistribution(p.suffixLength),
        outputLength: parseDistribution(p.outputLength),
        seed: seed + f.factor,
      }).map((r, i) => toEntry(r, "shared-prefix", i + 1));
      // Priming: each group's first prompt once (the dataset is grouped, in order).
      const prime = dataset.filter((_, j) => j % promptsPerGroup === 0);
      return { ...f, groups, footprintTokens: groups * p.prefixLength, dataset, prime };
    });
    const systems = kvSystemsAt(p.kvCapacityTokens);
    const bench = await startBenchStack({ nodes: p.nodes, timeScale: p.timeScale, engine: { kvCapacityTokens: p.kvCapacityTokens, modelShape: KV_MODEL_SHAPE }, systems: benchSystems(systems), log: s.log });
    const tierRows: TierRow[] = [];
    try {
      await warmUp(bench.stack, systems.map((x) => x.model));
      for (const [i, w] of workloads.entries()) {
        // Random draws with replacement: groups come back at random distances (LRU reuse distance).
        const workload = await s.workload(`workload-${i + 1}`, buildWorkload({ pattern: { kind: "poisson", rate: p.qps }, durationMs: p.durationMs, seed: seed + 100 + i, datasets: new Map([["", w.dataset]]), order: "random", meta: { recipe: "kv-offload", label: w.label, footprint_tokens: w.footprintTokens, footprint_factor: w.factor } }));
        // Every prefix once before the measured run, as the offloading study's warm-up does: the run
        // then sees the caches of a service that has been up, not cold misses on first sight.
        const prime = await s.workload(`workload-${i + 1}-prime`, buildWorkload({ pattern: { kind: "constant", rate: p.primeQps }, durationMs: Math.ceil((w.prime.length * 1000) / p.primeQps), seed: seed + 200 + i, datasets: new Map([["", w.prime]]), order: "sequential", meta: { recipe: "kv-offload", label: `${w.label} priming`, footprint_tokens: w.footprintTokens } }));
        for (const x of systems) {
          // Nothing to prime without a prefix cache.
          const primed = x.engine.enablePrefixCaching === false ? {} : { prime };
          await withTierCounts(bench, x, w.label, tierRows, (beforeMeasure) =>
            s.run({ name: `workload-${i + 1}-${x.system.name}`, label: `${x.system.name} · ${w.label}`, stack: bench, workload, ...primed, beforeMeasure, model: x.model, system: x.system.name, workloadLabel: w.label, qps: p.qps, timeScale: p.timeScale, routingStrategy: "prefix-cache" }),
          );
        }
      }
    } finally {
      await bench.stop();
    }
    writeTierTable(s.outDir, tierRows);
    return s.finish(
      {
        ...p,
        seed,
        model_shape: KV_MODEL_SHAPE,
        kv_bytes_per_token: KV_BYTES_PER_MODEL_TOKEN,
        systems: describeSystems(systems, bench),
        workloads: workloads.map((w) => ({ label: w.label, groups: w.groups, footprint_tokens: w.footprintTokens, footprint_factor: w.factor, cluster_kv_tokens: clusterKv })),
        tier_tokens: tierRows,
      },
      { baseline: "no-prefix-cache" },
    );
  },
};

if (isMain(import.meta.url)) await recipeMain(kvOffloadRecipe);
