/**
 * What the recipes share: scales, the local stack with emulator nodes (`startDevStack` with `sim`
 * engines; one agent process per node, one engine per model in each, so several "systems" can be
 * served side by side as several models), tenants and keys, a warm-up, timed runs written under
 * `raw/`, and the finish: report, comparison table, `machine.json`, `recipe.json`.
 *
 * Every recipe is a {@link Recipe}: `bench/recipes/<name>.ts` runs it from the command line
 * (`npx tsx bench/recipes/routing.ts --scale tiny`), `switchyard bench recipe <name>` too.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release, tmpdir, totalmem, type } from "node:os";
import { join, relative, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { Command, InvalidArgumentError } from "commander";
import type { SimEngineConfigInput } from "../../dataplane/engines/sim/config";
import { type DevStack, ROOT, startDevStack } from "../../scripts/dev-stack";
import { runToFiles } from "../client/run-files";
import { loadRun } from "../client/records";
import { renderCompare } from "../report/compare";
import { writeReportFromSummaries } from "../report/report";
import { type RunSummary, summarizeRun, uniqueLabels } from "../report/summary";
import type { BuiltWorkload } from "../workloads/build";
import { writeWorkload } from "../workloads/build";
import { loadWorkload } from "../workloads/format";

export type Scale = "tiny" | "small" | "full";
export const SCALES: readonly Scale[] = ["tiny", "small", "full"];

export interface RecipeOptions {
  scale: Scale;
  /** Default bench/results/<recipe>. */
  outDir?: string;
  seed?: number;
  quiet?: boolean;
  signal?: AbortSignal;
  /** Progress lines (default: stderr unless quiet). */
  log?: (line: string) => void;
}

export interface RecipeResult {
  outDir: string;
  files: string[];
  runs: RunSummary[];
  elapsedMs: number;
  interrupted: boolean;
}

export interface Recipe {
  name: string;
  title: string;
  /** One paragraph: what it measures and how. */
  description: string;
  run(opts: RecipeOptions): Promise<RecipeResult>;
}

export function defaultOutDir(recipe: string): string {
  return join(ROOT, "bench", "results", recipe);
}

export interface SystemModel {
  /** Model name the system is served as (one engine per node for each). */
  model: string;
  /** Engine settings of this system on top of the recipe's. */
  engine?: Partial<SimEngineConfigInput>;
  /** Admin model settings (PUT /admin/models/<model>), e.g. default_strategy, prefix_sharing. */
  modelConfig?: Record<string, unknown>;
}

export interface BenchStackSpec {
  nodes: number;
  /** Emulator time scale (the engines run this many times faster than real time). */
  timeScale: number;
  /** Engine settings common to every system. */
  engine?: Partial<SimEngineConfigInput>;
  systems: SystemModel[];
  heartbeatIntervalMs?: number;
  log: (line: string) => void;
}

export interface BenchStack {
  stack: DevStack;
  stateDir: string;
  /** Times wrangler dev has reloaded the worker so far (a source file changed: state is reset). */
  edgeReloads(): number;
  stop(): Promise<void>;
}

