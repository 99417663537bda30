/**
 * Markdown renderings of run summaries: one table of runs (throughput, errors, cache hits, send
 * lag), one per latency metric (mean, p50, p90, p99), per-tenant tables and the spread over nodes.
 */
import type { Stats } from "../lib/stats";
import { formatQps, type RunSummary } from "./summary";

/** Milliseconds with precision that suits their size. */
export function fmtMs(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return "–";
  const a = Math.abs(v);
  return a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : v.toFixed(2);
}

export function fmtNum(v: number | null | undefined, digits = 3): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return "–";
  if (Math.abs(v) >= 10 ** digits) return v.toFixed(0);
  return String(Number(v.toPrecision(digits)));
}

export function fmtPct(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return "–";
  const p = v * 100;
  return `${p >= 10 || p === 0 ? p.toFixed(0) : p.toFixed(1)}%`;
}

function esc(text: string): string {
  return text.replace(/\|/g, "\\|").replace(/\n/g, " ");
}

export function mdTable(head: string[], rows: string[][], right: boolean[] = []): string {
  const align = head.map((_, i) => (right[i] ? "---:" : "---"));
  return [`| ${head.map(esc).join(" | ")} |`, `| ${align.join(" | ")} |`, ...rows.map((r) => `| ${r.map(esc).join(" | ")} |`)].join("\n") + "\n";
}

function statCells(s: Stats): string[] {
  return [fmtMs(s.mean), fmtMs(s.p50), fmtMs(s.p90), fmtMs(s.p99), String(s.n)];
}

function timeNote(runs: RunSummary[]): string {
  const scales = [...new Set(runs.map((r) => r.model_time_scale))];
  if (scales.length === 1 && scales[0] === 1) return "Times are the client's wall clock.";
  return `Times are model time: the engines ran ${scales.join("/")}× faster than real time, so measured wall-clock latencies are multiplied (and rates divided) by that factor — including loopback and edge overhead, which a real deployment pays only once.`;
}

export function renderSummaryMarkdown(runs: RunSummary[], opts: { title?: string; charts?: string[] } = {}): string {
  const out: string[] = [];
  out.push(`# ${opts.title ?? "Benchmark report"}\n`);
  out.push(`${runs.length} run${runs.length === 1 ? "" : "s"}. ${timeNote(runs)} Latency statistics are over successful requests; TTFT/TPOT/ITL need streaming.\n`);
  if (runs.some((r) => r.interrupted)) out.push(`**Interrupted runs** (stopped early, partial results): ${runs.filter((r) => r.interrupted).map((r) => r.label).join(", ")}\n`);
  out.push("## Runs\n");
  out.push(
    mdTable(
      ["run", "system", "workload", "QPS", "requests", "ok", "errors", "error rate", "cancelled", "duration (s)", "req/s", "output tok/s", "cache hit", "send lag p99 (ms)"],
      runs.map((r) => [
        r.label,
        r.system,
        r.workload ?? "–",
        r.qps !== null ? formatQps(r.qps) : "–",
        String(r.counts.total),
        String(r.counts.ok),
        String(r.counts.error),
        fmtPct(r.error_rate),
        String(r.counts.cancelled),
        fmtNum(r.duration_s),
        fmtNum(r.throughput.requests_per_s),
        fmtNum(r.throughput.output_tokens_per_s),
        fmtPct(r.cache_hit_rate),
        fmtMs(r.send_lag_ms.p99),
      ]),
      [false, false, false, true, true, true, true, true, true, true, true, true, true, true],
    ),
  );
  const errored = runs.filter((r) => Object.keys(r.errors_by_type).length > 0);
  if (errored.length > 0) {
    out.push("Errors by kind: " + errored.map((r) => `${r.label}: ${Object.entries(r.errors_by_type).map(([k, v]) => `${k} ×${v}`).join(", ")}`).join("; ") + "\n");
  }
  for (const [title, pick] of [
    ["TTFT (ms)", (r: RunSummary) => r.ttft_ms],
    ["TPOT (ms)", (r: RunSummary) => r.tpot_ms],
    ["ITL (ms)", (r: RunSummary) => r.itl_ms],
    ["E2E latency (ms)", (r: RunSummary) => r.e2e_ms],
  ] as const) {
    out.push(`## ${title}\n`);
    out.push(mdTable(["run", "mean", "p50", "p90", "p99", "n"], runs.map((r) => [r.label, ...statCells(pick(r))]), [false, true, true, true, true, true]));
  }
  out.push("## Per tenant\n");
  for (const r of runs) {
    if (runs.length > 1) out.push(`### ${r.label}\n`);
    out.push(
      mdTable(
        ["tenant", "requests", "errors", "TTFT mean", "TTFT p50", "TTFT p99", "TPOT mean", "E2E p99", "output tok/s", "output share", "cache hit"],
        r.tenants.map((t) => [
          t.tenant,
          String(t.requests),
          String(t.errors),
          fmtMs(t.ttft_ms.mean),
          fmtMs(t.ttft_ms.p50),
          fmtMs(t.ttft_ms.p99),
          fmtMs(t.tpot_ms.mean),
          fmtMs(t.e2e_ms.p99),
          fmtNum(t.output_tokens_per_s),
          fmtPct(t.output_share),
          fmtPct(t.cache_hit_rate),
        ]),
        [false, true, true, true, true, true, true, true, true, true, true],
      ),
    );
  }
  if (runs.some((r) => r.nodes.length > 0)) {
    out.push("## Requests per node\n");
    const nodes = [...new Set(runs.flatMap((r) => r.nodes.map((n) => n.node)))].sort();
    out.push(
      mdTable(
        ["run", ...nodes],
        runs.map((r) => [r.label, ...nodes.map((n) => {
          const e = r.nodes.find((x) => x.node === n);
          return e ? `${e.requests} (${fmtPct(e.share)})` : "–";
        })]),
        [false, ...nodes.map(() => true)],
      ),
    );
  }
  if (opts.charts && opts.charts.length > 0) {
    out.push("## Charts\n");
    for (const c of opts.charts) out.push(`![${c}](${c})\n`);
  }
  return out.join("\n");
}
