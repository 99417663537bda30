/**
 * Every benchmark recipe end to end at `tiny` scale through the real local stack: wrangler dev (edge
 * worker, local D1 and Durable Objects), node agents with emulator engines, the benchmark client,
 * and the report — raw results, summaries, charts, comparison, machine.json and recipe.json on disk —
 * plus what each recipe is for: routing strategies, KV hit rates at 1× and 8× KV, sessions kept in
 * order on one node with the history the GPU lost found in the DRAM tier, per-tenant service under
 * VTC and FCFS, and a stop half-way that keeps what was measured — in process, and as a user's
 * Ctrl-C of `switchyard bench recipe` in a terminal.
 */
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type ResultRecord, loadRun } from "../../bench/client/records";
import { descendants, roleOf } from "../../bench/load/processes";
import type { RecipeResult } from "../../bench/recipes/common";
import { fairnessRecipe } from "../../bench/recipes/fairness";
import { kvOffloadRecipe } from "../../bench/recipes/kv-offload";
import { multiTurnRecipe } from "../../bench/recipes/multi-turn";
import { routingRecipe } from "../../bench/recipes/routing";
import type { RunSummary } from "../../bench/report/summary";
import { ROOT } from "../../scripts/dev-stack";
import { tempDir } from "../support/tmp";

const dir = tempDir("bench-recipe");
afterAll(() => dir.cleanup());

const REPORT_FILES = ["summary.json", "summary.md", "compare.md", "machine.json", "recipe.json", ...["ttft-vs-qps", "ttft-cdf", "tenant-service"].flatMap((c) => [`charts/${c}.svg`, `charts/${c}.png`])];

/** What every recipe leaves on disk: the report, charts that are real SVG and PNG, machine and recipe descriptions, each run's raw files. */
function expectRecipeOutput(out: string, result: RecipeResult, recipe: string, rawRuns: string[], workloads: string[]): void {
  expect(result.interrupted).toBe(false);
  for (const f of [...REPORT_FILES, ...rawRuns.flatMap((r) => [`raw/${r}.jsonl`, `raw/${r}.run.json`]), ...workloads.map((w) => `raw/${w}.workload.jsonl`)]) {
    expect(existsSync(join(out, f)), f).toBe(true);
  }
  for (const f of REPORT_FILES) expect(result.files, f).toContain(join(out, f));
  for (const f of REPORT_FILES.filter((f) => f.endsWith(".svg"))) expect(readFileSync(join(out, f), "utf8"), f).toMatch(/^<svg[\s\S]*<\/svg>\s*$/);
  for (const f of REPORT_FILES.filter((f) => f.endsWith(".png"))) expect(readFileSync(join(out, f)).subarray(0, 8).toString("hex"), f).toBe("89504e470d0a1a0a");
  const machine = JSON.parse(readFileSync(join(out, "machine.json"), "utf8")) as Record<string, unknown>;
  expect(machine).toMatchObject({ recipe, scale: "tiny", node: process.version, load_average: expect.any(Array), packages: { wrangler: expect.any(String), workerd: expect.any(String), vega: expect.any(String) } });
  expect(machine.cpu_cores).toBeGreaterThan(0);
  const described = JSON.parse(readFileSync(join(out, "recipe.json"), "utf8")) as { recipe: string; scale: string; interrupted: boolean; warnings: string[]; runs: Array<{ file: string }> };
  expect(described).toMatchObject({ recipe, scale: "tiny", interrupted: false, warnings: [] });
  expect(described.runs.map((r) => r.file).sort()).toEqual(rawRuns.map((r) => `raw/${r}.jsonl`).sort());
  for (const run of result.runs) {
    expect(run.counts.ok, run.label).toBeGreaterThan(0);
    expect(run.counts.error, run.label).toBe(0);
    expect(run.counts.not_sent, run.label).toBe(0);
    expect(run.ttft_ms.n, run.label).toBe(run.counts.ok);
  }
}

