/**
 * End-to-end cross-check of the engine-scheduling study (engine-priority.ts) at one point: the real
 * stack — wrangler dev (the edge marking priorities and signing them), a node agent, emulator
 * engines behind it — driven by the bench client with one key per tenant, against the
 * discrete-event prediction for the same configuration.
 *
 * One node with node_limit 24 and answers of ~48 tokens (prompt-heavy, so engine interference is
 * large), two models on it: the plain engine and the engine with prioritised prefill
 * (`schedulingPolicy: priority`, `priorityPrefill`). The emulator runs at `TIME_SCALE` (slower than
 * real time) so the local edge, which streams a few hundred tokens a second on this machine, can
 * carry a realistic batch; ratios do not depend on the scale. Prefix caching is off, as in the
 * discrete-event study (its prompts never repeat). The light tenant light-1 is measured next to
 * the flood and alone, on each engine.
 *
 *   npx tsx bench/fairness/live-priority.ts [--duration-s 150]
 *
 * Writes bench/results/fairness-live-priority/ (per-request files under raw/ are git-ignored).
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { toEntry } from "../datasets/format";
import { generateSharedPrefix } from "../datasets/shared-prefix";
import { parseDistribution } from "../lib/distribution";
import { type Recipe, RecipeSession, startBenchStack, tenantKey, warmUp } from "../recipes/common";
import type { TenantSummary } from "../report/summary";
import { buildWorkload } from "../workloads/build";
import type { TenantSpec } from "../workloads/format";
import { quantile, runFairnessStudy, type TenantLoad } from "./study";

const args = parseArgs({ options: { "duration-s": { type: "string", default: "150" }, out: { type: "string" } } }).values;
const DURATION_MS = Number(args["duration-s"]) * 1000;
const TIME_SCALE = 0.2;
const NODE_LIMIT = 24;
const OVERLOAD = 1.25;
const SHAPE = { promptMedian: 1_000, outputMedian: 48 };
const LIGHT = ["light-1", "light-2", "light-3"];
const PRIORITISED = { schedulingPolicy: "priority" as const, priorityPrefill: { chunkTokens: 1024 } };
const SYSTEMS = [
  { name: "plain", title: "vLLM-like FCFS engine", engine: {} },
  { name: "prioritised-prefill", title: "engine with prioritised prefill (1,024 tokens)", engine: PRIORITISED },
];

const recipe: Recipe = {
  name: "fairness-live-priority",
  title: "Light tenant next to a flood, live: plain vs prioritised-prefill engines",
  description: "One node (node_limit 24), a heavy tenant at 10x three light ones at 1.25x overload, through wrangler dev and a node agent; light-1 next to the flood and alone on each engine. Cross-checks bench/fairness/engine-priority.ts.",
  run: () => Promise.reject(new Error("run from the command line")),
};

// --- the discrete-event prediction for the same configuration (model time) ---
// The prediction runs as long as a live run in model time, from an empty cluster like it.
const desStudy = (tenants: TenantLoad[], seed: number, engine: object, durationMs = DURATION_MS * TIME_SCALE) => runFairnessStudy({ nodes: 1, nodeLimit: NODE_LIMIT, policy: "vtc", tenants, durationMs, maxWaitMs: 30_000, seed, engine });
const capacity = (() => {
  const r = desStudy([{ id: "flood", weight: 1, ratePerSec: 200, ...SHAPE }], 99, {}, 600_000);
  return (r.tenants[0]?.finishedAtMs.filter((t) => t >= 60_000).length ?? 0) / 540;
})();
const SEEDS = [1, 2, 3, 4, 5];
const lightRate = (OVERLOAD * capacity) / (10 + LIGHT.length); // model time
const tenantLoads: TenantLoad[] = [{ id: "heavy", weight: 1, ratePerSec: 10 * lightRate, ...SHAPE }, ...LIGHT.map((id) => ({ id, weight: 1, ratePerSec: lightRate, ...SHAPE }))];
type Ratios = { mean: number; p50: number; p90: number };
const ttftStats = (xs: number[]) => ({ mean: xs.reduce((a, b) => a + b, 0) / xs.length, p50: quantile(xs, 0.5), p90: quantile(xs, 0.9) });
const ratiosOf = (mixed: { mean: number; p50: number; p90: number }, alone: { mean: number; p50: number; p90: number }): Ratios => ({ mean: mixed.mean / alone.mean, p50: mixed.p50 / alone.p50, p90: mixed.p90 / alone.p90 });
const predicted: Record<string, Ratios> = {};
for (const s of SYSTEMS) {
  const per = SEEDS.map((seed) => {
    const mixed = desStudy(tenantLoads, seed, s.engine).tenants.find((t) => t.id === "light-1");
    const alone = desStudy(tenantLoads.filter((t) => t.id === "light-1"), seed, s.engine).tenants[0];
    return ratiosOf(ttftStats(mixed?.ttftMs ?? []), ttftStats(alone?.ttftMs ?? []));
  });
  const med = (k: keyof Ratios) => quantile(per.map((r) => r[k]), 0.5);
  predicted[s.name] = { mean: med("mean"), p50: med("p50"), p90: med("p90") };
}

// --- the live run ---
const session = new RecipeSession(recipe, { scale: "small", ...(args.out ? { outDir: args.out } : {}) });
const dataset = generateSharedPrefix({ groups: 256, promptsPerGroup: 4, prefixLength: parseDistribution("0"), suffixLength: parseDistribution(`lognormal:median=${SHAPE.promptMedian},sigma=0.5,min=16,max=6000`), outputLength: parseDistribution(`lognormal:median=${SHAPE.outputMedian},sigma=0.6,min=1,max=2048`), seed: 1 }).map((r, i) => toEntry(r, "prompts", i + 1));
const models = SYSTEMS.map((s) => ({ system: s, model: `bench-fairprio-${s.name}` }));
const bench = await startBenchStack({
  nodes: 1,
  timeScale: TIME_SCALE,
  engine: { enablePrefixCaching: false },
  systems: models.map((m) => ({ model: m.model, engine: m.system.engine, modelConfig: { admission_policy: "vtc", node_limit: NODE_LIMIT } })),
  log: session.log,
});
const measured: Record<string, { mixed: TenantSummary | undefined; alone: TenantSummary | undefined }> = {};
try {
  const keys: Record<string, string> = {};
  for (const id of ["heavy", ...LIGHT]) keys[id] = await tenantKey(bench.stack, `bench-${id}`);
  await warmUp(bench.stack, models.map((m) => m.model));
  // Workloads are written in model time; the client sends them stretched by 1 / TIME_SCALE, so a
  // run lasts DURATION_MS of wall time.
  const modelMs = DURATION_MS * TIME_SCALE;
  const rate = (r: number) => Number(r.toFixed(4));
  const tenants: TenantSpec[] = tenantLoads.map((t) => ({ id: t.id, rate: rate(t.ratePerSec) }));
  const demand = tenants.reduce((a, t) => a + (t.rate ?? 0), 0);
  const mixedWorkload = await session.workload("mixed", buildWorkload({ pattern: { kind: "poisson", rate: demand }, durationMs: modelMs, seed: 11, tenants, datasets: new Map([["", dataset]]), meta: { overload: OVERLOAD } }));
  const aloneWorkload = await session.workload("alone", buildWorkload({ pattern: { kind: "poisson", rate: rate(lightRate) }, durationMs: modelMs, seed: 12, tenants: [{ id: "light-1", rate: rate(lightRate) }], datasets: new Map([["", dataset]]), meta: { alone: "light-1" } }));
  for (const m of models) {
    const mixed = await session.run({ name: `${m.system.name}-mixed`, stack: bench, workload: mixedWorkload, model: m.model, system: m.system.name, qps: Number(demand.toFixed(2)), timeScale: TIME_SCALE, tenantKeys: keys, routingStrategy: "least-request" });
    const alone = await session.run({ name: `${m.system.name}-alone`, stack: bench, workload: aloneWorkload, model: m.model, system: `${m.system.name} (light-1 alone)`, qps: rate(lightRate), timeScale: TIME_SCALE, tenantKeys: { "light-1": keys["light-1"] as string }, routingStrategy: "least-request" });
    measured[m.system.name] = { mixed: mixed?.tenants.find((t) => t.tenant === "light-1"), alone: alone?.tenants.find((t) => t.tenant === "light-1") };
  }
} finally {
  await bench.stop();
}
await session.finish({ timeScale: TIME_SCALE, nodeLimit: NODE_LIMIT, overload: OVERLOAD, shape: SHAPE, capacityModelRps: capacity, durationMs: DURATION_MS, systems: SYSTEMS, predicted, measured }, { exclude: { systems: SYSTEMS.map((s) => `${s.name} (light-1 alone)`), note: "The light-1-alone runs are in results.md." } });

const statsOf = (t: TenantSummary | undefined) => ({ mean: t?.ttft_ms.mean ?? Number.NaN, p50: t?.ttft_ms.p50 ?? Number.NaN, p90: t?.ttft_ms.p90 ?? Number.NaN });
const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : "–");
const ms = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : "–");
const lines = [
  `# ${recipe.title}`,
  "",
  `\`npx tsx bench/fairness/live-priority.ts\` on ${new Date().toISOString().slice(0, 10)}: wrangler dev + 1 node agent + emulator engines at time scale ${TIME_SCALE}, node_limit ${NODE_LIMIT}, VTC admission; heavy at 10× three light tenants, ${OVERLOAD}× overload of the plain engine's capacity (${capacity.toFixed(1)} requests/s of model time); prompts lognormal around ${SHAPE.promptMedian} tokens, answers around ${SHAPE.outputMedian}; ${DURATION_MS / 1000} s per run. machine.json names the machine and versions.`,
  "",
  "light-1's TTFT next to the flood ÷ its TTFT alone on the same engine (the report's model time: wall-clock × the time scale, edge and loopback overhead scaled with it):",
  "",
  "| engine | live mean | live p50 | live p90 | predicted mean | predicted p50 | predicted p90 | live TTFT mean next to flood / alone (ms) | requests (mixed / alone) |",
  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
];
for (const s of SYSTEMS) {
  const m = measured[s.name];
  const live = ratiosOf(statsOf(m?.mixed), statsOf(m?.alone));
  const p = predicted[s.name] as Ratios;
  lines.push(`| ${s.name} | ${f2(live.mean)}× | ${f2(live.p50)}× | ${f2(live.p90)}× | ${f2(p.mean)}× | ${f2(p.p50)}× | ${f2(p.p90)}× | ${ms(statsOf(m?.mixed).mean)} / ${ms(statsOf(m?.alone).mean)} | ${m?.mixed?.ok ?? 0} / ${m?.alone?.ok ?? 0} |`);
}
lines.push("", `Predicted: the discrete-event study of the same configuration and length (production pool code, the same engine model), median of seeds ${SEEDS.join(", ")}. p99 is not compared: a light tenant sends well under a hundred requests in a live run.`, "");
writeFileSync(join(session.outDir, "results.md"), `${lines.join("\n")}\n`);
console.log(lines.join("\n"));
