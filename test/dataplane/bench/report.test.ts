/**
 * Reports from fixture results: summary numbers, markdown tables, SVG charts with the expected
 * series, PNGs, and the QPS × systems comparison.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadRun } from "../../../bench/client/records";
import { loadSummaries, renderCompare } from "../../../bench/report/compare";
import { renderSummaryMarkdown } from "../../../bench/report/markdown";
import { writeReport } from "../../../bench/report/report";
import { niceWindow, summarizeRun } from "../../../bench/report/summary";
import { quantileSorted, summarizeValues } from "../../../bench/lib/stats";
import { tempDir } from "../../support/tmp";

const FIX = join(import.meta.dirname, "fixtures");
const fixtures = ["results-random-2", "results-prefix-2", "results-random-4", "results-prefix-4"].map((n) => join(FIX, `${n}.jsonl`));
const dir = tempDir("bench-report");
afterAll(() => dir.cleanup());

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

describe("statistics", () => {
  it("percentiles interpolate linearly between order statistics (numpy's default)", () => {
    expect(quantileSorted([100, 200, 300, 400], 0.5)).toBe(250);
    expect(quantileSorted([100, 200, 300, 400], 0.9)).toBeCloseTo(370, 9);
    expect(quantileSorted([100, 200, 300, 400], 0.99)).toBeCloseTo(397, 9);
    expect(summarizeValues([])).toMatchObject({ n: 0, mean: null, p99: null });
    expect(niceWindow(100)).toBe(2);
    expect(niceWindow(7)).toBe(0.2);
  });
});

describe("run summary", () => {
  it("latencies, throughput, errors, cache hits, tenants and nodes from the records", async () => {
    const s = summarizeRun(await loadRun(fixtures[0] as string));
    expect(s).toMatchObject({ label: "random @ 2", system: "random", qps: 2, workload: "shared-prefix", time_basis: "wall" });
    expect(s.counts).toEqual({ total: 5, ok: 4, error: 1, cancelled: 0, not_sent: 0 });
    expect(s.error_rate).toBeCloseTo(0.2, 9);
    expect(s.errors_by_type).toEqual({ "http 503": 1 });
    expect(s.ttft_ms).toMatchObject({ n: 4, mean: 250, p50: 250, min: 100, max: 400 });
    expect(s.ttft_ms.p90).toBeCloseTo(370, 9);
    expect(s.ttft_ms.p99).toBeCloseTo(397, 9);
    expect(s.tpot_ms.mean).toBe(15);
    expect(s.e2e_ms.mean).toBe(250 + 9 * 15);
    expect(s.itl_ms).toMatchObject({ n: 36, mean: 15 });
    // 1000 of 4000 prompt tokens were cached.
    expect(s.cache_hit_rate).toBeCloseTo(0.25, 9);
    expect(s.tokens).toEqual({ prompt: 4000, completion: 40, cached: 1000 });
    // From the first send (1 ms) to the last end (1501 + 400 + 180 = 2081 ms).
    expect(s.duration_s).toBeCloseTo(2.08, 9);
    expect(s.throughput.requests_per_s).toBeCloseTo(4 / 2.08, 9);
    expect(s.throughput.output_tokens_per_s).toBeCloseTo(40 / 2.08, 9);
    expect(s.tenants.map((t) => [t.tenant, t.requests, t.errors, t.ttft_ms.mean, t.output_share])).toEqual([
      ["acme", 2, 0, 150, 0.5],
      ["globex", 3, 1, 350, 0.5],
    ]);
    expect(s.nodes).toEqual([
      { node: "n1", requests: 2, share: 0.5 },
      { node: "n2", requests: 2, share: 0.5 },
    ]);
    // Service over time: all 40 output tokens are accounted for.
    const total = s.timeline.points.reduce((sum, p) => sum + p.output_tokens_per_s * s.timeline.window_s, 0);
    expect(total).toBeCloseTo(40, 6);
    expect(s.ttft_cdf.at(-1)).toEqual({ value: 400, p: 1 });
  });

  it("converts to model time when the engines ran faster than real time", async () => {
    const run = await loadRun(fixtures[0] as string);
    const s = summarizeRun({ ...run, meta: { ...run.meta, model_time_scale: 4 } });
    expect(s.time_basis).toBe("model");
    expect(s.ttft_ms.mean).toBe(1000);
    expect(s.throughput.requests_per_s).toBeCloseTo(4 / (2.08 * 4), 9);
    expect(summarizeRun({ ...run, meta: { ...run.meta, model_time_scale: 4 } }, { modelTimeScale: 1 }).ttft_ms.mean).toBe(250);
  });
});

describe("report files", () => {
  it("writes summary.json, summary.md with the numbers, SVG charts with every series, and PNGs", async () => {
    const out = join(dir.path, "report");
    const { runs, files } = await writeReport({ inputs: fixtures, outDir: out, title: "Fixture report" });
    expect(runs.map((r) => r.label)).toEqual(["random @ 2", "prefix-cache @ 2", "random @ 4", "prefix-cache @ 4"]);
    expect(files.map((f) => f.slice(out.length + 1)).sort()).toEqual(
      ["summary.json", "summary.md", ...["ttft-vs-qps", "ttft-cdf", "tenant-service"].flatMap((c) => [`charts/${c}.svg`, `charts/${c}.png`])].sort(),
    );
    const md = readFileSync(join(out, "summary.md"), "utf8");
    expect(md).toContain("# Fixture report");
    expect(md).toContain("| random @ 2 | 250 | 250 | 370 | 397 | 4 |");
    expect(md).toContain("| prefix-cache @ 2 | 65.0 | 65.0 | 77.0 | 79.7 | 4 |");
    expect(md).toContain("| random @ 2 | random | shared-prefix | 2 | 5 | 4 | 1 | 20% | 0 | 2.08 | 1.92 | 19.2 | 25% |");
    expect(md).toContain("| globex | 3 | 1 | 350 | 350 | 399 |");
    expect(md).toContain("Errors by kind: random @ 2: http 503 ×1");
    expect(md).toContain("![charts/ttft-vs-qps.svg](charts/ttft-vs-qps.svg)");
    const json = JSON.parse(readFileSync(join(out, "summary.json"), "utf8")) as { schema: string; runs: Array<{ ttft_ms: { mean: number } }> };
    expect(json.schema).toBe("switchyard.bench.summary.v1");
    expect(json.runs.map((r) => r.ttft_ms.mean)).toEqual([250, 65, 350, 75]);
    const qpsSvg = readFileSync(join(out, "charts", "ttft-vs-qps.svg"), "utf8");
    expect(qpsSvg.startsWith("<svg")).toBe(true);
    for (const text of ["random", "prefix-cache", "mean", "p99", "TTFT (ms)", "QPS (requests/s)"]) expect(qpsSvg).toContain(`>${text}<`);
    // One line per system × statistic.
    expect(qpsSvg.match(/role-mark.*?line/g)?.length ?? 0).toBeGreaterThan(0);
    const cdfSvg = readFileSync(join(out, "charts", "ttft-cdf.svg"), "utf8");
    for (const label of ["random @ 2", "prefix-cache @ 2", "random @ 4", "prefix-cache @ 4"]) expect(cdfSvg).toContain(`>${label}<`);
    const serviceSvg = readFileSync(join(out, "charts", "tenant-service.svg"), "utf8");
    for (const tenant of ["acme", "globex"]) expect(serviceSvg).toContain(`>${tenant}<`);
    for (const c of ["ttft-vs-qps", "ttft-cdf", "tenant-service"]) {
      const png = readFileSync(join(out, "charts", `${c}.png`));
      expect(png.subarray(0, 8).equals(PNG_SIGNATURE)).toBe(true);
      expect(png.length).toBeGreaterThan(5_000);
    }
  });

  it("renders a single run without a QPS chart when no QPS is known", async () => {
    const run = await loadRun(fixtures[1] as string);
    const s = summarizeRun({ ...run, meta: { ...run.meta, qps: null } });
    expect(s.qps).not.toBeNull(); // falls back to the measured send rate
    const md = renderSummaryMarkdown([s]);
    expect(md).toContain("## Per tenant");
    expect(md).not.toContain("### ");
  });
});

describe("compare", () => {
  it("renders the seed's table: QPS rows × systems columns, mean and P99 TTFT in seconds", async () => {
    const out = join(dir.path, "cmp");
    await writeReport({ inputs: fixtures.slice(0, 2), outDir: join(out, "a"), noCharts: true });
    await writeReport({ inputs: fixtures.slice(2), outDir: join(out, "b"), noCharts: true });
    const runs = loadSummaries([join(out, "a", "summary.json"), join(out, "b", "summary.json")]);
    const md = renderCompare(runs);
    const lines = md.split("\n");
    expect(lines[0]).toBe("| Workload | QPS | random mean TTFT (s) | random P99 TTFT (s) | prefix-cache mean TTFT (s) | prefix-cache P99 TTFT (s) |");
    expect(lines[2]).toBe("| shared-prefix | 2 | 0.25 | 0.40 | 0.065 | 0.080 |");
    expect(lines[3]).toBe("| shared-prefix | 4 | 0.35 | 0.50 | 0.075 | 0.090 |");
    const withRatio = renderCompare(runs, { baseline: "random", unit: "ms" });
    expect(withRatio).toContain("| shared-prefix | 2 | 250 | 397 | 65 | 79.7 |");
    expect(withRatio).toContain("| Workload | QPS | prefix-cache / random mean | prefix-cache / random P99 |");
    expect(withRatio).toContain("| shared-prefix | 2 | 0.26× | 0.201× |");
    expect(() => renderCompare(runs, { baseline: "nope" })).toThrow(/the baseline 'nope' is not among the systems \(random, prefix-cache\)/);
  });
});
