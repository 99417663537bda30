/**
 * Recipe `routing`: routing strategies × QPS on a shared-prefix workload (long shared prefixes, short
 * distinct suffixes, short answers), through the whole local stack — wrangler dev edge, agents, sim
 * engines. Each strategy gets the same requests at each QPS (picked per request with the
 * `routing-strategy` header) and a fresh prompt salt, so no run profits from another's cache.
 * It measures what prefix-aware routing buys over load-only routing: TTFT (mean, P99), cache hit
 * rate, the spread of requests over nodes.
 *
 * @example
 * ```sh
 * npx tsx bench/recipes/routing.ts --scale small
 * switchyard bench recipe routing --scale tiny
 * ```
 */
import { toEntry } from "../datasets/format";
import { generateSharedPrefix } from "../datasets/shared-prefix";
import { parseDistribution } from "../lib/distribution";
import { buildWorkload } from "../workloads/build";
import { isMain, type Recipe, type RecipeOptions, RecipeSession, type Scale, recipeMain, startBenchStack, warmUp } from "./common";

interface RoutingScale {
  nodes: number;
  timeScale: number;
  strategies: string[];
  qps: number[];
  durationMs: number;
  groups: number;
  promptsPerGroup: number;
  prefixLength: string;
  suffixLength: string;
  outputLength: string;
}

export const ROUTING_SCALES: Record<Scale, RoutingScale> = {
  tiny: { nodes: 2, timeScale: 1, strategies: ["random", "prefix-cache"], qps: [4], durationMs: 5_000, groups: 4, promptsPerGroup: 8, prefixLength: "normal:3000,300", suffixLength: "lognormal:150,60", outputLength: "16" },
  small: { nodes: 4, timeScale: 1, strategies: ["random", "least-request", "prefix-cache", "prefix-cache-preble"], qps: [2, 6], durationMs: 20_000, groups: 16, promptsPerGroup: 16, prefixLength: "normal:6000,500", suffixLength: "lognormal:200,80", outputLength: "16" },
  full: { nodes: 8, timeScale: 1, strategies: ["random", "least-request", "power-of-two", "prefix-cache", "prefix-cache-preble"], qps: [2, 4, 8, 12], durationMs: 60_000, groups: 32, promptsPerGroup: 32, prefixLength: "normal:6000,500", suffixLength: "lognormal:200,80", outputLength: "16" },
};

const MODEL = "bench-llama-3-8b";

export const routingRecipe: Recipe = {
  name: "routing",
  title: "Routing strategies on a shared-prefix workload",
  description:
    "Strategies × QPS on a shared-prefix workload (Poisson arrivals) through wrangler dev + agents + sim engines; the same requests for every strategy, a fresh prompt salt per run. Measures TTFT mean/P99, cache hit rate and node spread.",
  async run(opts: RecipeOptions) {
    const p = ROUTING_SCALES[opts.scale];
    const s = new RecipeSession(routingRecipe, opts);
    const seed = opts.seed ?? 1;
    const dataset = generateSharedPrefix({
      groups: p.groups,
      promptsPerGroup: p.promptsPerGroup,
      prefixLength: parseDistribution(p.prefixLength),
      suffixLength: parseDistribution(p.suffixLength),
      outputLength: parseDistribution(p.outputLength),
      randomizeOrder: true,
      seed,
    }).map((r, i) => toEntry(r, "shared-prefix", i + 1));
    const bench = await startBenchStack({ nodes: p.nodes, timeScale: p.timeScale, systems: [{ model: MODEL }], log: s.log });
    try {
      await warmUp(bench.stack, [MODEL]);
      for (const qps of p.qps) {
        const workload = await s.workload(`shared-prefix-qps${qps}`, buildWorkload({ pattern: { kind: "poisson", rate: qps }, durationMs: p.durationMs, seed: seed + qps, datasets: new Map([["", dataset]]), meta: { recipe: "routing" } }));
        for (const strategy of p.strategies) {
          await s.run({ name: `${strategy}-qps${qps}`, stack: bench, workload, model: MODEL, system: strategy, workloadLabel: "shared-prefix", qps, timeScale: p.timeScale, routingStrategy: strategy });
        }
      }
    } finally {
      await bench.stop();
    }
    return s.finish({ ...p, model: MODEL, seed }, { baseline: "random" });
  },
};

if (isMain(import.meta.url)) await recipeMain(routingRecipe);
