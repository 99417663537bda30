/**
 * Fairness benchmark (discrete-event mode): one tenant at 10× the rate of three light ones, at
 * several overloads of a 4-node emulated H100 cluster, under each admission policy; plus a
 * backlogged mix with weights for Jain's index. Writes bench/results/fairness/des.{json,md}.
 *
 * Each light tenant's p99 TTFT is compared with its p99 when it runs alone on the same cluster
 * (same seed, same requests). TTFT is measured from arrival at the edge, queueing included; the
 * first minute is warm-up and left out. Every cell is run with several seeds; tables quote the
 * median over seeds.
 *
 * @example
 * ```sh
 * npx tsx bench/fairness/run.ts            # full: 600 s of model time per run, 3 seeds
 * npx tsx bench/fairness/run.ts --quick    # 120 s, 1 seed
 * ```
 */
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { jainIndex, quantile, runFairnessStudy, type FairnessStudyOptions, type TenantLoad } from "./study";
import { quick, DURATION_MS, WARMUP_MS, SEEDS, NODES, NODE_LIMIT, LIGHT, SHAPE, MAX_WAIT_MS } from "./flood-mix";

const OVERLOADS = [1.25, 1.5, 2, 3];

type System = "vtc" | "vtc-no-headroom" | "fcfs" | "off";
const SYSTEMS: Array<{ name: System; title: string; policy: FairnessStudyOptions["policy"]; headroom?: number }> = [
  { name: "vtc", title: "VTC admission (default: 10% headroom for tenants below their share)", policy: "vtc" },
  { name: "vtc-no-headroom", title: "VTC admission, no headroom (strict slot turnover)", policy: "vtc", headroom: 0 },
  { name: "fcfs", title: "first come, first served at the edge", policy: "fcfs" },
  { name: "off", title: "no edge admission (requests queue in the engines)", policy: "off" },
];

const median = (xs: number[]) => quantile(xs, 0.5);

/** TTFTs of requests that arrived after the warm-up (the study records TTFT in completion order; arrivals are kept alongside). */
function steady(values: number[], arrivals: number[]): number[] {
  return values.filter((_, i) => (arrivals[i] as number) >= WARMUP_MS);
}

function study(tenants: TenantLoad[], policy: FairnessStudyOptions["policy"], seed: number, headroom?: number) {
  return runFairnessStudy({ nodes: NODES, nodeLimit: NODE_LIMIT, policy, tenants, durationMs: DURATION_MS, maxWaitMs: MAX_WAIT_MS, seed, ...(headroom !== undefined ? { headroom } : {}) });
}

// Capacity: one tenant far beyond what the cluster serves; requests finished per second in steady
// state (after the warm-up, before the end).
const CAPACITY_RUN_MS = 300_000;
const saturated = runFairnessStudy({ nodes: NODES, nodeLimit: NODE_LIMIT, policy: "vtc", tenants: [{ id: "flood", weight: 1, ratePerSec: 400, ...SHAPE }], durationMs: CAPACITY_RUN_MS, maxWaitMs: MAX_WAIT_MS, seed: 99 });
const capacity = (saturated.tenants[0]?.finishedAtMs.filter((t) => t >= WARMUP_MS && t < CAPACITY_RUN_MS).length ?? 0) / ((CAPACITY_RUN_MS - WARMUP_MS) / 1000);
console.error(`capacity ≈ ${capacity.toFixed(1)} requests/s`);

interface Cell {
  overload: number;
  system: System | "alone";
  seed: number;
  /** Requests finished per second after the warm-up. */
  throughput: number;
  tenants: Record<string, { sent: number; completed: number; timedOut: number; ttftP50: number; ttftP99: number; queueP99: number; engineTtftP99: number }>;
}

const cells: Cell[] = [];
const summarizeTenants = (res: ReturnType<typeof study>): Cell["tenants"] =>
  Object.fromEntries(
    res.tenants.map((t) => {
      const ttft = steady(t.ttftMs, t.ttftArrivalMs);
      return [
        t.id,
        {
          sent: t.sent,
          completed: t.completed,
          timedOut: t.timedOut,
          ttftP50: quantile(ttft, 0.5),
          ttftP99: quantile(ttft, 0.99),
          queueP99: quantile(steady(t.queueMs, t.queueArrivalMs), 0.99),
          engineTtftP99: quantile(steady(t.engineTtftMs, t.ttftArrivalMs), 0.99),
        },
      ];
    }),
  );

