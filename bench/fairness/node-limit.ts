/**
 * The batch-size trade-off behind the fairness target (discrete-event mode). VTC admission keeps a
 * light tenant from waiting at the edge, but its request still shares the engine with a full batch
 * of the heavy tenant's: its prefill runs in longer steps than when it is alone. The per-node limit
 * (`node_limit`, requests in flight per node) bounds that batch. This sweep shows, for each limit,
 * the light tenants' p99 TTFT against running alone and what the cluster serves — the price of
 * the 1.2× target. Writes bench/results/fairness/node-limit.{json,md}.
 *
 *   npx tsx bench/fairness/node-limit.ts [--quick]
 */
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { quantile, runFairnessStudy, type TenantLoad } from "./study";
import { quick, DURATION_MS, WARMUP_MS, SEEDS, NODES, LIGHT, SHAPE, MAX_WAIT_MS } from "./flood-mix";

const LIMITS = [8, 12, 16, 24];
const OVERLOADS = [1.5, 2];
const median = (xs: number[]) => quantile(xs, 0.5);

const study = (nodeLimit: number, tenants: TenantLoad[], seed: number, durationMs = DURATION_MS) =>
  runFairnessStudy({ nodes: NODES, nodeLimit, policy: "vtc", tenants, durationMs, maxWaitMs: MAX_WAIT_MS, seed });

/** Requests finished per second once warm, with one tenant far beyond what the cluster serves. */
function capacityAt(nodeLimit: number): number {
  const runMs = 300_000;
  const res = study(nodeLimit, [{ id: "flood", weight: 1, ratePerSec: 400, ...SHAPE }], 99, runMs);
  return (res.tenants[0]?.finishedAtMs.filter((t) => t >= WARMUP_MS && t < runMs).length ?? 0) / ((runMs - WARMUP_MS) / 1000);
}

function lightP99(res: ReturnType<typeof study>, id: string): number {
  const t = res.tenants.find((x) => x.id === id);
  if (!t) return Number.NaN;
  return quantile(t.ttftMs.filter((_, i) => (t.ttftArrivalMs[i] as number) >= WARMUP_MS), 0.99);
}

interface Row {
  nodeLimit: number;
  capacity: number;
  overload: number;
  /** Median over seeds of the worst light tenant's p99 under VTC ÷ its p99 alone. */
  worstRatio: number;
  vtcP99Ms: number;
  aloneP99Ms: number;
}

const rows: Row[] = [];
const capacities: Record<number, number> = {};
for (const nodeLimit of LIMITS) {
  const capacity = capacityAt(nodeLimit);
  capacities[nodeLimit] = capacity;
  for (const overload of OVERLOADS) {
    const r = (overload * capacity) / (10 + LIGHT.length);
    const tenants: TenantLoad[] = [{ id: "heavy", weight: 1, ratePerSec: 10 * r, ...SHAPE }, ...LIGHT.map((id) => ({ id, weight: 1, ratePerSec: r, ...SHAPE }))];
    const perSeed = SEEDS.map((seed) => {
      const shared = study(nodeLimit, tenants, seed);
      const worst = LIGHT.map((id) => {
        const alone = lightP99(study(nodeLimit, tenants.filter((t) => t.id === id), seed), id);
        return { ratio: lightP99(shared, id) / alone, p99: lightP99(shared, id), alone };
      }).sort((a, b) => b.ratio - a.ratio)[0] as { ratio: number; p99: number; alone: number };
      return worst;
    });
    rows.push({
      nodeLimit,
      capacity,
      overload,
      worstRatio: median(perSeed.map((w) => w.ratio)),
      vtcP99Ms: median(perSeed.map((w) => w.p99)),
      aloneP99Ms: median(perSeed.map((w) => w.alone)),
    });
    console.error(`node limit ${nodeLimit}, ${overload}×: ${rows[rows.length - 1]?.worstRatio.toFixed(2)}×`);
  }
}

const top = capacities[Math.max(...LIMITS)] as number;
const machine = `${os.cpus()[0]?.model ?? "cpu"} × ${os.cpus().length}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
const fmt = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`);
const md = [
  "# Fairness: the per-node limit against light tenants' TTFT (discrete-event mode)",
  "",
  `\`npx tsx bench/fairness/node-limit.ts\`: ${NODES} emulated H100 nodes (Llama-3-8B calibration), VTC admission with the default headroom, one heavy tenant at 10× the rate of three light ones, demand = overload × the cluster's capacity at that node limit; prompts around 1000 tokens, answers around 200; ${DURATION_MS / 1000} s of model time per run, first ${WARMUP_MS / 1000} s left out, median over seeds ${SEEDS.join(", ")}. ${machine}; ${new Date().toISOString().slice(0, 10)}. Deterministic (virtual time): the machine's load does not change the figures.`,
  "",
  "Worst light tenant's p99 TTFT under VTC ÷ its p99 alone (target ≤ 1.2×), and what the cluster serves at that limit.",
  "",
  `| node limit | capacity (req/s) | capacity vs limit ${Math.max(...LIMITS)} | ${OVERLOADS.map((o) => `${o}× overload: p99 / alone (ratio)`).join(" | ")} |`,
  `| ---: | ---: | ---: | ${OVERLOADS.map(() => "---:").join(" | ")} |`,
  ...LIMITS.map((l) => {
    const cells = OVERLOADS.map((o) => {
      const r = rows.find((x) => x.nodeLimit === l && x.overload === o) as Row;
      return `${fmt(r.vtcP99Ms)} / ${fmt(r.aloneP99Ms)} (${r.worstRatio.toFixed(2)}×${r.worstRatio <= 1.2 ? " ✓" : ""})`;
    });
    return `| ${l} | ${(capacities[l] as number).toFixed(1)} | ${(((capacities[l] as number) / top) * 100).toFixed(0)}% | ${cells.join(" | ")} |`;
  }),
  "",
];
const outDir = path.join(import.meta.dirname, "..", "results", "fairness");
mkdirSync(outDir, { recursive: true });
const suffix = quick ? "-quick" : "";
writeFileSync(path.join(outDir, `node-limit${suffix}.json`), `${JSON.stringify({ machine, date: new Date().toISOString(), nodes: NODES, durationMs: DURATION_MS, seeds: SEEDS, shape: SHAPE, capacities, rows }, null, 1)}\n`);
writeFileSync(path.join(outDir, `node-limit${suffix}.md`), `${md.join("\n")}\n`);
console.log(md.join("\n"));
