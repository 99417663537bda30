/**
 * Charts as Vega-Lite specs, rendered headless to SVG (vega, `renderer: "none"`) and PNG (resvg).
 *
 * - `ttft-vs-qps`: mean (solid) and P99 (dashed) TTFT against QPS, one colour per system;
 * - `ttft-cdf`: the distribution of TTFT per run;
 * - `tenant-service`: output tokens/s per tenant over time (one panel per run).
 *
 * PNG text uses DejaVu Sans when installed (Debian `fonts-dejavu-core`), else the system's fonts;
 * `SWITCHYARD_BENCH_FONT=/path/font.ttf` picks another file.
 */
import { existsSync } from "node:fs";
import { Resvg } from "@resvg/resvg-js";
import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import type { RunSummary } from "./summary";

const FONT_CANDIDATES = ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/TTF/DejaVuSans.ttf", "/usr/share/fonts/dejavu/DejaVuSans.ttf", "/System/Library/Fonts/Supplemental/Arial.ttf"];

export interface Chart {
  name: string;
  title: string;
  spec: TopLevelSpec;
}

const base = {
  $schema: "https://vega.github.io/schema/vega-lite/v6.json",
  background: "white",
  config: { font: "sans-serif", view: { stroke: "#ddd" }, axis: { labelFontSize: 11, titleFontSize: 12 }, legend: { labelLimit: 260 } },
} as const;

function timeUnit(runs: RunSummary[]): string {
  return runs.every((r) => r.time_basis === "wall") ? "" : " (model time)";
}

export function ttftVsQpsChart(runs: RunSummary[]): Chart | undefined {
  const rows = runs.flatMap((r) =>
    r.qps === null
      ? []
      : [
          { system: r.system, qps: r.qps, stat: "mean", ttft_ms: r.ttft_ms.mean },
          { system: r.system, qps: r.qps, stat: "p99", ttft_ms: r.ttft_ms.p99 },
        ].filter((x) => x.ttft_ms !== null),
  );
  if (rows.length === 0) return undefined;
  return {
    name: "ttft-vs-qps",
    title: "TTFT against QPS",
    spec: {
      ...base,
      title: `TTFT against QPS${timeUnit(runs)}`,
      width: 520,
      height: 300,
      data: { values: rows },
      encoding: {
        x: { field: "qps", type: "quantitative", title: "QPS (requests/s)", scale: { zero: false } },
        y: { field: "ttft_ms", type: "quantitative", title: "TTFT (ms)" },
        color: { field: "system", type: "nominal", title: "system" },
      },
      // Lines carry the statistic (solid mean, dashed P99); points mark the measured QPS.
      layer: [
        { mark: { type: "line" }, encoding: { strokeDash: { field: "stat", type: "nominal", title: "statistic", sort: ["mean", "p99"] } } },
        { mark: { type: "point", filled: true, size: 40 }, encoding: { detail: { field: "stat" }, tooltip: [{ field: "system" }, { field: "qps" }, { field: "stat" }, { field: "ttft_ms", format: ".1f" }] } },
      ],
    } as TopLevelSpec,
  };
}

export function ttftCdfChart(runs: RunSummary[]): Chart | undefined {
  const rows = runs.flatMap((r) => r.ttft_cdf.map((p) => ({ run: r.label, ttft_ms: p.value, fraction: p.p })));
  if (rows.length === 0) return undefined;
  const positive = rows.filter((x) => x.ttft_ms > 0).map((x) => x.ttft_ms);
  const log = positive.length === rows.length && Math.max(...positive) / Math.min(...positive) > 50;
  return {
    name: "ttft-cdf",
    title: "TTFT distribution",
    spec: {
      ...base,
      title: `TTFT CDF${timeUnit(runs)}`,
      width: 520,
      height: 300,
      data: { values: rows },
      mark: { type: "line", interpolate: "step-after" },
      encoding: {
        x: { field: "ttft_ms", type: "quantitative", title: "TTFT (ms)", scale: log ? { type: "log" } : { zero: true } },
        y: { field: "fraction", type: "quantitative", title: "fraction of requests", scale: { domain: [0, 1] } },
        color: { field: "run", type: "nominal", title: "run", sort: runs.map((r) => r.label) },
      },
    } as TopLevelSpec,
  };
}

export function tenantServiceChart(runs: RunSummary[]): Chart | undefined {
  const rows = runs.flatMap((r) => r.timeline.points.map((p) => ({ run: r.label, tenant: p.tenant, t_s: p.t_s, tokens_per_s: p.output_tokens_per_s })));
  if (rows.length === 0) return undefined;
  const inner = {
    width: 520,
    height: 180,
    mark: { type: "line", interpolate: "step-after" },
    encoding: {
      x: { field: "t_s", type: "quantitative", title: `time (s)${timeUnit(runs)}` },
      y: { field: "tokens_per_s", type: "quantitative", title: "output tokens/s" },
      color: { field: "tenant", type: "nominal", title: "tenant" },
    },
  };
  const spec =
    runs.length > 1
      ? { ...base, title: "Service per tenant over time", data: { values: rows }, facet: { row: { field: "run", type: "nominal", title: null, sort: runs.map((r) => r.label) } }, spec: inner, resolve: { scale: { x: "independent" } } }
      : { ...base, title: `Service per tenant over time — ${runs[0]?.label ?? ""}`, data: { values: rows }, ...inner };
  return { name: "tenant-service", title: "Service per tenant over time", spec: spec as TopLevelSpec };
}

export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const compiled = compile(spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

let fontFile: string | null | undefined;
function findFont(): string | null {
  if (fontFile !== undefined) return fontFile;
  const env = process.env.SWITCHYARD_BENCH_FONT;
  fontFile = env && existsSync(env) ? env : (FONT_CANDIDATES.find((f) => existsSync(f)) ?? null);
  return fontFile;
}

export function svgToPng(svg: string, width?: number): Buffer {
  const font = findFont();
  const resvg = new Resvg(svg, {
    background: "white",
    ...(width ? { fitTo: { mode: "width" as const, value: width } } : {}),
    font: font
      ? { fontFiles: [font], loadSystemFonts: false, defaultFontFamily: "DejaVu Sans", sansSerifFamily: "DejaVu Sans" }
      : { loadSystemFonts: true },
  });
  return resvg.render().asPng();
}

export interface RenderedChart {
  name: string;
  title: string;
  svg: string;
  png: Buffer;
}

export async function renderCharts(runs: RunSummary[]): Promise<RenderedChart[]> {
  const charts = [ttftVsQpsChart(runs), ttftCdfChart(runs), tenantServiceChart(runs)].filter((c): c is Chart => c !== undefined);
  const out: RenderedChart[] = [];
  for (const c of charts) {
    const svg = await renderSvg(c.spec);
    out.push({ name: c.name, title: c.title, svg, png: svgToPng(svg) });
  }
  return out;
}