/** The local stack: wrangler dev + one agent per node, each with one sim engine per system model. */
export async function startBenchStack(spec: BenchStackSpec): Promise<BenchStack> {
  const stateDir = join(tmpdir(), `switchyard-bench-${process.pid}-${Date.now().toString(36)}`);
  const first = spec.systems[0];
  if (!first) throw new Error("a bench stack needs at least one system");
  const t0 = Date.now();
  const stack = await startDevStack({
    // Benchmarks must not see the edge restart because someone edited worker/ meanwhile.
    frozenWorker: true,
    inspector: false,
    stateDir,
    model: first.model,
    heartbeatIntervalMs: spec.heartbeatIntervalMs ?? 1000,
    agents: Array.from({ length: spec.nodes }, (_, i) => ({
      nodeId: `sim-${i}`,
      region: "local",
      engines: spec.systems.map((s) => ({ kind: "sim" as const, model: s.model, timeScale: spec.timeScale, seed: i, ...(spec.engine ?? {}), ...(s.engine ?? {}) })),
    })),
    onStatus: (line) => spec.log(`stack: ${line}`),
  });
  const stop = async () => {
    await stack.stop();
    // SWITCHYARD_BENCH_KEEP_STATE=1 keeps the stack's logs and configs for a look afterwards.
    if (process.env.SWITCHYARD_BENCH_KEEP_STATE === "1") spec.log(`stack state kept in ${stateDir}`);
    else rmSync(stateDir, { recursive: true, force: true });
  };
  try {
    for (const s of spec.systems) {
      const r = await stack.admin("PUT", `/models/${encodeURIComponent(s.model)}`, { prefix_sharing: "shared", ...(s.modelConfig ?? {}) });
      if (r.status !== 200 && r.status !== 201) throw new Error(`PUT /admin/models/${s.model} → ${r.status}: ${JSON.stringify(r.body)}`);
    }
    const ids = Array.from({ length: spec.nodes }, (_, i) => `sim-${i}`);
    await stack.waitForNodes((nodes) => spec.systems.every((s) => ids.every((id) => nodes.find((n) => n.id === id)?.live.some((l) => l.model === s.model && l.status === "healthy"))), 60_000);
  } catch (err) {
    await stop();
    throw err;
  }
  spec.log(`stack: ${spec.nodes} sim node(s) × ${spec.systems.length} model(s) ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const edgeLog = join(stateDir, "logs", "edge.log");
  const edgeReloads = () => {
    try {
      return (readFileSync(edgeLog, "utf8").match(/Reloading local server/g) ?? []).length;
    } catch {
      return 0;
    }
  };
  return { stack, stateDir, edgeReloads, stop };
}

/** Creates a tenant (if new) and issues it a key. */
export async function tenantKey(stack: DevStack, id: string): Promise<string> {
  if ((await stack.admin("GET", `/tenants/${id}`)).status === 404) {
    const r = await stack.admin("POST", "/tenants", { id, name: `bench ${id}` });
    if (r.status !== 201 && r.status !== 200) throw new Error(`POST /admin/tenants → ${r.status}: ${JSON.stringify(r.body)}`);
  }
  const k = await stack.admin<{ key: string }>("POST", `/tenants/${id}/keys`, { name: `bench-${Date.now()}` });
  if (k.status !== 201 && k.status !== 200) throw new Error(`POST /admin/tenants/${id}/keys → ${k.status}: ${JSON.stringify(k.body)}`);
  return k.body.key;
}

/** A few requests per model before measuring: JIT, connections, the edge's caches. Not recorded. */
export async function warmUp(stack: DevStack, models: string[], count = 6): Promise<void> {
  for (const model of models) {
    await Promise.all(
      Array.from({ length: count }, async (_, i) => {
        const res = await fetch(`${stack.edgeUrl}/v1/chat/completions`, {
          method: "POST",
          headers: { authorization: `Bearer ${stack.apiKey}`, "content-type": "application/json" },
          body: JSON.stringify({ model, max_tokens: 4, stream: true, messages: [{ role: "user", content: `warm-up ${i} ${Date.now()}` }] }),
        });
        await res.text();
      }),
    );
  }
}

function gitCommit(): { commit: string | null; dirty: boolean | null } {
  try {
    const commit = execFileSync("git", ["rev-parse", "HEAD"], { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    const status = execFileSync("git", ["status", "--porcelain"], { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    return { commit, dirty: status.trim() !== "" };
  } catch {
    return { commit: null, dirty: null };
  }
}

function packageVersion(name: string): string | null {
  try {
    return (JSON.parse(readFileSync(join(ROOT, "node_modules", name, "package.json"), "utf8")) as { version?: string }).version ?? null;
  } catch {
    return null;
  }
}

/** Where and with what a result was measured. */
export function machineInfo(extra: Record<string, unknown> = {}): Record<string, unknown> {
  const cpuList = cpus();
  return {
    date: new Date().toISOString(),
    cpu_model: cpuList[0]?.model ?? null,
    cpu_cores: cpuList.length,
    memory_bytes: totalmem(),
    memory_gib: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    load_average: loadavg().map((x) => Math.round(x * 100) / 100),
    os: `${type()} ${release()}`,
    node: process.version,
    ...gitCommit(),
    packages: {
      wrangler: packageVersion("wrangler"),
      workerd: packageVersion("workerd"),
      "@cloudflare/workerd-linux-64": packageVersion("@cloudflare/workerd-linux-64"),
      vega: packageVersion("vega"),
      "vega-lite": packageVersion("vega-lite"),
      undici: packageVersion("undici"),
    },
    ...extra,
  };
}

/** One recipe execution: output folders, logging, runs, and the final report. */
export class RecipeSession {
  readonly outDir: string;
  readonly rawDir: string;
  readonly runs: RunSummary[] = [];
  readonly startedAt = Date.now();
  readonly log: (line: string) => void;
  readonly warnings: string[] = [];
  interrupted = false;

  constructor(
    readonly recipe: Recipe,
    readonly opts: RecipeOptions,
  ) {
    this.outDir = resolve(opts.outDir ?? defaultOutDir(recipe.name));
    this.rawDir = join(this.outDir, "raw");
    this.log = opts.log ?? (opts.quiet ? () => {} : (line) => process.stderr.write(`[${recipe.name}] ${line}\n`));
    // Start clean: only what this recipe writes.
    for (const p of ["raw", "charts", "summary.json", "summary.md", "compare.md", "machine.json", "recipe.json"]) rmSync(join(this.outDir, p), { recursive: true, force: true });
    mkdirSync(this.rawDir, { recursive: true });
    const ignore = join(this.outDir, ".gitignore");
    if (!existsSync(ignore)) writeFileSync(ignore, "# Raw per-request results and workloads are large; summaries, charts and machine.json are small.\nraw/\n");
  }

  get aborted(): boolean {
    return this.opts.signal?.aborted ?? false;
  }

  /** Writes a workload under raw/ and loads it back (the file is part of the results). */
  async workload(name: string, built: BuiltWorkload) {
    const path = join(this.rawDir, `${name}.workload.jsonl`);
    writeWorkload(path, built);
    return loadWorkload(path);
  }

  /** Runs one workload against the stack into raw/<name>.jsonl and summarizes it. */
  async run(args: {
    name: string;
    stack: BenchStack;
    workload: Awaited<ReturnType<RecipeSession["workload"]>>;
    model: string;
    system: string;
    workloadLabel?: string;
    qps?: number;
    timeScale: number;
    routingStrategy?: string;
    apiKey?: string;
    tenantKeys?: Record<string, string>;
    tags?: Record<string, string>;
  }): Promise<RunSummary | undefined> {
    if (this.aborted) return undefined;
    const output = join(this.rawDir, `${args.name}.jsonl`);
    const t = Date.now();
    const reloadsBefore = args.stack.edgeReloads();
    const { meta } = await runToFiles(args.workload, {
      output,
      system: args.system,
      ...(args.workloadLabel ? { workloadLabel: args.workloadLabel } : {}),
      ...(args.qps !== undefined ? { qps: args.qps } : {}),
      baseUrl: args.stack.stack.edgeUrl,
      model: args.model,
      apiKey: args.apiKey ?? args.stack.stack.apiKey,
      ...(args.tenantKeys ? { tenantKeys: args.tenantKeys } : {}),
      ...(args.routingStrategy ? { routingStrategy: args.routingStrategy } : {}),
      timeScale: args.timeScale,
      modelTimeScale: args.timeScale,
      ignoreEos: true,
      // A fresh salt per run: runs never hit prefixes cached by an earlier run. Short (≈5 tokens):
      // with the chat template's ≈5 it stays under one 16-token block, so it adds no shared block.
      salt: `[${(Date.now() % 36 ** 5).toString(36)}]`,
      recordText: false,
      stream: true,
      maxConcurrency: 512,
      timeoutMs: 120_000,
      ...(this.opts.signal ? { signal: this.opts.signal } : {}),
      ...(args.tags ? { tags: args.tags } : {}),
    });
    if (meta.interrupted) this.interrupted = true;
    if (args.stack.edgeReloads() > reloadsBefore) {
      // wrangler dev rebuilds the worker when a file under worker/ changes: Durable Objects (pools,
      // routing state) restart and requests in that moment fail. The run is not trustworthy.
      const w = `${args.name}: wrangler dev reloaded the edge worker during the run (a source file changed); run again on a quiet tree`;
      this.warnings.push(w);
      this.log(`WARNING ${w}`);
    }
    const summary = summarizeRun(await loadRun(output));
    this.runs.push(summary);
    this.log(
      `${args.name}: ${meta.ok}/${meta.requests_total} ok, ${meta.errors} errors in ${((Date.now() - t) / 1000).toFixed(1)} s; TTFT mean ${fmt(summary.ttft_ms.mean)} p99 ${fmt(summary.ttft_ms.p99)} ms; cache hit ${summary.cache_hit_rate !== null ? `${Math.round(summary.cache_hit_rate * 100)}%` : "–"}`,
    );
    return summary;
  }

  /** Report, comparison, machine and recipe descriptions. */
  async finish(parameters: Record<string, unknown>, compare: { baseline?: string; metric?: "ttft" | "e2e" } = {}): Promise<RecipeResult> {
    const runs = uniqueLabels(this.runs);
    const files: string[] = [];
    if (runs.length > 0) {
      const report = await writeReportFromSummaries(runs, { outDir: this.outDir, title: `${this.recipe.title} (${this.opts.scale})` });
      files.push(...report.files);
      const comparePath = join(this.outDir, "compare.md");
      const baseline = compare.baseline && runs.some((r) => r.system === compare.baseline) ? compare.baseline : undefined;
      const warn = this.warnings.length > 0 ? `**Warnings**:\n${this.warnings.map((w) => `- ${w}`).join("\n")}\n\n` : "";
      writeFileSync(comparePath, `# ${this.recipe.title}: ${(compare.metric ?? "ttft").toUpperCase()} by QPS and system (${this.opts.scale})\n\n${warn}${renderCompare(runs, { ...(baseline ? { baseline } : {}), metric: compare.metric ?? "ttft" })}`);
      files.push(comparePath);
    }
    const machinePath = join(this.outDir, "machine.json");
    writeFileSync(machinePath, `${JSON.stringify(machineInfo({ recipe: this.recipe.name, scale: this.opts.scale, elapsed_s: Math.round((Date.now() - this.startedAt) / 100) / 10 }), null, 2)}\n`);
    const recipePath = join(this.outDir, "recipe.json");
    writeFileSync(recipePath, `${JSON.stringify({ recipe: this.recipe.name, title: this.recipe.title, description: this.recipe.description, scale: this.opts.scale, interrupted: this.interrupted, warnings: this.warnings, parameters, runs: runs.map((r) => ({ label: r.label, file: relative(this.outDir, r.file) })) }, null, 2)}\n`);
    files.push(machinePath, recipePath);
    const elapsedMs = Date.now() - this.startedAt;
    this.log(`done in ${(elapsedMs / 1000).toFixed(1)} s → ${relative(process.cwd(), this.outDir) || "."}`);
    return { outDir: this.outDir, files, runs, elapsedMs, interrupted: this.interrupted };
  }
}

