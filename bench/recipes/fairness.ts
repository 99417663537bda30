/**
 * Recipe `fairness`: one tenant sends 10× the rate of the others while the cluster is overloaded
 * (demand = `overload` × capacity). Each tenant has its own key; the run records per-tenant TTFT and
 * service (output tokens/s over time) under each admission policy (`fairnessSystems`: VTC and
 * FCFS, each a model setting), and the first light tenant's TTFT when it runs alone. This is the
 * end-to-end cross-check of the discrete-event study in bench/fairness/run.ts.
 *
 * Capacity is made small on purpose (`maxNumSeqs` 2 per node) so overload needs only a few requests
 * per second: the local edge (wrangler dev on this machine) streams a few hundred tokens/s at most.
 *
 * @example
 * ```sh
 * npx tsx bench/recipes/fairness.ts --scale small
 * ```
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { toEntry } from "../datasets/format";
import type { TenantSummary } from "../report/summary";
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

/** The node limit equals the engines' maxNumSeqs, so requests beyond it wait at the edge, where the policy orders them. */
export function fairnessSystems(nodeLimit: number): FairnessSystem[] {
  return [
    { name: "vtc", title: "virtual token counters (the default)", modelConfig: { admission_policy: "vtc", node_limit: nodeLimit } },
    { name: "fcfs", title: "first come, first served", modelConfig: { admission_policy: "fcfs", node_limit: nodeLimit } },
  ];
}

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
    "A heavy tenant at 10× the rate of three light ones, total demand above capacity (small maxNumSeqs), each tenant with its own key. Records per-tenant TTFT and service (tokens/s over time) under VTC and FCFS admission, and the first light tenant alone at the same rate.",
  async run(opts: RecipeOptions) {
    const p = FAIRNESS_SCALES[opts.scale];
    const s = new RecipeSession(fairnessRecipe, opts);
    const seed = opts.seed ?? 1;
    const capacity = estimatedCapacity(p);
    const dataset = generateSharedPrefix({ groups: 64, promptsPerGroup: 4, prefixLength: parseDistribution("0"), suffixLength: parseDistribution(String(p.promptLength)), outputLength: parseDistribution(String(p.outputLength)), seed }).map((r, i) => toEntry(r, "prompts", i + 1));
    const tenantIds = ["heavy", ...Array.from({ length: p.lightTenants }, (_, i) => `light-${i + 1}`)];
    const systems = fairnessSystems(p.maxNumSeqs);
    const models = systems.map((f) => ({ system: f, model: `bench-fair-${f.name}` }));
    const perTenant: Array<{ overload: number; system: string; tenants: TenantSummary[] }> = [];
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
          const run = await s.run({ name: `overload-${overload}x-${m.system.name}`, stack: bench, workload, model: m.model, system: m.system.name, workloadLabel: `overload ${overload}×`, qps: Number(demand.toFixed(2)), timeScale: p.timeScale, tenantKeys, routingStrategy: "least-request" });
          if (run) perTenant.push({ overload, system: m.system.name, tenants: run.tenants });
        }
        // The first light tenant alone: the same rate, nobody else.
        const aloneWorkload = await s.workload(`overload-${overload}x-alone`, buildWorkload({ pattern: { kind: "poisson", rate: light }, durationMs: p.durationMs, seed: seed + Math.round(overload * 100) + 1, tenants: [{ id: "light-1", rate: Number(light.toFixed(3)) }], datasets: new Map([["", dataset]]), meta: { recipe: "fairness", overload, alone: "light-1" } }));
        const first = models[0];
        if (first) {
          const run = await s.run({ name: `overload-${overload}x-alone`, stack: bench, workload: aloneWorkload, model: first.model, system: "alone", workloadLabel: `overload ${overload}×`, qps: Number(light.toFixed(2)), timeScale: p.timeScale, tenantKeys: { "light-1": keys["light-1"] as string }, routingStrategy: "least-request" });
          if (run) perTenant.push({ overload, system: "alone", tenants: run.tenants });
        }
      }
    } finally {
      await bench.stop();
    }
    writeTenantTable(s.outDir, perTenant);
    // `alone` runs one light tenant at its own rate, not the overload's: a row of its own at that
    // QPS would read as another load point. tenants.md sets it beside light-1 under VTC and FCFS.
    return s.finish({ ...p, seed, capacity_estimate_rps: capacity, tenants: tenantIds, systems }, { exclude: { systems: ["alone"], note: "`alone` (light-1 by itself at its own rate, the reference for its TTFT under overload) is in tenants.md, beside light-1 under each policy." } });
  },
};

/** tenants.md: each tenant's TTFT and service share per overload and system, light-1 alone beside. */
function writeTenantTable(outDir: string, rows: Array<{ overload: number; system: string; tenants: TenantSummary[] }>): void {
  const ms = (v: number | null | undefined) => (v === null || v === undefined ? "–" : v >= 1000 ? `${(v / 1000).toFixed(1)} s` : `${v.toFixed(0)} ms`);
  const lines = ["# Fairness end to end: per-tenant TTFT", "", "Through wrangler dev, agents and emulator engines, one key per tenant. `alone`: light-1 by itself at the same rate.", ""];
  lines.push("| overload | system | tenant | requests | errors | TTFT p50 | TTFT p99 | output share | light-1 p99 ÷ alone |", "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const r of rows) {
    const alone = rows.find((x) => x.overload === r.overload && x.system === "alone")?.tenants.find((t) => t.tenant === "light-1")?.ttft_ms.p99 ?? null;
    for (const t of r.tenants) {
      const ratio = t.tenant === "light-1" && r.system !== "alone" && alone && t.ttft_ms.p99 !== null ? `${(t.ttft_ms.p99 / alone).toFixed(2)}×` : "";
      lines.push(`| ${r.overload}× | ${r.system} | ${t.tenant} | ${t.requests} | ${t.errors} | ${ms(t.ttft_ms.p50)} | ${ms(t.ttft_ms.p99)} | ${t.output_share === null ? "–" : `${(t.output_share * 100).toFixed(0)}%`} | ${ratio} |`);
    }
  }
  writeFileSync(join(outDir, "tenants.md"), `${lines.join("\n")}\n`);
}

if (isMain(import.meta.url)) await recipeMain(fairnessRecipe);