/** Records of one run; every one answered through the edge, which named the node, region, strategy and request. */
async function edgeRecords(out: string, run: string, strategy: string, node = /^sim-\d$/): Promise<ResultRecord[]> {
  const { records } = await loadRun(join(out, "raw", `${run}.jsonl`));
  for (const r of records) {
    expect(r.status).toBe("ok");
    expect(r.node).toMatch(node);
    expect(r.region).toBe("local");
    expect(r.routing_strategy).toBe(strategy);
    expect(r.request_id).toBeTruthy();
    expect(r.ttft_ms as number).toBeGreaterThan(0);
  }
  return records;
}

function runOf(result: RecipeResult, system: string, workload?: string): RunSummary {
  const run = result.runs.find((r) => r.system === system && (workload === undefined || r.workload === workload));
  expect(run, `${system} ${workload ?? ""}`).toBeDefined();
  return run as RunSummary;
}

describe("bench recipe routing --scale tiny", () => {
  it("runs strategies against the local stack and writes results, summary, comparison, charts and machine.json", async () => {
    const lines: string[] = [];
    const out = join(dir.path, "routing");
    const result = await routingRecipe.run({ scale: "tiny", outDir: out, log: (l) => lines.push(l) });
    expectRecipeOutput(out, result, "routing", ["random-qps4", "prefix-cache-qps4"], ["shared-prefix-qps4"]);
    expect(result.runs.map((r) => r.label)).toEqual(["random @ 4", "prefix-cache @ 4"]);
    for (const run of result.runs) {
      expect(run.counts.ok).toBeGreaterThan(5);
      expect(run.cache_hit_rate).not.toBeNull();
    }
    // Every record came through the edge: node, region, strategy and request id headers.
    const raw = await loadRun(join(out, "raw", "prefix-cache-qps4.jsonl"));
    expect(raw.meta).toMatchObject({ system: "prefix-cache", routing_strategy: "prefix-cache", qps: 4, interrupted: false });
    for (const r of await edgeRecords(out, "prefix-cache-qps4", "prefix-cache")) {
      expect(r.node).toMatch(/^sim-[01]$/);
      expect(r.prefix_blocks).toMatch(/^\d+\/\d+$/);
      expect(r.completion_tokens).toBe(16);
      // The prompt the engine counted: the dataset's tokens + chat template + salt (within a few %).
      expect(Math.abs((r.prompt_tokens as number) - (r.expected_prompt_tokens as number)) / (r.expected_prompt_tokens as number)).toBeLessThan(0.03);
    }
    expect(readFileSync(join(out, "compare.md"), "utf8")).toContain("| shared-prefix | 4 |");
    expect(lines.some((l) => l.startsWith("prefix-cache-qps4:"))).toBe(true);
  });
});