function fmt(v: number | null): string {
  return v === null ? "–" : v >= 100 ? v.toFixed(0) : v.toFixed(1);
}

/** `npx tsx bench/recipes/<name>.ts [--scale tiny|small|full] [--out dir] [--seed n] [--quiet]`. */
export async function recipeMain(recipe: Recipe, argv = process.argv): Promise<void> {
  const program = new Command()
    .name(`tsx bench/recipes/${recipe.name}.ts`)
    .description(recipe.description)
    .option("--scale <scale>", "tiny (CI, < 1 min) | small (minutes) | full", (v) => {
      if (!(SCALES as readonly string[]).includes(v)) throw new InvalidArgumentError("must be tiny, small or full");
      return v as Scale;
    }, "tiny")
    .option("--out <dir>", "output folder", defaultOutDir(recipe.name))
    .option("--seed <n>", "workload seed", (v) => {
      const n = Number(v);
      if (!Number.isInteger(n)) throw new InvalidArgumentError("must be an integer");
      return n;
    }, 1)
    .option("-q, --quiet", "no progress lines");
  program.parse(argv);
  const o = program.opts<{ scale: Scale; out: string; seed: number; quiet?: boolean }>();
  const ac = new AbortController();
  process.once("SIGINT", () => {
    process.stderr.write(`\n[${recipe.name}] stopping: finishing in-flight requests as cancelled, writing partial results (Ctrl-C again to quit now)\n`);
    ac.abort();
    process.once("SIGINT", () => process.exit(130));
  });
  const result = await recipe.run({ scale: o.scale, outDir: o.out, seed: o.seed, quiet: o.quiet === true, signal: ac.signal });
  process.stdout.write(`${result.files.map((f) => relative(process.cwd(), f)).join("\n")}\n`);
  process.exit(result.interrupted ? 130 : 0);
}

/** True when the module at `moduleUrl` is the script node was started with. */
export function isMain(moduleUrl: string): boolean {
  const script = process.argv[1];
  return script !== undefined && pathToFileURL(resolve(script)).href === moduleUrl;
}
