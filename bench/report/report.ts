/**
 * `bench report`: results files → `summary.json`, `summary.md` and `charts/*.svg|png` in a folder.
 *
 * @example
 * ```ts
 * await writeReport({ inputs: ["runs/random-4.jsonl", "runs/prefix-4.jsonl"], outDir: "report" });
 * ```
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadRun } from "../client/records";
import { renderCharts } from "./charts";
import { renderSummaryMarkdown } from "./markdown";
import { type RunSummary, summarizeRun, summaryFile, uniqueLabels } from "./summary";

export interface ReportOptions {
  inputs: string[];
  outDir: string;
  title?: string;
  /** Override every run's model_time_scale (1 = wall clock). */
  modelTimeScale?: number;
  /** Skip charts (faster; tables only). */
  noCharts?: boolean;
}

export interface ReportResult {
  runs: RunSummary[];
  files: string[];
}

export async function writeReport(opts: ReportOptions): Promise<ReportResult> {
  const runs: RunSummary[] = [];
  for (const file of opts.inputs) {
    const run = await loadRun(file);
    runs.push(summarizeRun(run, opts.modelTimeScale !== undefined ? { modelTimeScale: opts.modelTimeScale } : {}));
  }
  return writeReportFromSummaries(uniqueLabels(runs), opts);
}

export async function writeReportFromSummaries(runs: RunSummary[], opts: Omit<ReportOptions, "inputs">): Promise<ReportResult> {
  mkdirSync(opts.outDir, { recursive: true });
  const files: string[] = [];
  const chartNames: string[] = [];
  if (!opts.noCharts) {
    const chartsDir = join(opts.outDir, "charts");
    mkdirSync(chartsDir, { recursive: true });
    for (const c of await renderCharts(runs)) {
      const svgPath = join(chartsDir, `${c.name}.svg`);
      const pngPath = join(chartsDir, `${c.name}.png`);
      writeFileSync(svgPath, c.svg);
      writeFileSync(pngPath, c.png);
      files.push(svgPath, pngPath);
      chartNames.push(`charts/${c.name}.svg`);
    }
  }
  const jsonPath = join(opts.outDir, "summary.json");
  writeFileSync(jsonPath, `${JSON.stringify(summaryFile(runs), null, 2)}\n`);
  const mdPath = join(opts.outDir, "summary.md");
  writeFileSync(mdPath, renderSummaryMarkdown(runs, { ...(opts.title ? { title: opts.title } : {}), charts: chartNames }));
  files.unshift(jsonPath, mdPath);
  return { runs, files };
}