for (const overload of OVERLOADS) {
  const r = (overload * capacity) / (10 + LIGHT.length);
  const tenants: TenantLoad[] = [{ id: "heavy", weight: 1, ratePerSec: 10 * r, ...SHAPE }, ...LIGHT.map((id) => ({ id, weight: 1, ratePerSec: r, ...SHAPE }))];
  for (const seed of SEEDS) {
    // Alone: each light tenant's own requests (same seed: the same arrivals and lengths), nobody else.
    const alone: Cell["tenants"] = {};
    for (const id of LIGHT) Object.assign(alone, summarizeTenants(study(tenants.filter((t) => t.id === id), "vtc", seed)));
    cells.push({ overload, system: "alone", seed, throughput: Number.NaN, tenants: alone });
    for (const s of SYSTEMS) {
      const res = study(tenants, s.policy, seed, s.headroom);
      const finished = res.tenants.reduce((n, t) => n + t.finishedAtMs.filter((at) => at >= WARMUP_MS && at < DURATION_MS).length, 0);
      cells.push({ overload, system: s.name, seed, throughput: finished / ((DURATION_MS - WARMUP_MS) / 1000), tenants: summarizeTenants(res) });
    }
    console.error(`overload ${overload}× seed ${seed} done`);
  }
}

// Throughput each policy reached at each overload (steady state), to set demand against.
const served = (overload: number, system: System) =>
  median(
    SEEDS.map((seed) => {
      const c = cells.find((x) => x.overload === overload && x.system === system && x.seed === seed);
      return c ? c.throughput : Number.NaN;
    }),
  );

// Backlogged mix for Jain's index: three tenants all sending beyond their share, one of weight 2.
const mixTenants: TenantLoad[] = [
  { id: "a", weight: 1, ratePerSec: capacity, ...SHAPE },
  { id: "b", weight: 1, ratePerSec: 2 * capacity, ...SHAPE },
  { id: "c", weight: 2, ratePerSec: capacity, ...SHAPE },
];
const jain: Array<{ system: System; seed: number; index: number; service: Record<string, number> }> = [];
for (const s of SYSTEMS) {
  for (const seed of SEEDS) {
    const res = study(mixTenants, s.policy, seed, s.headroom);
    // Weighted service over the buckets in which every tenant was backlogged the whole time.
    const all = res.tenants;
    const buckets = (all[0]?.service.length ?? 0) - 1;
    const service: Record<string, number> = Object.fromEntries(all.map((t) => [t.id, 0]));
    for (let b = Math.ceil(WARMUP_MS / res.bucketMs); b < buckets; b++) {
      if (!all.every((t) => (t.backlogged[b] as number) >= 0.999)) continue;
      for (const t of all) service[t.id] = (service[t.id] as number) + (t.service[b] as number);
    }
    jain.push({ system: s.name, seed, index: jainIndex(Object.values(service)), service });
  }
}

// --- report ---
const ratio = (overload: number, system: System, id: string) =>
  median(
    SEEDS.map((seed) => {
      const c = cells.find((x) => x.overload === overload && x.system === system && x.seed === seed)?.tenants[id];
      const a = cells.find((x) => x.overload === overload && x.system === "alone" && x.seed === seed)?.tenants[id];
      return (c?.ttftP99 ?? Number.NaN) / (a?.ttftP99 ?? Number.NaN);
    }),
  );
const cell = (overload: number, system: System | "alone", id: string, field: keyof Cell["tenants"][string]) =>
  median(SEEDS.map((seed) => cells.find((x) => x.overload === overload && x.system === system && x.seed === seed)?.tenants[id]?.[field] ?? Number.NaN));