describe("bench recipe kv-offload --scale tiny", () => {
  it("serves Workload-1 (1× KV) and Workload-2 (8× KV) to each KV system; at 8× the DRAM tier and the remote cache server supply what the GPU evicted", async () => {
    const out = join(dir.path, "kv-offload");
    const result = await kvOffloadRecipe.run({ scale: "tiny", outDir: out, quiet: true });
    const systems = ["no-prefix-cache", "gpu-prefix-cache", "gpu-dram", "gpu-dram-remote"];
    const runs = [1, 2].flatMap((w) => systems.map((sys) => `workload-${w}-${sys}`));
    expectRecipeOutput(out, result, "kv-offload", runs, ["workload-1", "workload-2", "workload-1-prime", "workload-2-prime"]);
    const workloads = ["Workload-1 (1× KV)", "Workload-2 (8× KV)"];
    expect(result.runs.map((r) => [r.workload, r.system])).toEqual(workloads.flatMap((w) => systems.map((sys) => [w, sys])));
    // Labels name the workload, so the two workloads' runs of a system are told apart in the report.
    expect(result.runs.map((r) => r.label)).toEqual(workloads.flatMap((w) => systems.map((sys) => `${sys} · ${w}`)));
    for (const w of [1, 2]) {
      for (const system of systems) {
        const run = `workload-${w}-${system}`;
        // Tier systems run on nodes of their own (an agent's tiers serve all its engines).
        const records = await edgeRecords(out, run, "prefix-cache", system.startsWith("gpu-dram") ? new RegExp(`^bench-kv-${system}-0$`) : /^sim-0$/);
        const cached = records.map((r) => r.cached_tokens ?? 0);
        // Without a prefix cache the engine reports nothing cached; with one, some prompt hits it.
        if (system === "no-prefix-cache") expect(cached.every((c) => c === 0), run).toBe(true);
        else expect(cached.some((c) => c > 0), run).toBe(true);
      }
    }
    // Every caching system was primed with each prefix once, with the run's salt, before it was measured.
    expect(existsSync(join(out, "raw", "workload-2-gpu-dram-remote.prime.jsonl"))).toBe(true);
    expect(existsSync(join(out, "raw", "workload-2-no-prefix-cache.prime.jsonl"))).toBe(false);
    // The workloads' unique prefixes fill 1× and 8× the GPU KV capacity, as recipe.json records;
    // the tiers are 3.13× (L1) and 20× (L2) of it, as in the offloading study.
    const described = JSON.parse(readFileSync(join(out, "recipe.json"), "utf8")) as {
      parameters: {
        kvCapacityTokens: number;
        kv_bytes_per_token: number;
        workloads: Array<{ footprint_factor: number; footprint_tokens: number; cluster_kv_tokens: number }>;
        systems: Array<{ name: string; tiers: { l1Bytes: number; l2Bytes?: number } | null }>;
        tier_tokens: Array<{ workload: string; system: string; l1_tokens: number; l2_tokens: number; computed_tokens: number }>;
      };
    };
    const p = described.parameters;
    expect(p.workloads.map((w) => w.footprint_factor)).toEqual([1, 8]);
    for (const w of p.workloads) expect(w.footprint_tokens / w.cluster_kv_tokens).toBeCloseTo(w.footprint_factor, 0);
    const gpuKvBytes = p.kvCapacityTokens * p.kv_bytes_per_token;
    const tiersOf = (name: string) => p.systems.find((x) => x.name === name)?.tiers;
    expect(tiersOf("gpu-prefix-cache")).toBeNull();
    expect((tiersOf("gpu-dram")?.l1Bytes as number) / gpuKvBytes).toBeCloseTo(3.13, 1);
    expect(tiersOf("gpu-dram")?.l2Bytes).toBeUndefined();
    expect((tiersOf("gpu-dram-remote")?.l2Bytes as number) / gpuKvBytes).toBeCloseTo(20, 0);

    const hit = (system: string, w: number) => runOf(result, system, workloads[w - 1]).cache_hit_rate as number;
    expect(hit("gpu-prefix-cache", 1)).toBeGreaterThan(0.2);
    expect(hit("gpu-prefix-cache", 1)).toBeGreaterThan(2 * hit("gpu-prefix-cache", 2));
    expect(hit("no-prefix-cache", 1)).toBe(0);
    // At 8× the GPU keeps few prefixes; the DRAM tier holds more of them, and the remote tier all.
    expect(hit("gpu-dram", 2)).toBeGreaterThan(hit("gpu-prefix-cache", 2) + 0.1);
    expect(hit("gpu-dram-remote", 2)).toBeGreaterThan(hit("gpu-dram", 2));
    // Where the tokens the GPU lacked came from, per the agents' own counters (tiers.md).
    const tokens = (system: string) => p.tier_tokens.find((t) => t.system === system && t.workload === workloads[1]);
    expect(tokens("gpu-dram")).toMatchObject({ l1_tokens: expect.any(Number), l2_tokens: 0 });
    expect(tokens("gpu-dram")?.l1_tokens).toBeGreaterThan(0);
    expect(tokens("gpu-dram-remote")?.l2_tokens).toBeGreaterThan(0);
    const tierTable = readFileSync(join(out, "tiers.md"), "utf8");
    expect(tierTable).toMatch(/^\| Workload-2 \(8× KV\) \| gpu-dram-remote \| \d+ \| [1-9]\d* \| \d+ \| [\d.]+% \| [\d.]+% \|$/m);
    // compare.md: a row per workload, a column pair per system, ratios to the no-cache baseline.
    const compare = readFileSync(join(out, "compare.md"), "utf8");
    expect(compare).toContain(`| Workload | QPS | ${systems.map((sys) => `${sys} mean TTFT (s) | ${sys} P99 TTFT (s)`).join(" | ")} |`);
    expect(compare).toMatch(/^\| Workload-1 \(1× KV\) \| 8 \|( [\d.]+ \|){8}$/m);
    expect(compare).toMatch(/^\| Workload-2 \(8× KV\) \| 8 \|( [\d.]+× \|){6}$/m);
  });
});

