/**
 * `bench compare`: the seed's table — one row per (workload, QPS), one column pair per system with
 * the mean and P99 of a latency metric (TTFT by default, in seconds like the AIBrix v0.3 table) —
 * from any number of run summaries. With a baseline system, a second table gives each system's mean
 * and P99 as a ratio to the baseline's (ratios travel better than absolute figures on a noisy host).
 */
import { readJsonFile } from "../lib/jsonl";
import { BenchInputError } from "../lib/errors";
import { fmtNum, mdTable } from "./markdown";
import { formatQps, type RunSummary, SUMMARY_SCHEMA } from "./summary";

export type CompareMetric = "ttft" | "tpot" | "itl" | "e2e";

export interface CompareOptions {
  metric?: CompareMetric;
  unit?: "s" | "ms";
  baseline?: string;
  /** Column order; default: order of first appearance. */
  systems?: string[];
}

/** Reads summary JSON files (each `{schema, runs: [...]}`) into one list of runs. */
export function loadSummaries(files: string[]): RunSummary[] {
  const runs: RunSummary[] = [];
  for (const file of files) {
    const v = readJsonFile(file) as { schema?: unknown; runs?: unknown };
    if (typeof v !== "object" || v === null || v.schema !== SUMMARY_SCHEMA) throw new BenchInputError(file, undefined, "schema", `not a run summary (expected "schema": "${SUMMARY_SCHEMA}"; make one with 'switchyard bench report')`);
    if (!Array.isArray(v.runs)) throw new BenchInputError(file, undefined, "runs", "expected an array of run summaries");
    v.runs.forEach((r, i) => {
      const run = r as Partial<RunSummary>;
      if (typeof run?.system !== "string") throw new BenchInputError(file, undefined, `runs[${i}].system`, "expected a string");
      if (typeof run.ttft_ms !== "object" || run.ttft_ms === null) throw new BenchInputError(file, undefined, `runs[${i}].ttft_ms`, "expected latency statistics");
      runs.push(run as RunSummary);
    });
  }
  return runs;
}

function pick(r: RunSummary, metric: CompareMetric) {
  return metric === "ttft" ? r.ttft_ms : metric === "tpot" ? r.tpot_ms : metric === "itl" ? r.itl_ms : r.e2e_ms;
}

const METRIC_NAME: Record<CompareMetric, string> = { ttft: "TTFT", tpot: "TPOT", itl: "ITL", e2e: "E2E" };

export function renderCompare(runs: RunSummary[], opts: CompareOptions = {}): string {
  const metric = opts.metric ?? "ttft";
  const unit = opts.unit ?? "s";
  const div = unit === "s" ? 1000 : 1;
  const systems = opts.systems ?? [...new Set(runs.map((r) => r.system))];
  const withWorkload = new Set(runs.map((r) => r.workload ?? "")).size > 1 || runs.some((r) => r.workload);
  const rowKeys = [...new Map(runs.map((r) => [`${r.workload ?? ""}\u0000${r.qps ?? ""}`, { workload: r.workload ?? "", qps: r.qps }])).values()].sort(
    (a, b) => a.workload.localeCompare(b.workload) || (a.qps ?? 0) - (b.qps ?? 0),
  );
  const cell = (workload: string, qps: number | null, system: string) => {
    const matches = runs.filter((r) => (r.workload ?? "") === workload && r.qps === qps && r.system === system);
    // Several runs of one cell (repeats): the median of their means and of their P99s.
    const means = matches.map((r) => pick(r, metric).mean).filter((v): v is number => v !== null);
    const p99s = matches.map((r) => pick(r, metric).p99).filter((v): v is number => v !== null);
    return { mean: median(means), p99: median(p99s), n: matches.length };
  };
  const fmt = (v: number | null) => (v === null ? "–" : unit === "s" ? fmtSeconds(v / div) : fmtNum(v / div));
  const head = [...(withWorkload ? ["Workload"] : []), "QPS", ...systems.flatMap((s) => [`${s} mean ${METRIC_NAME[metric]} (${unit})`, `${s} P99 ${METRIC_NAME[metric]} (${unit})`])];
  const rows = rowKeys.map(({ workload, qps }) => [
    ...(withWorkload ? [workload || "–"] : []),
    qps !== null ? formatQps(qps) : "–",
    ...systems.flatMap((s) => {
      const c = cell(workload, qps, s);
      return [fmt(c.mean), fmt(c.p99)];
    }),
  ]);
  const right = head.map((_, i) => i >= (withWorkload ? 1 : 0));
  let out = mdTable(head, rows, right);
  const scales = [...new Set(runs.map((r) => r.time_basis === "model" ? `model time (×${r.model_time_scale})` : "wall clock"))];
  out += `\n${METRIC_NAME[metric]} over successful requests; ${scales.join(", ")}. Repeated runs of one cell: the median of their values.\n`;
  if (opts.baseline) {
    if (!systems.includes(opts.baseline)) throw new Error(`the baseline '${opts.baseline}' is not among the systems (${systems.join(", ")})`);
    const others = systems.filter((s) => s !== opts.baseline);
    const ratioHead = [...(withWorkload ? ["Workload"] : []), "QPS", ...others.flatMap((s) => [`${s} / ${opts.baseline} mean`, `${s} / ${opts.baseline} P99`])];
    const ratioRows = rowKeys.map(({ workload, qps }) => {
      const b = cell(workload, qps, opts.baseline as string);
      return [
        ...(withWorkload ? [workload || "–"] : []),
        qps !== null ? formatQps(qps) : "–",
        ...others.flatMap((s) => {
          const c = cell(workload, qps, s);
          return [ratioText(c.mean, b.mean), ratioText(c.p99, b.p99)];
        }),
      ];
    });
    out += `\n${mdTable(ratioHead, ratioRows, ratioHead.map((_, i) => i >= (withWorkload ? 1 : 0)))}`;
  }
  return out;
}

function ratioText(a: number | null, b: number | null): string {
  if (a === null || b === null || b === 0) return "–";
  return `${fmtNum(a / b)}×`;
}

function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** Seconds with two decimals like the seed's table, more digits when tiny. */
export function fmtSeconds(v: number): string {
  if (Math.abs(v) >= 0.1) return v.toFixed(2);
  if (Math.abs(v) >= 0.001) return v.toFixed(3);
  return v.toPrecision(2);
}