const fmtMs = (ms: number) => (Number.isNaN(ms) ? "–" : ms >= 10_000 ? `${(ms / 1000).toFixed(0)} s` : ms >= 1_000 ? `${(ms / 1000).toFixed(1)} s` : `${ms.toFixed(0)} ms`);
const lines: string[] = [];
const machine = `${os.cpus()[0]?.model ?? "cpu"} × ${os.cpus().length}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
lines.push("# Fairness under overload (discrete-event mode)", "");
lines.push(
  `${NODES} emulated H100 nodes (Llama-3-8B calibration), node limit ${NODE_LIMIT} requests, capacity ≈ ${capacity.toFixed(1)} requests/s; prompts lognormal around ${SHAPE.promptMedian} tokens, answers around ${SHAPE.outputMedian}. One heavy tenant at 10× the rate of three light tenants; demand = overload × capacity; wait bound ${MAX_WAIT_MS / 1000} s. ${DURATION_MS / 1000} s of model time per run, first ${WARMUP_MS / 1000} s left out, median over seeds ${SEEDS.join(", ")}. Production pool code (worker/pool/pool-core.ts) on the emulator's virtual clock: \`npx tsx bench/fairness/run.ts\`. Machine: ${machine}; ${new Date().toISOString().slice(0, 10)}.`,
  "",
  "## Light tenants' p99 TTFT against running alone",
  "",
  "Worst of the three light tenants: p99 TTFT under each policy ÷ its p99 alone (target ≤ 1.2×).",
  "",
  `| overload | alone p99 | ${SYSTEMS.map((s) => `${s.name} p99 (ratio)`).join(" | ")} |`,
  `| ---: | ---: | ${SYSTEMS.map(() => "---:").join(" | ")} |`,
);
for (const o of OVERLOADS) {
  const worst = (s: System) => LIGHT.reduce((w, id) => (ratio(o, s, id) > ratio(o, s, w) ? id : w), LIGHT[0] as string);
  lines.push(
    `| ${o}× | ${fmtMs(Math.max(...LIGHT.map((id) => cell(o, "alone", id, "ttftP99"))))} | ${SYSTEMS.map((s) => {
      const id = worst(s.name);
      return `${fmtMs(cell(o, s.name, id, "ttftP99"))} (${ratio(o, s.name, id).toFixed(2)}×)`;
    }).join(" | ")} |`,
  );
}
lines.push(
  "",
  `Each light tenant asks for ${OVERLOADS.map((o) => `${((100 * o * capacity) / (10 + LIGHT.length) / served(o, "vtc")).toFixed(0)}%`).join(", ")} of what the cluster served under VTC at ${OVERLOADS.map((o) => `${o}×`).join(", ")} (${OVERLOADS.map((o) => served(o, "vtc").toFixed(1)).join(", ")} requests/s). An equal share of four tenants is 25%: a light tenant close to it or above it queues under any fair policy, and should.`,
);
lines.push("", "Where the light tenants' TTFT goes under VTC (worst light tenant, p99): waiting at the edge, and admission to first token in the engine.", "");
lines.push("| overload | edge wait p99 | engine TTFT p99 | engine TTFT p99 alone | heavy: requests refused (429) |", "| ---: | ---: | ---: | ---: | ---: |");
for (const o of OVERLOADS) {
  const id = LIGHT.reduce((w, x) => (ratio(o, "vtc", x) > ratio(o, "vtc", w) ? x : w), LIGHT[0] as string);
  const heavy = median(SEEDS.map((seed) => { const t = cells.find((x) => x.overload === o && x.system === "vtc" && x.seed === seed)?.tenants.heavy; return t ? t.timedOut / t.sent : Number.NaN; }));
  lines.push(`| ${o}× | ${fmtMs(cell(o, "vtc", id, "queueP99"))} | ${fmtMs(cell(o, "vtc", id, "engineTtftP99"))} | ${fmtMs(cell(o, "alone", id, "engineTtftP99"))} | ${(heavy * 100).toFixed(0)}% |`);
}
lines.push("", "## Jain's index over backlogged tenants' weighted service", "");
lines.push(`Tenants a (weight 1, ${capacity.toFixed(0)} req/s), b (weight 1, twice that), c (weight 2, ${capacity.toFixed(0)} req/s): all backlogged. Service = (input + 2 × output tokens) / weight, summed over the 5-second buckets in which all three had requests waiting the whole time. Target ≥ 0.99.`, "");
lines.push("| system | Jain's index (median) | weighted service a : b : c |", "| --- | ---: | --- |");
for (const s of SYSTEMS) {
  const rows = jain.filter((j) => j.system === s.name);
  const mid = rows.sort((x, y) => x.index - y.index)[Math.floor(rows.length / 2)];
  const sv = mid ? Object.values(mid.service) : [];
  const base = Math.min(...sv.filter((v) => v > 0));
  const common = sv.length > 0 && Number.isFinite(base);
  lines.push(`| ${s.name} | ${common ? median(rows.map((j) => j.index)).toFixed(4) : "n/a"} | ${common ? sv.map((v) => (v / base).toFixed(2)).join(" : ") : "nothing waits at the edge (engines queue)"} |`);
}
lines.push("");

const outDir = path.join(import.meta.dirname, "..", "results", "fairness");
mkdirSync(outDir, { recursive: true });
const suffix = quick ? "-quick" : "";
writeFileSync(path.join(outDir, `des${suffix}.json`), `${JSON.stringify({ machine, date: new Date().toISOString(), nodes: NODES, nodeLimit: NODE_LIMIT, capacity, durationMs: DURATION_MS, warmupMs: WARMUP_MS, seeds: SEEDS, overloads: OVERLOADS, shape: SHAPE, cells, jain }, null, 1)}\n`);
writeFileSync(path.join(outDir, `des${suffix}.md`), `${lines.join("\n")}\n`);
console.log(lines.join("\n"));