describe("bench recipe multi-turn --scale tiny", () => {
  it("sends each session's turns in order after the previous answer, with the history, on one node; histories the GPU lost come back from the DRAM tier", async () => {
    const out = join(dir.path, "multi-turn");
    const result = await multiTurnRecipe.run({ scale: "tiny", outDir: out, quiet: true });
    const systems = ["no-prefix-cache", "gpu-prefix-cache", "gpu-dram", "gpu-dram-remote"];
    expectRecipeOutput(out, result, "multi-turn", systems.map((sys) => `workload-3-${sys}`), ["workload-3"]);
    expect(result.runs.map((r) => r.system)).toEqual(systems);
    let laterTurns = 0;
    const historyLost = new Map<string, number>();
    for (const system of systems) {
      // Tier systems run on nodes of their own (an agent's tiers serve all its engines).
      const records = await edgeRecords(out, `workload-3-${system}`, "session-affinity", system.startsWith("gpu-dram") ? new RegExp(`^bench-kv-${system}-[01]$`) : /^sim-[01]$/);
      const sessions = new Map<string | null, ResultRecord[]>();
      for (const r of records) sessions.set(r.session_id, [...(sessions.get(r.session_id) ?? []), r]);
      expect(sessions.size, system).toBeGreaterThanOrEqual(3);
      historyLost.set(system, 0);
      for (const [id, unordered] of sessions) {
        const turns = [...unordered].sort((a, b) => (a.turn as number) - (b.turn as number));
        expect(turns.map((t) => t.turn), `${system} session ${id}`).toEqual(turns.map((_, i) => i));
        // The x-session-key header keeps a session on one of the two nodes (without it, turns land at random).
        expect(new Set(turns.map((t) => t.node)).size, `${system} session ${id} nodes`).toBe(1);
        for (let k = 1; k < turns.length; k++) {
          const prev = turns[k - 1] as ResultRecord;
          const turn = turns[k] as ResultRecord;
          laterTurns++;
          // Sent only after the previous answer ended, plus the think time.
          expect(turn.sent_ms).toBeGreaterThanOrEqual(prev.sent_ms + (prev.e2e_ms as number) + (turn.think_time_ms ?? 0) - 1);
          // The prompt is the whole history plus the new user turn (and a few template tokens per message).
          const added = (turn.prompt_tokens as number) - (prev.prompt_tokens as number) - (prev.completion_tokens as number);
          expect(added, `${system} session ${id} turn ${k}`).toBeGreaterThanOrEqual(0.97 * (turn.expected_prompt_tokens as number));
          expect(added, `${system} session ${id} turn ${k}`).toBeLessThan((turn.expected_prompt_tokens as number) + 24);
          const cached = turn.cached_tokens ?? 0;
          if (system === "no-prefix-cache") expect(cached).toBe(0);
          else if (cached < 0.8 * (prev.prompt_tokens as number)) historyLost.set(system, (historyLost.get(system) ?? 0) + 1);
        }
      }
    }
    expect(laterTurns).toBeGreaterThanOrEqual(4 * 10);
    // The sessions' history outgrows the GPU KV (1k tokens a node): the GPU alone loses some of it
    // within a think time; the DRAM tier (3.13× the GPU KV) holds every session of the tiny run, so
    // with the tiers every later turn finds its history, from the GPU or a tier.
    expect(historyLost.get("gpu-prefix-cache")).toBeGreaterThan(0);
    expect(historyLost.get("gpu-dram")).toBe(0);
    expect(historyLost.get("gpu-dram-remote")).toBe(0);
    const hit = (system: string) => runOf(result, system).cache_hit_rate as number;
    expect(hit("gpu-prefix-cache")).toBeGreaterThan(0);
    expect(hit("gpu-dram")).toBeGreaterThan(hit("gpu-prefix-cache") + 0.05);
    expect(hit("gpu-dram-remote")).toBeGreaterThan(hit("gpu-prefix-cache") + 0.05);
    const described = JSON.parse(readFileSync(join(out, "recipe.json"), "utf8")) as {
      parameters: {
        kvCapacityTokens: number;
        nodes: number;
        footprint_tokens: number;
        footprint_factor: number;
        systems: Array<{ name: string; tiers: { l1Bytes: number; l2Bytes?: number } | null; nodes: string[] }>;
        tier_tokens: Array<{ system: string; l1_tokens: number; l2_tokens: number; computed_tokens: number }>;
      };
    };
    const p = described.parameters;
    // More unique tokens than the cluster's GPU KV, and the tier systems as kv-offload defines them.
    expect(p.footprint_factor).toBeGreaterThan(1.5);
    expect(p.systems.map((x) => x.name)).toEqual(systems);
    expect(p.systems.find((x) => x.name === "gpu-dram")?.tiers?.l2Bytes).toBeUndefined();
    expect(p.systems.find((x) => x.name === "gpu-dram-remote")?.tiers?.l2Bytes).toBeGreaterThan(0);
    expect(p.systems.find((x) => x.name === "gpu-dram-remote")?.nodes).toEqual(["bench-kv-gpu-dram-remote-0", "bench-kv-gpu-dram-remote-1"]);
    // The agents' own counters: the tokens the GPU lacked on later turns came from DRAM (first turns
    // have nothing to find), as tiers.md shows.
    for (const system of ["gpu-dram", "gpu-dram-remote"]) {
      const t = p.tier_tokens.find((x) => x.system === system);
      expect(t, system).toBeDefined();
      expect((t?.l1_tokens ?? 0) + (t?.l2_tokens ?? 0), system).toBeGreaterThan(0);
    }
    expect(readFileSync(join(out, "tiers.md"), "utf8")).toMatch(/^\| Workload-3 \(multi-turn\) \| gpu-dram \| [1-9]\d* \| 0 \| \d+ \| [\d.]+% \| [\d.]+% \|$/m);
    const compare = readFileSync(join(out, "compare.md"), "utf8");
    expect(compare).toContain(`| Workload | QPS | ${systems.map((sys) => `${sys} mean TTFT (s) | ${sys} P99 TTFT (s)`).join(" | ")} |`);
  });
});

