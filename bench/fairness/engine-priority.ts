/**
 * What the engine's scheduler adds to VTC admission (discrete-event mode). With VTC no light
 * request waits at the edge up to 2× overload, yet its p99 TTFT stays ~1.45× its p99 alone: its
 * prompt shares GPU steps with the flood's prompts, and it arrives in the middle of the flood's
 * long prefill steps. The edge marks each admitted request high / normal / low
 * (protocol/priority.ts) and the agents pass it on as vLLM's `priority`; this study runs the same
 * mix as bench/fairness/run.ts under several engine schedulers:
 *
 * - vLLM's `--scheduling-policy priority` alone (orders the engine's queue, which edge admission
 *   keeps short);
 * - plus vLLM's `--long-prefill-token-threshold` (every prompt, the light ones too, in short chunks);
 * - Switchyard's prioritised prefill (sim `priorityPrefill`, not a vLLM feature): `low` requests
 *   prefill in chunks of at most N tokens and pause while a higher-priority prompt prefills.
 *
 * Each light tenant's p99 is compared with its p99 alone on the same engine configuration, and
 * each configuration's capacity (one saturating tenant) with the plain engine's: the price.
 * Writes bench/results/fairness/engine-priority.{json,md}.
 *
 *   npx tsx bench/fairness/engine-priority.ts [--quick]
 */
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { type FairnessStudyOptions, jainIndex, quantile, runFairnessStudy, type TenantLoad } from "./study";
import { quick, DURATION_MS, WARMUP_MS, SEEDS, NODES, NODE_LIMIT, LIGHT, SHAPE, MAX_WAIT_MS } from "./flood-mix";

const OVERLOADS = [1.25, 1.5, 2];
const median = (xs: number[]) => quantile(xs, 0.5);

type Engine = NonNullable<FairnessStudyOptions["engine"]>;
const CONFIGS: Array<{ name: string; title: string; engine: Engine }> = [
  { name: "fcfs", title: "vLLM default scheduling (FCFS, chunked prefill up to the 8192-token step budget)", engine: {} },
  { name: "vllm-priority", title: "vLLM --scheduling-policy priority", engine: { schedulingPolicy: "priority" } },
  { name: "vllm-priority+long-prefill-512", title: "vLLM priority + --long-prefill-token-threshold 512", engine: { schedulingPolicy: "priority", longPrefillTokenThreshold: 512 } },
  ...[2048, 1024, 768, 512].map((n) => ({ name: `prioritised-prefill-${n}`, title: `Switchyard prioritised prefill, low-priority prompts at most ${n} tokens a step together`, engine: { schedulingPolicy: "priority" as const, priorityPrefill: { chunkTokens: n } } })),
];

const study = (engine: Engine, tenants: TenantLoad[], seed: number, durationMs = DURATION_MS) =>
  runFairnessStudy({ nodes: NODES, nodeLimit: NODE_LIMIT, policy: "vtc", tenants, durationMs, maxWaitMs: MAX_WAIT_MS, seed, engine });

const steadyP99 = (res: ReturnType<typeof study>, id: string) => {
  const t = res.tenants.find((x) => x.id === id);
  return t ? quantile(t.ttftMs.filter((_, i) => (t.ttftArrivalMs[i] as number) >= WARMUP_MS), 0.99) : Number.NaN;
};

/** Requests finished per second once warm, with one tenant far beyond what the cluster serves. */
function capacityOf(engine: Engine): number {
  const runMs = 300_000;
  const res = study(engine, [{ id: "flood", weight: 1, ratePerSec: 400, ...SHAPE }], 99, runMs);
  return (res.tenants[0]?.finishedAtMs.filter((t) => t >= WARMUP_MS && t < runMs).length ?? 0) / ((runMs - WARMUP_MS) / 1000);
}

interface Row {
  config: string;
  capacity: number;
  /** Per overload: worst light tenant's p99 ratio per seed, and that tenant's p99 and alone p99. */
  overloads: Array<{ overload: number; ratios: number[]; p99: number[]; aloneP99: number[] }>;
  /** Jain's index over three backlogged tenants (weights 1, 1, 2), per seed. */
  jain: number[];
}

