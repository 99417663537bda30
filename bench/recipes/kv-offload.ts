/**
 * Recipe `kv-offload`: the seed's Workload-1 and Workload-2 — a shared-prefix workload whose unique
 * prefixes fill 1× and 8× the GPU KV capacity — against each KV configuration of `KV_SYSTEMS`: no
 * prefix cache, GPU prefix cache, + DRAM tier (the agent's L1) and + DRAM + remote (L1 and an L2
 * cache server on loopback). With 1× the prefixes stay resident and prefix caching turns most
 * prefills into hits; with 8× they are evicted before they come back, which is where the tiers pay.
 * QPS is chosen so the no-cache baseline runs near the node's cold-prefill capacity (the seed's
 * 4.3 QPS played that role on its GPU).
 *
 * Every system's engines have a small KV shape (256 B a token) so the tiers hold their 3.13× and
 * 20× of the GPU KV in tens to hundreds of MB; the emulator's compute times do not depend on it,
 * but its host→GPU loads then cost next to nothing, while L2's loopback round trips are real wall
 * time before the request is queued. tiers.md has, per run, where the prompt tokens the GPU lacked
 * came from (the agents' switchyard_kv_tier_lookup_tokens_total).
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
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { kvBytesPerToken } from "../../dataplane/engines/sim/config";
import { isMain, type Recipe, type RecipeOptions, RecipeSession, type Scale, recipeMain, startBenchStack, tierTokens, warmUp } from "./common";
import { KV_SYSTEMS, kvModelName } from "./kv-systems";

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

/** 1 layer × 1 KV head × 64 × bf16, K and V: 256 B a token (see the file comment). */
export const KV_MODEL_SHAPE = { layers: 1, kvHeads: 1, headDim: 64, dtypeBytes: 2 };

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
    const bytesPerToken = kvBytesPerToken(KV_MODEL_SHAPE);
    const systems = KV_SYSTEMS.map((k) => ({ system: k, model: kvModelName(k), engine: k.engine(p.kvCapacityTokens), tiers: k.tiers?.(p.kvCapacityTokens, bytesPerToken) }));
    const bench = await startBenchStack({
      nodes: p.nodes,
      timeScale: p.timeScale,
      engine: { kvCapacityTokens: p.kvCapacityTokens, modelShape: KV_MODEL_SHAPE },
      systems: systems.map((x) => ({ model: x.model, engine: x.engine, ...(x.tiers ? { kvTiers: x.tiers } : {}) })),
      log: s.log,
    });
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
          let before: Awaited<ReturnType<typeof tierTokens>> | undefined;
          const beforeMeasure = async () => {
            if (x.tiers) before = await tierTokens(bench, x.model);
          };
          // Nothing to prime without a prefix cache.
          const primed = x.engine.enablePrefixCaching === false ? {} : { prime };
          const run = await s.run({ name: `workload-${i + 1}-${x.system.name}`, label: `${x.system.name} · ${w.label}`, stack: bench, workload, ...primed, beforeMeasure, model: x.model, system: x.system.name, workloadLabel: w.label, qps: p.qps, timeScale: p.timeScale, routingStrategy: "prefix-cache" });
          if (run && before) {
            const after = await tierTokens(bench, x.model);
            tierRows.push({ workload: w.label, system: x.system.name, l1_tokens: after.l1 - before.l1, l2_tokens: after.l2 - before.l2, computed_tokens: after.computed - before.computed, cache_hit_rate: run.cache_hit_rate });
          }
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
        kv_bytes_per_token: bytesPerToken,
        systems: systems.map((x) => ({ name: x.system.name, title: x.system.title, model: x.model, engine: x.engine, tiers: x.tiers ?? null, nodes: bench.nodesOf(x.model) })),
        workloads: workloads.map((w) => ({ label: w.label, groups: w.groups, footprint_tokens: w.footprintTokens, footprint_factor: w.factor, cluster_kv_tokens: clusterKv })),
        tier_tokens: tierRows,
      },
      { baseline: "no-prefix-cache" },
    );
  },
};

interface TierRow {
  workload: string;
  system: string;
  /** Prompt tokens the GPU cache lacked that L1 / L2 supplied, and that were computed. */
  l1_tokens: number;
  l2_tokens: number;
  computed_tokens: number;
  cache_hit_rate: number | null;
}

/** tiers.md: per tier system and workload, where the prompt tokens the GPU cache lacked came from. */
function writeTierTable(outDir: string, rows: TierRow[]): void {
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

if (isMain(import.meta.url)) await recipeMain(kvOffloadRecipe);