describe("bench recipe fairness --scale tiny", () => {
  it("overloads the cluster with a heavy tenant; VTC serves the light tenants ahead of it, FCFS does not; light-1 alone as reference", async () => {
    const out = join(dir.path, "fairness");
    const result = await fairnessRecipe.run({ scale: "tiny", outDir: out, quiet: true });
    expectRecipeOutput(out, result, "fairness", ["overload-1.5x-vtc", "overload-1.5x-fcfs", "overload-1.5x-alone"], ["overload-1.5x", "overload-1.5x-alone"]);
    expect(result.runs.map((r) => r.system)).toEqual(["vtc", "fcfs", "alone"]);
    const tenants = ["heavy", "light-1", "light-2", "light-3"];
    for (const system of ["vtc", "fcfs"]) {
      const run = runOf(result, system);
      expect(run.tenants.map((t) => t.tenant).sort(), system).toEqual(tenants);
      const heavy = run.tenants.find((t) => t.tenant === "heavy");
      // The heavy tenant asks for 10× each light one's rate.
      for (const t of run.tenants) if (t.tenant !== "heavy") expect(heavy?.requests, `${system} ${t.tenant}`).toBeGreaterThan(2 * t.requests);
      for (const t of run.tenants) expect(t.errors, `${system} ${t.tenant}`).toBe(0);
      const records = await edgeRecords(out, `overload-1.5x-${system}`, "least-request");
      expect(new Set(records.map((r) => r.tenant))).toEqual(new Set(tenants));
    }
    expect(runOf(result, "alone").tenants.map((t) => t.tenant)).toEqual(["light-1"]);
    // Each tenant sent with its own key, so the edge's VTC told them apart: under overload the light
    // tenants wait far less than the heavy one. FCFS queues everyone alike.
    const vtc = runOf(result, "vtc").tenants;
    const heavyP50 = vtc.find((t) => t.tenant === "heavy")?.ttft_ms.p50 as number;
    for (const t of vtc.filter((x) => x.tenant !== "heavy")) expect(t.ttft_ms.p50 as number, t.tenant).toBeLessThan(heavyP50 / 2);
    const fcfsLight = runOf(result, "fcfs").tenants.find((t) => t.tenant === "light-1")?.ttft_ms.p50 as number;
    expect(fcfsLight).toBeGreaterThan(vtc.find((t) => t.tenant === "light-1")?.ttft_ms.p50 as number);
    const table = readFileSync(join(out, "tenants.md"), "utf8");
    for (const system of ["vtc", "fcfs"]) for (const t of tenants) expect(table).toMatch(new RegExp(`^\\| 1\\.5× \\| ${system} \\| ${t} \\| \\d+ \\| 0 \\|`, "m"));
    expect(table).toMatch(/^\| 1\.5× \| alone \| light-1 \| \d+ \| 0 \|/m);
    expect(table).toMatch(/^\| 1\.5× \| vtc \| light-1 \|.*\| [\d.]+× \|$/m);
    // compare.md: one row per overload with VTC and FCFS side by side; `alone` (another rate) is
    // not a row of its own there but points to tenants.md.
    const compare = readFileSync(join(out, "compare.md"), "utf8");
    expect(compare).toContain("| Workload | QPS | vtc mean TTFT (s) | vtc P99 TTFT (s) | fcfs mean TTFT (s) | fcfs P99 TTFT (s) |");
    expect(compare.match(/^\| overload 1\.5× \|/gm)).toHaveLength(1);
    expect(compare).not.toContain("alone mean");
    expect(compare).toContain("`alone` (light-1 by itself at its own rate");
  });
});