// Demand is set against the plain engine's capacity, so every configuration sees the same traffic.
const baseCapacity = capacityOf({});
const rows: Row[] = [];
for (const c of CONFIGS) {
  const capacity = c.name === "fcfs" ? baseCapacity : capacityOf(c.engine);
  const row: Row = { config: c.name, capacity, overloads: [], jain: [] };
  for (const overload of OVERLOADS) {
    const r = (overload * baseCapacity) / (10 + LIGHT.length);
    const tenants: TenantLoad[] = [{ id: "heavy", weight: 1, ratePerSec: 10 * r, ...SHAPE }, ...LIGHT.map((id) => ({ id, weight: 1, ratePerSec: r, ...SHAPE }))];
    const cell = { overload, ratios: [] as number[], p99: [] as number[], aloneP99: [] as number[] };
    for (const seed of SEEDS) {
      const mixed = study(c.engine, tenants, seed);
      let worst = { ratio: -1, p99: Number.NaN, alone: Number.NaN };
      for (const id of LIGHT) {
        const alone = steadyP99(study(c.engine, tenants.filter((t) => t.id === id), seed), id);
        const p99 = steadyP99(mixed, id);
        if (p99 / alone > worst.ratio) worst = { ratio: p99 / alone, p99, alone };
      }
      cell.ratios.push(worst.ratio);
      cell.p99.push(worst.p99);
      cell.aloneP99.push(worst.alone);
    }
    row.overloads.push(cell);
  }
  // Fairness between backlogged tenants must not suffer: the same mix as run.ts's Jain table.
  const mix: TenantLoad[] = [
    { id: "a", weight: 1, ratePerSec: baseCapacity, ...SHAPE },
    { id: "b", weight: 1, ratePerSec: 2 * baseCapacity, ...SHAPE },
    { id: "c", weight: 2, ratePerSec: baseCapacity, ...SHAPE },
  ];
  for (const seed of SEEDS) {
    const res = study(c.engine, mix, seed);
    const buckets = (res.tenants[0]?.service.length ?? 0) - 1;
    const service = res.tenants.map(() => 0);
    for (let b = Math.ceil(WARMUP_MS / res.bucketMs); b < buckets; b++) {
      if (!res.tenants.every((t) => (t.backlogged[b] as number) >= 0.999)) continue;
      res.tenants.forEach((t, i) => (service[i] = (service[i] as number) + (t.service[b] as number)));
    }
    row.jain.push(jainIndex(service));
  }
  rows.push(row);
  console.error(`${c.name} done`);
}

// --- report ---
const fmtMs = (ms: number) => (Number.isNaN(ms) ? "–" : ms >= 1_000 ? `${(ms / 1000).toFixed(1)} s` : `${ms.toFixed(0)} ms`);
const machine = `${os.cpus()[0]?.model ?? "cpu"} × ${os.cpus().length}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
const lines: string[] = [
  "# Engine scheduling for light tenants next to a flood (discrete-event mode)",
  "",
  `The mix of des.md — ${NODES} emulated H100 nodes, node limit ${NODE_LIMIT}, VTC admission with its default headroom, one heavy tenant at 10× the rate of three light ones, demand = overload × the plain engine's capacity (${baseCapacity.toFixed(1)} requests/s) — under each engine scheduler. The edge marks requests high / normal / low and the engines get vLLM's \`priority\` (protocol/priority.ts). ${DURATION_MS / 1000} s of model time per run, first ${WARMUP_MS / 1000} s left out, median over seeds ${SEEDS.join(", ")}. \`npx tsx bench/fairness/engine-priority.ts\`. Machine: ${machine}; ${new Date().toISOString().slice(0, 10)}.`,
  "",
  "Worst of the three light tenants: p99 TTFT ÷ its p99 alone on the same engine configuration (target ≤ 1.2×). Capacity: requests/s one saturating tenant gets, against the plain engine's.",
  "",
  `| engine scheduling | ${OVERLOADS.map((o) => `${o}× overload`).join(" | ")} | capacity | Jain (backlogged) |`,
  `| --- | ${OVERLOADS.map(() => "---:").join(" | ")} | ---: | ---: |`,
];
for (const r of rows) {
  const cells = r.overloads.map((o) => `${median(o.ratios).toFixed(2)}× (${fmtMs(median(o.p99))} / ${fmtMs(median(o.aloneP99))})`);
  lines.push(`| ${r.config} | ${cells.join(" | ")} | ${r.capacity.toFixed(1)}/s (${((100 * r.capacity) / baseCapacity).toFixed(0)}%) | ${median(r.jain).toFixed(4)} |`);
}
lines.push("", "Cells: median ratio (p99 / p99 alone, in ms). Configurations:", "");
for (const c of CONFIGS) lines.push(`- \`${c.name}\`: ${c.title}.`);
lines.push("");

const outDir = path.join(import.meta.dirname, "..", "results", "fairness");
mkdirSync(outDir, { recursive: true });
const suffix = quick ? "-quick" : "";
writeFileSync(path.join(outDir, `engine-priority${suffix}.json`), `${JSON.stringify({ machine, date: new Date().toISOString(), nodes: NODES, nodeLimit: NODE_LIMIT, baseCapacity, durationMs: DURATION_MS, warmupMs: WARMUP_MS, seeds: SEEDS, shape: SHAPE, configs: CONFIGS, rows }, null, 1)}\n`);
writeFileSync(path.join(outDir, `engine-priority${suffix}.md`), `${lines.join("\n")}\n`);
console.log(lines.join("\n"));
