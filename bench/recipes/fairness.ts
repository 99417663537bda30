/**
 * Recipe `fairness`: one tenant sends 10× the rate of the others while the cluster is overloaded
 * (demand = `overload` × capacity). Each tenant has its own key; the run records per-tenant TTFT and
 * service (output tokens/s over time). Today's edge admits first come, first served, so the heavy
 * tenant takes ~10/13 of the service and everyone's TTFT grows alike; a fairness policy (VTC, from
 * another engineer) should keep the light tenants' TTFT low. It plugs into `FAIRNESS_SYSTEMS` as one
 * more entry (a model setting), measured next to FCFS on the same workload.
 *
 * Capacity is made small on purpose (`maxNumSeqs` 2 per node) so overload needs only a few requests
 * per second: the local edge (wrangler dev on this machine) streams a few hundred tokens/s at most.
 *
 * @example
 * ```sh
 * npx tsx bench/recipes/fairness.ts --scale small
 * ```
 */
import { toEntry } from "../datasets/format";
import { generateSharedPrefix } from "../datasets/shared-prefix";
import { parseDistribution } from "../lib/distribution";
import { buildWorkload } from "../workloads/build";
import type { TenantSpec } from "../workloads/format";
import { isMain, type Recipe, type RecipeOptions, RecipeSession, type Scale, recipeMain, startBenchStack, tenantKey, warmUp } from "./common";

/** An admission/fairness configuration: served as its own model with these admin settings. */
export interface FairnessSystem {
  name: string;
  title: string;
  /** PUT /admin/models/<model> body additions. */
  modelConfig: Record<string, unknown>;
}

export const FAIRNESS_SYSTEMS: FairnessSystem[] = [
  { name: "fcfs", title: "first come, first served (today's edge)", modelConfig: {} },
  // When the edge has a fairness setting, add e.g.: { name: "vtc", title: "virtual token counter", modelConfig: { fairness: "vtc" } },
];

interface FairnessScale {
  nodes: number;
  timeScale: number;
  maxNumSeqs: number;
  lightTenants: number;
  heavyFactor: number;
  promptLength: number;
  outputLength: number;
  /** Demand as multiples of the estimated capacity. */
  overload: number[];
  durationMs: number;
}

export const FAIRNESS_SCALES: Record<Scale, FairnessScale> = {
  tiny: { nodes: 1, timeScale: 1, maxNumSeqs: 2, lightTenants: 3, heavyFactor: 10, promptLength: 256, outputLength: 48, overload: [1.5], durationMs: 6_000 },
  small: { nodes: 1, timeScale: 1, maxNumSeqs: 2, lightTenants: 3, heavyFactor: 10, promptLength: 256, outputLength: 48, overload: [1.25, 2], durationMs: 30_000 },
  full: { nodes: 2, timeScale: 1, maxNumSeqs: 2, lightTenants: 3, heavyFactor: 10, promptLength: 512, outputLength: 64, overload: [1.25, 2, 4], durationMs: 120_000 },
};

/** Requests/s a node serves: maxNumSeqs at once, each a prefill step then `output` decode steps (emulator calibration ≈ 24 ms + 6.1 ms/token). */
export function estimatedCapacity(p: FairnessScale): number {
  const serviceMs = 24 + p.outputLength * 6.1;
  return (p.nodes * p.maxNumSeqs * 1000) / serviceMs;
}

export const fairnessRecipe: Recipe = {
  name: "fairness",
  title: "Fairness under overload: one tenant at 10× the others",
  description:
    "A heavy tenant at 10× the rate of three light ones, total demand above capacity (small maxNumSeqs), each tenant with its own key. Records per-tenant TTFT and service (tokens/s over time) for each admission system (today FCFS; fairness policies plug into FAIRNESS_SYSTEMS).",
  async run(opts: RecipeOptions) {
    const p = FAIRNESS_SCALES[opts.scale];
    const s = new RecipeSession(fairnessRecipe, opts);
    const seed = opts.seed ?? 1;
    const capacity = estimatedCapacity(p);
    const dataset = generateSharedPrefix({ groups: 64, promptsPerGroup: 4, prefixLength: parseDistribution("0"), suffixLength: parseDistribution(String(p.promptLength)), outputLength: parseDistribution(String(p.outputLength)), seed }).map((r, i) => toEntry(r, "prompts", i + 1));
    const tenantIds = ["heavy", ...Array.from({ length: p.lightTenants }, (_, i) => `light-${i + 1}`)];
    const models = FAIRNESS_SYSTEMS.map((f) => ({ system: f, model: `bench-fair-${f.name}` }));
    const bench = await startBenchStack({ nodes: p.nodes, timeScale: p.timeScale, engine: { maxNumSeqs: p.maxNumSeqs }, systems: models.map((m) => ({ model: m.model, modelConfig: m.system.modelConfig })), log: s.log });
    try {
      const keys: Record<string, string> = {};
      for (const id of tenantIds) keys[id] = await tenantKey(bench.stack, `bench-${id}`);
      await warmUp(bench.stack, models.map((m) => m.model));
      for (const overload of p.overload) {
        const demand = overload * capacity;
        const light = demand / (p.heavyFactor + p.lightTenants);
        const tenants: TenantSpec[] = tenantIds.map((id) => ({ id, rate: Number((id === "heavy" ? light * p.heavyFactor : light).toFixed(3)) }));
        const workload = await s.workload(`overload-${overload}x`, buildWorkload({ pattern: { kind: "poisson", rate: demand }, durationMs: p.durationMs, seed: seed + Math.round(overload * 100), tenants, datasets: new Map([["", dataset]]), meta: { recipe: "fairness", overload, capacity_estimate: capacity } }));
        const tenantKeys = Object.fromEntries(tenantIds.map((id) => [id, keys[id] as string]));
        for (const m of models) {
          await s.run({ name: `overload-${overload}x-${m.system.name}`, stack: bench, workload, model: m.model, system: m.system.name, workloadLabel: `overload ${overload}×`, qps: Number(demand.toFixed(2)), timeScale: p.timeScale, tenantKeys, routingStrategy: "least-request" });
        }
      }
    } finally {
      await bench.stop();
    }
    return s.finish({ ...p, seed, capacity_estimate_rps: capacity, tenants: tenantIds, systems: FAIRNESS_SYSTEMS });
  },
};

if (isMain(import.meta.url)) await recipeMain(fairnessRecipe);