describe("bench recipe stopped half-way (Ctrl-C)", () => {
  it("keeps the interrupted run's finished requests, skips the runs after it, and still writes the report", async () => {
    const out = join(dir.path, "stopped");
    const first = join(out, "raw", "workload-1-no-prefix-cache.jsonl");
    const ac = new AbortController();
    // Ctrl-C in `recipeMain` aborts this signal; here it comes once the first run has a few answers.
    const watch = setInterval(() => {
      if (existsSync(first) && readFileSync(first, "utf8").split("\n").length > 5) ac.abort();
    }, 50);
    try {
      const result = await kvOffloadRecipe.run({ scale: "tiny", outDir: out, quiet: true, signal: ac.signal });
      expect(result.interrupted).toBe(true);
      expect(result.runs.map((r) => r.system)).toEqual(["no-prefix-cache"]);
      const run = result.runs[0] as RunSummary;
      expect(run.interrupted).toBe(true);
      expect(run.counts.ok).toBeGreaterThanOrEqual(5);
      expect(run.counts.error).toBe(0);
      expect(run.counts.cancelled + run.counts.not_sent).toBeGreaterThan(0);
      expect(run.counts.ok + run.counts.cancelled + run.counts.not_sent).toBe(run.counts.total);
    } finally {
      clearInterval(watch);
    }
    for (const f of ["summary.json", "summary.md", "compare.md", "machine.json", "charts/ttft-cdf.png"]) expect(existsSync(join(out, f)), f).toBe(true);
    expect(existsSync(join(out, "raw", "workload-1-gpu-prefix-cache.jsonl"))).toBe(false);
    expect(JSON.parse(readFileSync(join(out, "raw", "workload-1-no-prefix-cache.run.json"), "utf8"))).toMatchObject({ interrupted: true });
    expect(JSON.parse(readFileSync(join(out, "recipe.json"), "utf8"))).toMatchObject({ recipe: "kv-offload", interrupted: true, runs: [{ file: "raw/workload-1-no-prefix-cache.jsonl" }] });
  });
});

