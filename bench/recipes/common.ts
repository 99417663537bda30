/**
 * What the recipes share: scales, the local stack with emulator nodes (`startDevStack` with `sim`
 * engines; one agent process per node, one engine per model in each, so several "systems" can be
 * served side by side as several models), tenants and keys, a warm-up, timed runs written under
 * `raw/`, and the finish: report, comparison table, `machine.json`, `recipe.json`.
 *
 * Every recipe is a {@link Recipe}: `bench/recipes/<name>.ts` runs it from the command line
 * (`npx tsx bench/recipes/routing.ts --scale tiny`), `switchyard bench recipe <name>` too.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
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
  /**
   * The agent's KV tiers for this system. An agent's tiers serve all its engines, so the system
   * gets nodes of its own (`<model>-<i>`, as many as `nodes`): an L1 of `l1Bytes` each and, with
   * `l2Bytes`, one cache server of that capacity (`switchyard cache-server` on loopback, LRU, its
   * default) that the system's nodes share.
   */
  kvTiers?: { l1Bytes: number; l2Bytes?: number };
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
  /** Node ids serving each system's model. */
  nodesOf(model: string): string[];
  /** Cache servers started for systems with an L2, by model: `host:port`. */
  cacheServers: Map<string, string>;
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
  const engine = (s: SystemModel, i: number) => ({ kind: "sim" as const, model: s.model, timeScale: spec.timeScale, seed: i, ...(spec.engine ?? {}), ...(s.engine ?? {}) });
  const shared = spec.systems.filter((s) => !s.kvTiers);
  const tiered = spec.systems.filter((s) => s.kvTiers);
  const nodeIds = new Map<string, string[]>();
  const ids = (prefix: string) => Array.from({ length: spec.nodes }, (_, i) => `${prefix}-${i}`);
  for (const s of shared) nodeIds.set(s.model, ids("sim"));
  for (const s of tiered) nodeIds.set(s.model, ids(s.model));
  const cacheServers = new Map<string, string>();
  const servers: ChildProcess[] = [];
  const stopServers = async () => {
    await Promise.all(servers.map((c) => stopChild(c)));
  };
  mkdirSync(join(stateDir, "logs"), { recursive: true });
  let stack: DevStack;
  try {
    for (const s of tiered) {
      if (!s.kvTiers?.l2Bytes) continue;
      const server = await startCacheServer(s.kvTiers.l2Bytes, join(stateDir, "logs", `cache-server-${s.model}.log`));
      servers.push(server.process);
      cacheServers.set(s.model, server.endpoint);
      spec.log(`stack: cache server for ${s.model} on ${server.endpoint} (${(s.kvTiers.l2Bytes / 2 ** 20).toFixed(1)} MiB)`);
    }
    stack = await startDevStack({
      // Benchmarks must not see the edge restart because someone edited worker/ meanwhile.
      frozenWorker: true,
      inspector: false,
      stateDir,
      model: first.model,
      heartbeatIntervalMs: spec.heartbeatIntervalMs ?? 1000,
      agents: [
        ...(shared.length > 0 ? ids("sim").map((nodeId, i) => ({ nodeId, region: "local", engines: shared.map((s) => engine(s, i)) })) : []),
        ...tiered.flatMap((s) =>
          ids(s.model).map((nodeId, i) => {
            const l2 = cacheServers.get(s.model);
            return { nodeId, region: "local", engines: [engine(s, i)], kvCache: { l1: { bytes: s.kvTiers?.l1Bytes ?? 0, policy: "s3fifo" as const }, ...(l2 ? { l2: { servers: [l2] } } : {}) } };
          }),
        ),
      ],
      onStatus: (line) => spec.log(`stack: ${line}`),
    });
  } catch (err) {
    await stopServers();
    throw err;
  }
  const stop = async () => {
    await stack.stop();
    await stopServers();
    // SWITCHYARD_BENCH_KEEP_STATE=1 keeps the stack's logs and configs for a look afterwards.
    if (process.env.SWITCHYARD_BENCH_KEEP_STATE === "1") spec.log(`stack state kept in ${stateDir}`);
    else rmSync(stateDir, { recursive: true, force: true });
  };
  try {
    for (const s of spec.systems) {
      const r = await stack.admin("PUT", `/models/${encodeURIComponent(s.model)}`, { prefix_sharing: "shared", ...(s.modelConfig ?? {}) });
      if (r.status !== 200 && r.status !== 201) throw new Error(`PUT /admin/models/${s.model} → ${r.status}: ${JSON.stringify(r.body)}`);
    }
    await stack.waitForNodes((nodes) => spec.systems.every((s) => (nodeIds.get(s.model) ?? []).every((id) => nodes.find((n) => n.id === id)?.live.some((l) => l.model === s.model && l.status === "healthy"))), 60_000);
  } catch (err) {
    await stop();
    throw err;
  }
  spec.log(`stack: ${stack.agents.size} sim node(s), ${spec.systems.length} model(s) ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const edgeLog = join(stateDir, "logs", "edge.log");
  const edgeReloads = () => {
    try {
      return (readFileSync(edgeLog, "utf8").match(/Reloading local server/g) ?? []).length;
    } catch {
      return 0;
    }
  };
  return { stack, stateDir, nodesOf: (model) => nodeIds.get(model) ?? [], cacheServers, edgeReloads, stop };
}

/** `switchyard cache-server` on a free loopback port; resolves once it logs that it listens. */
async function startCacheServer(capacityBytes: number, logPath: string): Promise<{ process: ChildProcess; endpoint: string }> {
  const child = spawn(process.execPath, [join(ROOT, "bin", "switchyard.mjs"), "cache-server", "--host", "127.0.0.1", "--port", "0", "--capacity", String(capacityBytes), "--metrics-port", "off"], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  const log = createWriteStream(logPath, { flags: "a" });
  child.stderr?.pipe(log);
  let out = "";
  try {
    const endpoint = await new Promise<string>((resolveEndpoint, reject) => {
      const timer = setTimeout(() => reject(new Error(`the cache server did not start in 30 s; see ${logPath}`)), 30_000);
      child.once("exit", (code) => reject(new Error(`the cache server exited (${code}); see ${logPath}`)));
      child.stdout?.on("data", (chunk: Buffer) => {
        log.write(chunk);
        out += chunk.toString("utf8");
        for (const line of out.split("\n")) {
          if (!line.includes('"event":"listening"')) continue;
          clearTimeout(timer);
          resolveEndpoint((JSON.parse(line) as { endpoint: string }).endpoint);
        }
      });
    });
    return { process: child, endpoint };
  } catch (err) {
    await stopChild(child);
    throw err;
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 8_000);
  await exited;
  clearTimeout(timer);
}

/**
 * Prompt tokens the engines' own caches lacked, by where they then came from (`l1`, `l2`,
 * `computed`), summed over `nodes`: the agents' `switchyard_kv_tier_lookup_tokens_total{model}`.
 * Take it before and after a run; the difference is the run's.
 */
export async function tierTokens(bench: BenchStack, model: string): Promise<{ l1: number; l2: number; computed: number }> {
  const total = { l1: 0, l2: 0, computed: 0 };
  for (const id of bench.nodesOf(model)) {
    const agent = bench.stack.agents.get(id);
    if (!agent) continue;
    const text = await (await fetch(`${agent.url}/metrics`)).text();
    for (const m of text.matchAll(/^switchyard_kv_tier_lookup_tokens_total\{([^}]*)\} (\S+)$/gm)) {
      const labels = Object.fromEntries([...(m[1] as string).matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
      const source = labels.source as keyof typeof total;
      if (labels.model === model && source in total) total[source] += Number(m[2]);
    }
  }
  return total;
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
    /** The run's name in the report (default `<system> @ <qps>`). */
    label?: string;
    /**
     * Sent first with the same salt, into raw/<name>.prime.jsonl, and not measured: fills the
     * caches the way a long-running service's are (the offloading study's warm-up phase).
     */
    prime?: Awaited<ReturnType<RecipeSession["workload"]>>;
    /** Called right before the measured part (after priming): e.g. to read counters the run is the difference of. */
    beforeMeasure?: () => Promise<void>;
  }): Promise<RunSummary | undefined> {
    if (this.aborted) return undefined;
    const output = join(this.rawDir, `${args.name}.jsonl`);
    const t = Date.now();
    const reloadsBefore = args.stack.edgeReloads();
    // A fresh salt per run: runs never hit prefixes cached by an earlier run. Short (≈5 tokens):
    // with the chat template's ≈5 it stays under one 16-token block, so it adds no shared block.
    const salt = `[${(Date.now() % 36 ** 5).toString(36)}]`;
    if (args.prime) {
      const primed = await runToFiles(args.prime, { ...this.clientOptions(args, salt), output: join(this.rawDir, `${args.name}.prime.jsonl`), system: `${args.system} (prime)` });
      this.log(`${args.name}: primed with ${primed.meta.ok}/${primed.meta.requests_total} requests (${primed.meta.errors} errors) in ${((Date.now() - t) / 1000).toFixed(1)} s`);
      if (primed.meta.interrupted) {
        this.interrupted = true;
        return undefined;
      }
    }
    await args.beforeMeasure?.();
    const { meta } = await runToFiles(args.workload, {
      ...this.clientOptions(args, salt),
      output,
      system: args.system,
      ...(args.workloadLabel ? { workloadLabel: args.workloadLabel } : {}),
      ...(args.qps !== undefined ? { qps: args.qps } : {}),
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
    const summary = summarizeRun(await loadRun(output), args.label ? { label: args.label } : {});
    this.runs.push(summary);
    this.log(
      `${args.name}: ${meta.ok}/${meta.requests_total} ok, ${meta.errors} errors in ${((Date.now() - t) / 1000).toFixed(1)} s; TTFT mean ${fmt(summary.ttft_ms.mean)} p99 ${fmt(summary.ttft_ms.p99)} ms; cache hit ${summary.cache_hit_rate !== null ? `${Math.round(summary.cache_hit_rate * 100)}%` : "–"}`,
    );
    return summary;
  }

  /** What a run and its priming send with: where to, as whom, and how. */
  private clientOptions(args: Parameters<RecipeSession["run"]>[0], salt: string) {
    return {
      baseUrl: args.stack.stack.edgeUrl,
      model: args.model,
      apiKey: args.apiKey ?? args.stack.stack.apiKey,
      ...(args.tenantKeys ? { tenantKeys: args.tenantKeys } : {}),
      ...(args.routingStrategy ? { routingStrategy: args.routingStrategy } : {}),
      timeScale: args.timeScale,
      modelTimeScale: args.timeScale,
      ignoreEos: true,
      salt,
      recordText: false,
      stream: true,
      maxConcurrency: 512,
      timeoutMs: 120_000,
      ...(this.opts.signal ? { signal: this.opts.signal } : {}),
    };
  }

  /** Report, comparison, machine and recipe descriptions. */
  async finish(parameters: Record<string, unknown>, compare: { baseline?: string; metric?: "ttft" | "e2e"; exclude?: { systems: string[]; note: string } } = {}): Promise<RecipeResult> {
    const runs = uniqueLabels(this.runs);
    const files: string[] = [];
    if (runs.length > 0) {
      const report = await writeReportFromSummaries(runs, { outDir: this.outDir, title: `${this.recipe.title} (${this.opts.scale})` });
      files.push(...report.files);
      const comparePath = join(this.outDir, "compare.md");
      const baseline = compare.baseline && runs.some((r) => r.system === compare.baseline) ? compare.baseline : undefined;
      const warn = this.warnings.length > 0 ? `**Warnings**:\n${this.warnings.map((w) => `- ${w}`).join("\n")}\n\n` : "";
      // Runs of another kind than the table's rows (a reference at another rate) are left out, with a note where they are.
      const compared = runs.filter((r) => !compare.exclude?.systems.includes(r.system));
      const note = compare.exclude && compared.length < runs.length ? `\n${compare.exclude.note}\n` : "";
      writeFileSync(comparePath, `# ${this.recipe.title}: ${(compare.metric ?? "ttft").toUpperCase()} by QPS and system (${this.opts.scale})\n\n${warn}${renderCompare(compared, { ...(baseline ? { baseline } : {}), metric: compare.metric ?? "ttft" })}${note}`);
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
