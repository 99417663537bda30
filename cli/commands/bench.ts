/**
 * `switchyard bench …`: the benchmark toolkit (docs/benchmarks.md) in three decoupled parts plus
 * reports and recipes — `dataset` (prompts), `workload` (when and for whom), `run` (send them, record
 * every request), `report` (tables and charts), `compare` (the QPS × systems table), `recipe` (one
 * command per study on the local stack). Implementations load lazily: admin commands do not pay
 * for vega or undici.
 */
import { type Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { parseDistribution } from "../../bench/lib/distribution";
import { httpUrl, positiveNumber, withExamples } from "../admin-command";
import { CliError } from "../cli-error";

// --- option parsers: commander names the option in their errors ---

function integer(min: number, max = Number.MAX_SAFE_INTEGER): (value: string) => number {
  return (value) => {
    const n = Number(value.trim());
    if (value.trim() === "" || !Number.isInteger(n)) throw new InvalidArgumentError("must be an integer");
    if (n < min) throw new InvalidArgumentError(`must be at least ${min}`);
    if (n > max) throw new InvalidArgumentError(`must be at most ${max}`);
    return n;
  };
}

function nonNegative(value: string): number {
  const n = Number(value.trim());
  if (value.trim() === "" || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError("must be a number ≥ 0");
  return n;
}

/** `500ms`, `30s`, `5m`, `2h`, or plain milliseconds. */
export function duration(value: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/.exec(value.trim());
  if (!m) throw new InvalidArgumentError("must be a duration such as 500ms, 30s, 5m or 2h (plain numbers are milliseconds)");
  const n = Number(m[1]) * ({ ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const)[(m[2] ?? "ms") as "ms"];
  if (n <= 0) throw new InvalidArgumentError("must be longer than 0");
  return n;
}

function distribution(value: string) {
  return parseDistribution(value);
}

/** Checks a distribution option at parse time, so that commander reports a bad one naming the option. */
function distributionOption(value: string): string {
  try {
    parseDistribution(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
  return value;
}

function collectRaw(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** Bench errors (bad input files, bad values) print as one line and exit 2. */
async function guarded(fn: () => Promise<void>): Promise<void> {
  const { BenchInputError, BenchUsageError } = await import("../../bench/lib/errors");
  try {
    await fn();
  } catch (err) {
    if (err instanceof BenchInputError || err instanceof BenchUsageError) throw new CliError(err.message);
    throw err;
  }
}

function say(text: string): void {
  process.stderr.write(`${text}\n`);
}

function finishBench(cmd: Command): void {
  cmd.showHelpAfterError(`(run '${path(cmd)} --help' for usage and examples)`);
  cmd.exitOverride((err: CommanderError) => {
    if (err.exitCode === 0 || err.code === "commander.executeSubCommandAsync") throw err;
    throw new CommanderError(2, err.code, err.message);
  });
  for (const sub of cmd.commands) finishBench(sub);
}

function path(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) names.unshift(c.name());
  return names.join(" ");
}

export function registerBenchCommand(program: Command): void {
  const bench = withExamples(program.command("bench").description("benchmark toolkit: datasets, workloads, runs, reports, comparisons, recipes (docs/benchmarks.md)"), [
    "switchyard bench dataset shared-prefix --groups 8 --prompts-per-group 16 --prefix-length 2048 --suffix-length lognormal:128,64 -o data.jsonl",
    "switchyard bench workload --dataset data.jsonl --pattern poisson --rate 4 --duration 60s -o workload.jsonl",
    "switchyard bench run --workload workload.jsonl --base-url http://127.0.0.1:8787 --model llama-3-8b -o results.jsonl",
    "switchyard bench report results.jsonl --out-dir report/",
    "switchyard bench recipe routing --scale tiny",
  ]);
  registerDataset(bench);
  registerWorkload(bench);
  registerRun(bench);
  registerReport(bench);
  registerCompare(bench);
  registerRecipe(bench);
  finishBench(bench);
}

// ------------------------------------------------------------------ dataset

function registerDataset(bench: Command): void {
  const dataset = withExamples(bench.command("dataset").description("make a dataset (JSONL of prompts or sessions; AIBrix's format plus lengths)"), [
    "switchyard bench dataset shared-prefix --groups 8 --prompts-per-group 16 --prefix-length normal:2048,256 --suffix-length 128 -o sp.jsonl",
    "switchyard bench dataset multi-turn --sessions 200 --turns normal:3.55,2.89 --prompt-length lognormal:200,150 -o mt.jsonl",
  ]);

  withExamples(
    dataset
      .command("shared-prefix")
      .description("synthetic shared-prefix prompts: groups of prompts sharing a prefix, each with its own suffix")
      .requiredOption("--groups <n>", "number of shared prefixes", integer(1, 1_000_000))
      .requiredOption("--prompts-per-group <n>", "prompts per prefix", integer(1, 1_000_000))
      .requiredOption("--prefix-length <dist>", "prefix tokens per group (N, uniform:A,B, normal:MEAN,SD, lognormal:MEAN,SD; 0 for none)", distributionOption)
      .requiredOption("--suffix-length <dist>", "distinct suffix tokens per prompt", distributionOption)
      .option("--output-length <dist>", "answer length per prompt (the request's max_tokens)", distributionOption)
      .option("--randomize-order", "shuffle prompts across groups (default: grouped)")
      .option("--seed <n>", "random seed", integer(0, 2 ** 32 - 1), 0)
      .requiredOption("-o, --output <file>", "dataset file to write (JSONL)"),
    ["switchyard bench dataset shared-prefix --groups 4 --prompts-per-group 32 --prefix-length normal:3800,17 --suffix-length normal:200,5 --output-length 128 --randomize-order -o toolbench-like.jsonl"],
  ).action((o: { groups: number; promptsPerGroup: number; prefixLength: string; suffixLength: string; outputLength?: string; randomizeOrder?: boolean; seed: number; output: string }) =>
    guarded(async () => {
      const { generateSharedPrefix } = await import("../../bench/datasets/shared-prefix");
      const { writeJsonl } = await import("../../bench/lib/jsonl");
      const records = generateSharedPrefix({
        groups: o.groups,
        promptsPerGroup: o.promptsPerGroup,
        prefixLength: distribution(o.prefixLength),
        suffixLength: distribution(o.suffixLength),
        ...(o.outputLength ? { outputLength: distribution(o.outputLength) } : {}),
        randomizeOrder: o.randomizeOrder === true,
        seed: o.seed,
      });
      writeJsonl(o.output, records);
      say(`wrote ${records.length} prompts in ${o.groups} groups to ${o.output}`);
    }),
  );

  withExamples(
    dataset
      .command("multi-turn")
      .description("synthetic multi-turn sessions: turns, prompt and answer lengths, think times")
      .requiredOption("--sessions <n>", "number of sessions", integer(1, 10_000_000))
      .option("--turns <dist>", "turns per session", distributionOption, "normal:3.55,2.89")
      .option("--prompt-length <dist>", "new user tokens per turn", distributionOption, "lognormal:200,150")
      .option("--output-length <dist>", "answer tokens per turn", distributionOption, "128")
      .option("--think-time <dist>", "user think time before each later turn (ms of workload time)", distributionOption, "exponential:5000")
      .option("--shared-prefix-length <n>", "a system prompt shared by all sessions (tokens)", integer(0, 1_000_000), 0)
      .option("--seed <n>", "random seed", integer(0, 2 ** 32 - 1), 0)
      .requiredOption("-o, --output <file>", "dataset file to write (JSONL)"),
    ["switchyard bench dataset multi-turn --sessions 1000 --turns normal:3.55,2.89 --prompt-length lognormal:80,472 --think-time exponential:10000 -o workload3.jsonl"],
  ).action((o: { sessions: number; turns: string; promptLength: string; outputLength: string; thinkTime: string; sharedPrefixLength: number; seed: number; output: string }) =>
    guarded(async () => {
      const { generateMultiTurn } = await import("../../bench/datasets/multi-turn");
      const { writeJsonl } = await import("../../bench/lib/jsonl");
      const records = generateMultiTurn({
        sessions: o.sessions,
        turns: distribution(o.turns),
        promptLength: distribution(o.promptLength),
        outputLength: distribution(o.outputLength),
        thinkTimeMs: distribution(o.thinkTime),
        sharedPrefixLength: o.sharedPrefixLength,
        seed: o.seed,
      });
      writeJsonl(o.output, records);
      say(`wrote ${records.length} sessions (${records.reduce((s, r) => s + r.prompts.length, 0)} turns) to ${o.output}`);
    }),
  );

  withExamples(
    dataset
      .command("sharegpt")
      .description("convert a local ShareGPT dump (JSON array or JSONL of {conversations:[{from,value}]}) to sessions")
      .requiredOption("-i, --input <file>", "ShareGPT file, e.g. ShareGPT_V3_unfiltered_cleaned_split.json")
      .option("--max-sessions <n>", "stop after this many conversations", integer(1))
      .option("--min-turns <n>", "skip conversations with fewer exchanges", integer(1), 1)
      .option("--max-turns <n>", "keep at most this many exchanges per conversation", integer(1))
      .option("--max-prompt-length <n>", "cut a conversation at a prompt longer than this (tokens)", integer(1))
      .option("--single-turn", "one prompt record per conversation (its first exchange) instead of sessions")
      .requiredOption("-o, --output <file>", "dataset file to write (JSONL)"),
    ["switchyard bench dataset sharegpt -i ShareGPT_V3_unfiltered_cleaned_split.json --max-sessions 2000 --max-prompt-length 4096 -o sharegpt.jsonl"],
  ).action((o: { input: string; maxSessions?: number; minTurns: number; maxTurns?: number; maxPromptLength?: number; singleTurn?: boolean; output: string }) =>
    guarded(async () => {
      const { convertShareGpt } = await import("../../bench/datasets/sharegpt");
      const { JsonlWriter } = await import("../../bench/lib/jsonl");
      const stats = { read: 0, written: 0, skipped: 0 };
      const out = new JsonlWriter(o.output);
      try {
        for await (const r of convertShareGpt(
          o.input,
          {
            ...(o.maxSessions !== undefined ? { maxSessions: o.maxSessions } : {}),
            minTurns: o.minTurns,
            ...(o.maxTurns !== undefined ? { maxTurns: o.maxTurns } : {}),
            ...(o.maxPromptLength !== undefined ? { maxPromptLength: o.maxPromptLength } : {}),
            singleTurn: o.singleTurn === true,
          },
          stats,
        ))
          out.write(r);
      } finally {
        out.close();
      }
      say(`read ${stats.read} conversations, wrote ${stats.written} (${stats.skipped} skipped: too few turns) to ${o.output}`);
    }),
  );

  withExamples(
    dataset
      .command("client-log")
      .description("convert a client log (bench run output, AIBrix client output, or a request log with timestamps) to a dataset with timestamp_ms, for replay")
      .requiredOption("-i, --input <file>", "JSONL log")
      .option("--status <list>", "keep only these statuses when records have one (e.g. ok)", (v, prev: string[] | undefined) => [...(prev ?? []), ...v.split(",").map((s) => s.trim()).filter(Boolean)])
      .requiredOption("-o, --output <file>", "dataset file to write (JSONL)"),
    ["switchyard bench dataset client-log -i results.jsonl -o replay.jsonl", "switchyard bench workload --pattern replay --dataset replay.jsonl -o replay-workload.jsonl"],
  ).action((o: { input: string; status?: string[]; output: string }) =>
    guarded(async () => {
      const { convertClientLog } = await import("../../bench/datasets/client-log");
      const { writeJsonl } = await import("../../bench/lib/jsonl");
      const records = await convertClientLog(o.input, o.status ? { statuses: o.status } : {});
      writeJsonl(o.output, records);
      say(`wrote ${records.length} records (prompts and sessions, with timestamp_ms) to ${o.output}`);
    }),
  );

  withExamples(
    dataset.command("inspect <file>").description("check a dataset (Switchyard's or AIBrix's): records, sessions, token lengths by the emulator's tokenizer"),
    ["switchyard bench dataset inspect sp.jsonl"],
  ).action((file: string) =>
    guarded(async () => {
      const { loadDataset } = await import("../../bench/datasets/format");
      const { countTokens } = await import("../../bench/datasets/text");
      const { summarizeValues } = await import("../../bench/lib/stats");
      const entries = await loadDataset(file);
      const lengths: number[] = [];
      let declaredOff = 0;
      let turns = 0;
      for (const e of entries) {
        const prompts = e.kind === "prompt" ? (e.prompt !== undefined ? [e.prompt] : []) : e.prompts;
        const declared = e.kind === "prompt" ? [e.promptLength] : (e.promptLengths ?? []);
        prompts.forEach((p, i) => {
          const n = countTokens(p);
          lengths.push(n);
          const d = declared[i];
          if (typeof d === "number" && d > 0 && Math.abs(n - d) / d > 0.02) declaredOff++;
        });
        turns += prompts.length;
      }
      const s = summarizeValues(lengths);
      const sessions = entries.filter((e) => e.kind === "session").length;
      process.stdout.write(
        `${file}: ${entries.length} records (${entries.length - sessions} prompts, ${sessions} sessions, ${turns} turns)\n` +
          `prompt tokens: mean ${s.mean?.toFixed(1)} p50 ${s.p50?.toFixed(0)} p90 ${s.p90?.toFixed(0)} p99 ${s.p99?.toFixed(0)} min ${s.min} max ${s.max}\n` +
          (declaredOff > 0 ? `${declaredOff} prompt(s) differ from their declared prompt_length by more than 2% (another tokenizer?)\n` : ""),
      );
    }),
  );
}

// ------------------------------------------------------------------ workload

interface WorkloadOpts {
  dataset?: string;
  pattern: string;
  rate?: number;
  offRate: number;
  on?: number;
  off?: number;
  from?: number;
  to?: number;
  amplitude: number;
  period?: number;
  phase: number;
  duration?: number;
  trace?: string;
  start: number;
  limit?: number;
  maxPromptLength?: number;
  tenants?: string;
  tenant?: string[];
  outputLength?: string;
  thinkTime?: string;
  order: "shuffle" | "sequential" | "random";
  maxRequests?: number;
  seed: number;
  output: string;
}

function registerWorkload(bench: Command): void {
  withExamples(
    bench
      .command("workload")
      .description("shape a workload: arrival times (and tenants) for a dataset's prompts, written in AIBrix's workload format + tenant/session fields")
      .addOption(new Option("--pattern <kind>", "arrival pattern").choices(["constant", "poisson", "bursty", "ramp", "diurnal", "azure", "replay"]).makeOptionMandatory())
      .option("--dataset <file>", "dataset JSONL (required except for azure, where it is optional)")
      .option("--rate <qps>", "requests/s: constant, poisson, diurnal (mean), bursty (during bursts)", positiveNumber(1e6))
      .option("--off-rate <qps>", "bursty: requests/s between bursts", nonNegative, 0)
      .option("--on <duration>", "bursty: burst length", duration)
      .option("--off <duration>", "bursty: pause length", duration)
      .option("--from <qps>", "ramp: starting rate", nonNegative)
      .option("--to <qps>", "ramp: final rate", nonNegative)
      .option("--amplitude <fraction>", "diurnal: swing around the mean (0..1)", nonNegative, 0.5)
      .option("--period <duration>", "diurnal: length of one cycle (default: the duration)", duration)
      .option("--phase <radians>", "diurnal: phase offset", (v) => {
        const n = Number(v);
        if (v.trim() === "" || !Number.isFinite(n)) throw new InvalidArgumentError("must be a number");
        return n;
      }, 0)
      .option("--duration <duration>", "length of the workload (e.g. 60s, 10m); azure/replay: a window of the trace", duration)
      .option("--trace <file>", "azure: AzureLLMInferenceTrace CSV (TIMESTAMP, ContextTokens, GeneratedTokens)")
      .option("--start <duration>", "azure: skip this much of the trace first", (v) => (v === "0" ? 0 : duration(v)), 0)
      .option("--limit <n>", "azure: at most this many rows", integer(1))
      .option("--max-prompt-length <n>", "azure: cap prompt lengths (the engine's context)", integer(1))
      .option("--tenants <file>", 'tenant table (JSON: {"tenants":[{"id","rate"|"weight","api_key_env","dataset"}]})')
      .option("--tenant <spec>", "a tenant inline, repeatable: id:rate=10,weight=1,key-env=ACME_KEY,dataset=file", collectRaw)
      .option("--output-length <dist>", "override every request's output length", distributionOption)
      .option("--think-time <dist>", "think time for session turns without one (ms)", distributionOption)
      .addOption(new Option("--order <order>", "how prompts are drawn from the dataset").choices(["shuffle", "sequential", "random"]).default("shuffle"))
      .option("--max-requests <n>", "stop after this many requests", integer(1))
      .option("--seed <n>", "random seed", integer(0, 2 ** 32 - 1), 0)
      .requiredOption("-o, --output <file>", "workload file to write (JSONL)"),
    [
      "switchyard bench workload --dataset sp.jsonl --pattern poisson --rate 4 --duration 2m -o w.jsonl",
      "switchyard bench workload --dataset sp.jsonl --pattern bursty --rate 20 --on 5s --off 15s --off-rate 1 --duration 5m -o bursty.jsonl",
      "switchyard bench workload --dataset sp.jsonl --pattern diurnal --rate 6 --amplitude 0.5 --period 10m --duration 30m -o diurnal.jsonl",
      "switchyard bench workload --dataset sp.jsonl --pattern poisson --rate 2 --duration 5m --tenant heavy:rate=20,key-env=HEAVY_KEY --tenant light:key-env=LIGHT_KEY -o mix.jsonl",
      "switchyard bench workload --pattern azure --trace AzureLLMInferenceTrace_conv.csv --duration 10m -o azure.jsonl",
    ],
  ).action((o: WorkloadOpts) =>
    guarded(async () => {
      const { loadDataset } = await import("../../bench/datasets/format");
      const { buildWorkload, buildReplay, buildAzure, writeWorkload } = await import("../../bench/workloads/build");
      const { readAzureTrace } = await import("../../bench/workloads/azure");
      const { parseTenants } = await import("../../bench/workloads/tenants");
      const tenants = parseTenants(o.tenants, o.tenant ?? []);
      const datasets = new Map<string, Awaited<ReturnType<typeof loadDataset>>>();
      if (o.dataset) datasets.set("", await loadDataset(o.dataset));
      for (const t of tenants) if (t.dataset) datasets.set(t.id, await loadDataset(t.dataset));
      const common = {
        seed: o.seed,
        ...(tenants.length > 0 ? { tenants } : {}),
        datasets,
        ...(o.outputLength ? { outputLength: distribution(o.outputLength) } : {}),
        ...(o.thinkTime ? { thinkTimeMs: distribution(o.thinkTime) } : {}),
        order: o.order,
        ...(o.maxRequests !== undefined ? { maxRequests: o.maxRequests } : {}),
        meta: { dataset: o.dataset ?? null },
      };
      const need = (v: unknown, flag: string) => {
        if (v === undefined) throw new CliError(`--pattern ${o.pattern} needs ${flag}`);
      };
      let built;
      if (o.pattern === "azure") {
        need(o.trace, "--trace <file>");
        const rows = await readAzureTrace(o.trace as string, { startMs: o.start, ...(o.duration !== undefined ? { durationMs: o.duration } : {}), ...(o.limit !== undefined ? { limit: o.limit } : {}) });
        built = buildAzure({ rows, seed: o.seed, ...(o.dataset ? { dataset: datasets.get("") ?? [] } : {}), ...(o.maxPromptLength ? { maxPromptTokens: o.maxPromptLength } : {}), ...(tenants.length > 0 ? { tenants } : {}), meta: { trace: o.trace } });
      } else if (o.pattern === "replay") {
        need(o.dataset, "--dataset <file> (made by 'bench dataset client-log')");
        built = buildReplay({ ...common, ...(o.duration !== undefined ? { durationMs: o.duration } : {}) });
      } else {
        need(o.dataset ?? (tenants.every((t) => t.dataset) && tenants.length > 0 ? "" : undefined), "--dataset <file>");
        need(o.duration, "--duration <duration>");
        let pattern: import("../../bench/workloads/arrivals").Pattern;
        switch (o.pattern) {
          case "constant":
          case "poisson":
            need(o.rate, "--rate <qps>");
            pattern = { kind: o.pattern, rate: o.rate as number };
            break;
          case "bursty":
            need(o.rate, "--rate <qps>");
            need(o.on, "--on <duration>");
            need(o.off, "--off <duration>");
            pattern = { kind: "bursty", rate: o.rate as number, offRate: o.offRate, onMs: o.on as number, offMs: o.off as number };
            break;
          case "ramp":
            need(o.from, "--from <qps>");
            need(o.to, "--to <qps>");
            pattern = { kind: "ramp", from: o.from as number, to: o.to as number };
            break;
          default:
            need(o.rate, "--rate <qps>");
            if (o.amplitude > 1) throw new CliError("--amplitude must be between 0 and 1");
            pattern = { kind: "diurnal", rate: o.rate as number, amplitude: o.amplitude, periodMs: o.period ?? (o.duration as number), phase: o.phase };
        }
        built = buildWorkload({ ...common, pattern, durationMs: o.duration as number });
      }
      writeWorkload(o.output, built);
      say(`wrote ${built.requestCount} requests in ${built.entries.length} entries to ${o.output} (${String(built.header.meta?.pattern)}, ${built.header.meta?.qps ?? "?"} req/s)`);
    }),
  );
}

// ------------------------------------------------------------------ run

interface RunOpts {
  workload: string;
  baseUrl: string;
  model: string;
  apiKey?: string;
  tenantKey?: string[];
  routingStrategy?: string;
  header?: string[];
  stream: boolean;
  endpoint: "chat" | "completions";
  timeScale: number;
  modelTimeScale: number;
  maxConcurrency: number;
  maxSessions?: number;
  timeout: number;
  maxTokens?: number;
  ignoreEos?: boolean;
  salt?: string;
  sessionHeader: boolean;
  system?: string;
  workloadLabel?: string;
  qps?: number;
  limit?: number;
  recordText: boolean;
  quiet?: boolean;
  output: string;
}

function keyValue(flag: string) {
  return (value: string, previous: string[] | undefined): string[] => {
    if (!/^[^=]+=.+$/.test(value)) throw new InvalidArgumentError(`must be name=value (${flag})`);
    return [...(previous ?? []), value];
  };
}

function registerRun(bench: Command): void {
  withExamples(
    bench
      .command("run")
      .description("send a workload to an OpenAI-compatible endpoint (open loop) and record every request as JSONL")
      .requiredOption("-w, --workload <file>", "workload file (Switchyard or AIBrix format)")
      .addOption(new Option("--base-url <url>", "endpoint base URL (the edge, or any OpenAI-compatible server)").env("SWITCHYARD_BASE_URL").default("http://127.0.0.1:8787").argParser(httpUrl))
      .requiredOption("-m, --model <name>", "model to request")
      .addOption(new Option("--api-key <key>", "API key for requests without a tenant key of their own").env("SWITCHYARD_API_KEY"))
      .option("--tenant-key <tenant=key>", "API key of one tenant (repeatable; overrides the workload's tenant table)", keyValue("--tenant-key"))
      .option("--routing-strategy <spec>", "send the routing-strategy header (e.g. prefix-cache, least-request:2,random)")
      .option("-H, --header <name=value>", "extra request header (repeatable)", keyValue("--header"))
      .option("--no-stream", "non-streaming requests (no TTFT/TPOT/ITL)")
      .addOption(new Option("--endpoint <kind>", "chat (/v1/chat/completions) or completions (/v1/completions)").choices(["chat", "completions"]).default("chat"))
      .option("--time-scale <k>", "send k× faster than the workload's timestamps (think times too)", positiveNumber(1e6), 1)
      .option("--model-time-scale <k>", "the engines run k× faster than real time (emulator timeScale): reports convert to model time", positiveNumber(1e6), 1)
      .option("--max-concurrency <n>", "requests in flight at most (later ones wait; the wait is recorded)", integer(1, 100_000), 256)
      .option("--max-sessions <n>", "sessions in progress at most", integer(1))
      .option("--timeout <duration>", "per-request limit", duration, 600_000)
      .option("--max-tokens <n>", "max_tokens for requests without output_length", integer(1))
      .option("--ignore-eos", "send ignore_eos: true (vLLM/emulator answer exactly max_tokens)")
      .option("--salt <text>", "prepend to each conversation's first message (isolates runs' prefix caches)")
      .option("--no-session-header", "do not send x-session-key on session turns")
      .option("--system <label>", "what is measured (a column in comparisons); default: the routing strategy or 'default'")
      .option("--workload-label <label>", "workload name for comparisons (e.g. Workload-1)")
      .option("--qps <n>", "nominal QPS for reports (default: the workload header's)", positiveNumber(1e9))
      .option("--limit <n>", "send only the first n requests", integer(1))
      .option("--no-record-text", "leave prompts and answers out of the records")
      .option("-q, --quiet", "no progress bar")
      .requiredOption("-o, --output <file>", "results file to write (JSONL; the run description goes to <file>.run.json)"),
    [
      "switchyard bench run -w w.jsonl --base-url http://127.0.0.1:8787 -m llama-3-8b --api-key $KEY --routing-strategy prefix-cache -o prefix.jsonl",
      "switchyard bench run -w mix.jsonl -m llama-3-8b --tenant-key heavy=$HEAVY_KEY --tenant-key light=$LIGHT_KEY --time-scale 4 -o mix-results.jsonl",
    ],
    "Ctrl-C stops sending, records requests in flight as cancelled and keeps everything finished; a second Ctrl-C quits at once.",
  ).action((o: RunOpts) =>
    guarded(async () => {
      const { loadWorkload } = await import("../../bench/workloads/format");
      const { runToFiles } = await import("../../bench/client/run-files");
      const { loadRun } = await import("../../bench/client/records");
      const { summarizeRun } = await import("../../bench/report/summary");
      const workload = await loadWorkload(o.workload);
      const tenantKeys: Record<string, string> = {};
      for (const t of workload.header?.tenants ?? []) {
        if (t.api_key) tenantKeys[t.id] = t.api_key;
        else if (t.api_key_env) {
          const v = process.env[t.api_key_env];
          if (v) tenantKeys[t.id] = v;
        }
      }
      for (const kv of o.tenantKey ?? []) {
        const i = kv.indexOf("=");
        tenantKeys[kv.slice(0, i)] = kv.slice(i + 1);
      }
      const missingEnv = (workload.header?.tenants ?? []).filter((t) => t.api_key_env && tenantKeys[t.id] === undefined && o.apiKey === undefined);
      if (missingEnv.length > 0) throw new CliError(`tenant key variable(s) not set: ${missingEnv.map((t) => `${t.api_key_env} (tenant ${t.id})`).join(", ")}`);
      const headers: Record<string, string> = {};
      for (const kv of o.header ?? []) {
        const i = kv.indexOf("=");
        headers[kv.slice(0, i).toLowerCase()] = kv.slice(i + 1);
      }
      const ac = new AbortController();
      const onSigint = () => {
        say("\nstopping: in-flight requests are recorded as cancelled, finished ones are kept (Ctrl-C again to quit now)");
        ac.abort();
        process.once("SIGINT", () => process.exit(130));
      };
      process.once("SIGINT", onSigint);
      const { meta, resultsPath, runPath } = await runToFiles(workload, {
        output: o.output,
        system: o.system ?? o.routingStrategy ?? "default",
        ...(o.workloadLabel ? { workloadLabel: o.workloadLabel } : {}),
        ...(o.qps !== undefined ? { qps: o.qps } : {}),
        baseUrl: o.baseUrl,
        model: o.model,
        ...(o.apiKey ? { apiKey: o.apiKey } : {}),
        tenantKeys,
        ...(o.routingStrategy ? { routingStrategy: o.routingStrategy } : {}),
        headers,
        stream: o.stream,
        endpoint: o.endpoint,
        timeScale: o.timeScale,
        modelTimeScale: o.modelTimeScale,
        maxConcurrency: o.maxConcurrency,
        ...(o.maxSessions !== undefined ? { maxSessions: o.maxSessions } : {}),
        timeoutMs: o.timeout,
        ...(o.maxTokens !== undefined ? { defaultMaxTokens: o.maxTokens } : {}),
        ignoreEos: o.ignoreEos === true,
        ...(o.salt ? { salt: o.salt } : {}),
        sessionHeader: o.sessionHeader,
        recordText: o.recordText,
        ...(o.limit !== undefined ? { limit: o.limit } : {}),
        signal: ac.signal,
        progress: o.quiet !== true,
      });
      process.removeListener("SIGINT", onSigint);
      const s = summarizeRun(await loadRun(resultsPath).catch(() => ({ file: resultsPath, meta, records: [] })));
      const ms = (v: number | null) => (v === null ? "–" : v.toFixed(1));
      say(
        `${meta.ok} ok, ${meta.errors} errors, ${meta.cancelled} cancelled, ${meta.not_sent} not sent in ${((meta.duration_ms ?? 0) / 1000).toFixed(1)} s` +
          ` | TTFT p50 ${ms(s.ttft_ms.p50)} p99 ${ms(s.ttft_ms.p99)} ms | E2E p50 ${ms(s.e2e_ms.p50)} ms\nresults: ${resultsPath}\nrun: ${runPath}`,
      );
      if (meta.interrupted) process.exitCode = 130;
    }),
  );
}

// ------------------------------------------------------------------ report / compare

function registerReport(bench: Command): void {
  withExamples(
    bench
      .command("report <results...>")
      .description("summarize runs: markdown + JSON tables (mean/p50/p90/p99 of TTFT, TPOT, ITL, E2E; throughput; errors; per tenant; cache hits) and SVG/PNG charts")
      .requiredOption("-d, --out-dir <dir>", "folder for summary.json, summary.md and charts/")
      .option("--title <text>", "report title")
      .option("--model-time-scale <k>", "override the runs' model time scale (1: wall-clock figures)", positiveNumber(1e6))
      .option("--no-charts", "tables only"),
    ["switchyard bench report results/*.jsonl --out-dir report/", "switchyard bench report prefix.jsonl random.jsonl -d report --model-time-scale 1"],
  ).action((inputs: string[], o: { outDir: string; title?: string; modelTimeScale?: number; charts: boolean }) =>
    guarded(async () => {
      const { writeReport } = await import("../../bench/report/report");
      const r = await writeReport({ inputs, outDir: o.outDir, ...(o.title ? { title: o.title } : {}), ...(o.modelTimeScale !== undefined ? { modelTimeScale: o.modelTimeScale } : {}), noCharts: !o.charts });
      process.stdout.write(`${r.files.join("\n")}\n`);
    }),
  );
}

function registerCompare(bench: Command): void {
  withExamples(
    bench
      .command("compare <summaries...>")
      .description("the QPS × systems table (mean and P99 of a latency, like AIBrix's v0.3 KV table) from run summaries")
      .addOption(new Option("--metric <m>", "latency to compare").choices(["ttft", "tpot", "itl", "e2e"]).default("ttft"))
      .addOption(new Option("--unit <u>", "seconds or milliseconds").choices(["s", "ms"]).default("s"))
      .option("--baseline <system>", "add a table of ratios to this system")
      .option("-o, --output <file>", "write the markdown here (default: stdout)"),
    ["switchyard bench compare report-a/summary.json report-b/summary.json", "switchyard bench compare report/summary.json --baseline random --unit ms"],
  ).action((files: string[], o: { metric: "ttft" | "tpot" | "itl" | "e2e"; unit: "s" | "ms"; baseline?: string; output?: string }) =>
    guarded(async () => {
      const { loadSummaries, renderCompare } = await import("../../bench/report/compare");
      const runs = loadSummaries(files);
      let md: string;
      try {
        md = renderCompare(runs, { metric: o.metric, unit: o.unit, ...(o.baseline ? { baseline: o.baseline } : {}) });
      } catch (err) {
        throw new CliError((err as Error).message);
      }
      if (o.output) {
        const { writeFileSync } = await import("node:fs");
        writeFileSync(o.output, md);
        say(`wrote ${o.output}`);
      } else process.stdout.write(md);
    }),
  );
}

// ------------------------------------------------------------------ recipes

function registerRecipe(bench: Command): void {
  withExamples(
    bench
      .command("recipe [name]")
      .description("run a study on the local stack (wrangler dev + agents + emulator nodes); without a name, list them")
      .addOption(new Option("--scale <scale>", "tiny (CI, < 1 min), small (minutes), full").choices(["tiny", "small", "full"]).default("tiny"))
      .option("--out <dir>", "output folder (default bench/results/<name>)")
      .option("--seed <n>", "workload seed", integer(0, 2 ** 32 - 1), 1)
      .option("-q, --quiet", "no progress lines"),
    ["switchyard bench recipe", "switchyard bench recipe routing --scale tiny", "switchyard bench recipe kv-offload --scale small"],
  ).action((name: string | undefined, o: { scale: "tiny" | "small" | "full"; out?: string; seed: number; quiet?: boolean }) =>
    guarded(async () => {
      const { RECIPES } = await import("../../bench/recipes/index");
      if (!name) {
        for (const r of RECIPES) process.stdout.write(`${r.name.padEnd(12)} ${r.title}\n${" ".repeat(13)}${r.description}\n`);
        return;
      }
      const recipe = RECIPES.find((r) => r.name === name);
      if (!recipe) throw new CliError(`unknown recipe '${name}': one of ${RECIPES.map((r) => r.name).join(", ")}`);
      const ac = new AbortController();
      process.once("SIGINT", () => {
        say(`\n[${name}] stopping: in-flight requests are recorded as cancelled, partial results are written (Ctrl-C again to quit now)`);
        ac.abort();
        process.once("SIGINT", () => process.exit(130));
      });
      const result = await recipe.run({ scale: o.scale, ...(o.out ? { outDir: o.out } : {}), seed: o.seed, quiet: o.quiet === true, signal: ac.signal });
      process.stdout.write(`${result.files.join("\n")}\n`);
      if (result.interrupted) process.exitCode = 130;
    }),
  );
}