describe("switchyard bench recipe stopped with Ctrl-C", () => {
  it("exits 130 soon after, keeps the interrupted run's finished requests, skips the next run, writes the report and leaves no stack process behind", async () => {
    const out = join(dir.path, "cli-stopped");
    const first = join(out, "raw", "random-qps4.jsonl");
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("SWITCHYARD_")) env[k] = v;
    // Its own process group, as a shell's foreground job: Ctrl-C is SIGINT to the whole group.
    const cli = spawn(process.execPath, [join(ROOT, "bin", "switchyard.mjs"), "bench", "recipe", "routing", "--scale", "tiny", "--out", out], { cwd: ROOT, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    cli.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    cli.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const exited = new Promise<number | null>((ok, fail) => {
      cli.on("error", fail);
      cli.on("close", (code) => ok(code));
    });
    const ctrlC = () => {
      try {
        process.kill(-(cli.pid as number), "SIGINT");
      } catch {
        // Already gone.
      }
    };
    let stack: Array<{ pid: number; cmdline: string; role: string }> = [];
    // A pid that now runs something else was reused, not left over.
    const stillRunning = () =>
      stack.filter((p) => {
        try {
          return readFileSync(`/proc/${p.pid}/cmdline`, "utf8").split("\0").join(" ").trim() === p.cmdline;
        } catch {
          return false;
        }
      });
    try {
      // Once the first run has a few answers: the stack is up and a run is in progress.
      const deadline = Date.now() + 45_000;
      while (!(existsSync(first) && readFileSync(first, "utf8").split("\n").length > 4) && Date.now() < deadline && cli.exitCode === null) await new Promise((r) => setTimeout(r, 50));
      expect(existsSync(first), stderr).toBe(true);
      stack = descendants(cli.pid as number).map((p) => ({ pid: p.pid, cmdline: p.cmdline, role: roleOf(p.cmdline) }));
      // The stack that was running: the edge (wrangler and workerd) and both nodes' agents.
      const roles = stack.map((p) => p.role);
      expect(roles).toContain("edge (workerd)");
      expect(roles).toContain("edge (wrangler, node)");
      expect(roles.filter((r) => r === "agents")).toHaveLength(2);
      ctrlC();
      const t = Date.now();
      const code = await exited;
      const stopMs = Date.now() - t;
      expect(code, stderr).toBe(130);
      // Prompt: the stack's processes get 8 s each to stop gracefully, the report a few seconds.
      expect(stopMs).toBeLessThan(25_000);
      // The stack is stopped with the recipe: no edge, agent or engine is left running.
      expect(stillRunning().map((p) => `${p.pid} ${p.role}: ${p.cmdline}`)).toEqual([]);
    } finally {
      // A failed check above must not leave the stack behind for the next tests.
      if (cli.exitCode === null && cli.signalCode === null) {
        stack = [...stack, ...descendants(cli.pid as number).map((p) => ({ pid: p.pid, cmdline: p.cmdline, role: roleOf(p.cmdline) }))];
        process.kill(-(cli.pid as number), "SIGKILL");
      }
      for (const p of stillRunning()) process.kill(p.pid, "SIGKILL");
    }
    expect(stderr).toContain("[routing] stopping: in-flight requests are recorded as cancelled, partial results are written");

    // The interrupted run: what finished is kept, in-flight requests are marked cancelled, and the
    // rest not sent; the run after it was skipped.
    const run = await loadRun(first);
    expect(run.meta).toMatchObject({ system: "random", interrupted: true });
    const ok = run.records.filter((r) => r.status === "ok");
    expect(ok.length).toBeGreaterThanOrEqual(4);
    for (const r of ok) expect(r.ttft_ms as number).toBeGreaterThan(0);
    expect(run.records.every((r) => r.status === "ok" || r.status === "cancelled")).toBe(true);
    expect(run.meta.ok + run.meta.cancelled + run.meta.not_sent).toBe(run.meta.requests_total);
    expect(run.meta.cancelled + run.meta.not_sent).toBeGreaterThan(0);
    expect(existsSync(join(out, "raw", "prefix-cache-qps4.jsonl"))).toBe(false);
    // The report of what was measured, listed on stdout.
    for (const f of ["summary.json", "summary.md", "compare.md", "machine.json", "recipe.json", "charts/ttft-cdf.svg", "charts/ttft-cdf.png"]) {
      expect(existsSync(join(out, f)), f).toBe(true);
      expect(stdout, f).toContain(join(out, f));
    }
    expect(JSON.parse(readFileSync(join(out, "recipe.json"), "utf8"))).toMatchObject({ recipe: "routing", interrupted: true, runs: [{ file: "raw/random-qps4.jsonl" }] });
    expect(readFileSync(join(out, "compare.md"), "utf8")).toContain("| shared-prefix | 4 |");
  });
});
