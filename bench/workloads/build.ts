/**
 * Workload assembly: arrival times (per tenant) + prompts from datasets → AIBrix-style entries.
 *
 * Each tenant draws its own arrivals (the pattern scaled to its `rate`, or to its `weight`'s share
 * of the pattern's rate) and its own prompts (its dataset, or the shared one), from its own random
 * stream: adding a tenant leaves the others' requests unchanged. A session entry starts a session at
 * its arrival; its later turns are written with time = start + accumulated think time (the client
 * sends each turn only after the previous answer plus the think time, whatever the timestamp says).
 *
 * @example
 * ```ts
 * const built = buildWorkload({ pattern: { kind: "poisson", rate: 4 }, durationMs: 60_000, seed: 1, datasets: new Map([["", entries]]) });
 * writeWorkload("w.jsonl", built);
 * ```
 */
import type { DatasetEntry } from "../datasets/format";
import { promptText } from "../datasets/text";
import { type Distribution, describeDistribution, sample, sampleInt } from "../lib/distribution";
import { BenchUsageError } from "../lib/errors";
import { JsonlWriter } from "../lib/jsonl";
import { Rng } from "../lib/rng";
import { arrivals, describePattern, meanRate, type Pattern } from "./arrivals";
import type { AzureRow } from "./azure";
import { type TenantSpec, toEntries, WORKLOAD_SCHEMA, type WorkloadEntryJson, type WorkloadHeader, type WorkloadRequestJson } from "./format";

/** How prompts are drawn from a dataset. */
export type SampleOrder = "shuffle" | "sequential" | "random";

export interface BuildOptions {
  pattern: Pattern;
  durationMs: number;
  seed: number;
  /** Tenants (none: one anonymous tenant, requests carry no tenant field). */
  tenants?: TenantSpec[];
  /** Dataset entries by tenant id; "" is the default for tenants without their own. */
  datasets: Map<string, DatasetEntry[]>;
  /** Replaces every request's output length. */
  outputLength?: Distribution;
  /** Think time for session turns whose dataset gives none (workload ms). */
  thinkTimeMs?: Distribution;
  /** `shuffle` (default): every entry once per cycle, in a shuffled order; `sequential`; `random` (with replacement). */
  order?: SampleOrder;
  /** Stop after this many requests. */
  maxRequests?: number;
  /** Extra provenance for the header. */
  meta?: Record<string, unknown>;
}

export interface BuiltWorkload {
  header: WorkloadHeader;
  entries: WorkloadEntryJson[];
  requestCount: number;
}

class DatasetSampler {
  private order: number[] = [];
  private pos = 0;
  constructor(
    private readonly entries: DatasetEntry[],
    private readonly rng: Rng,
    private readonly mode: SampleOrder,
  ) {}

  next(): DatasetEntry {
    const n = this.entries.length;
    if (this.mode === "random") return this.entries[Math.floor(this.rng.next() * n)] as DatasetEntry;
    if (this.pos >= this.order.length) {
      this.order = Array.from({ length: n }, (_, i) => i);
      if (this.mode === "shuffle") this.rng.shuffle(this.order);
      this.pos = 0;
    }
    return this.entries[this.order[this.pos++] as number] as DatasetEntry;
  }
}

interface Pending {
  t: number;
  tenant: string | undefined;
  seq: number;
}

/** Expands one dataset entry arriving at `t` into timed requests. */
function expand(entry: DatasetEntry, t: number, tenant: string | undefined, sessionId: number, opts: BuildOptions, rng: Rng): Array<{ timestampMs: number; request: WorkloadRequestJson }> {
  const out: Array<{ timestampMs: number; request: WorkloadRequestJson }> = [];
  const tenantField = tenant !== undefined ? { tenant } : {};
  const output = (given: number | null | undefined): number | null => (opts.outputLength ? sampleInt(opts.outputLength, rng, 1) : (given ?? null));
  if (entry.kind === "prompt") {
    out.push({
      timestampMs: Math.round(t),
      request: {
        ...(entry.prompt !== undefined ? { prompt: entry.prompt } : {}),
        ...(entry.messages ? { messages: entry.messages } : {}),
        prompt_length: entry.promptLength ?? null,
        output_length: output(entry.outputLength),
        ...tenantField,
      },
    });
    return out;
  }
  let at = t;
  entry.prompts.forEach((prompt, k) => {
    const think = k === 0 ? 0 : (entry.thinkTimeMs?.[k] ?? (opts.thinkTimeMs ? Math.round(sample(opts.thinkTimeMs, rng, 0)) : 0));
    at += think;
    out.push({
      timestampMs: Math.round(at),
      request: {
        prompt,
        prompt_length: entry.promptLengths?.[k] ?? null,
        output_length: output(entry.outputLengths?.[k]),
        session_id: sessionId,
        turn: k,
        ...(k > 0 ? { think_time_ms: think } : {}),
        ...tenantField,
      },
    });
  });
  return out;
}

function datasetFor(opts: BuildOptions, tenant: string | undefined): DatasetEntry[] {
  const d = (tenant !== undefined ? opts.datasets.get(tenant) : undefined) ?? opts.datasets.get("");
  if (!d || d.length === 0) throw new BenchUsageError(`no dataset for tenant '${tenant ?? "(default)"}': give --dataset or a dataset in the tenant table`);
  return d;
}

/** Each tenant's rate scale: its own rate / the pattern's mean, or its weight's share. */
export function tenantScales(tenants: TenantSpec[], pattern: Pattern, durationMs: number): number[] {
  const mean = meanRate(pattern, durationMs);
  const shared = tenants.filter((t) => t.rate === undefined);
  const totalWeight = shared.reduce((s, t) => s + (t.weight ?? 1), 0);
  return tenants.map((t) => (t.rate !== undefined ? (mean > 0 ? t.rate / mean : 0) : (t.weight ?? 1) / totalWeight));
}

function header(opts: BuildOptions, requestCount: number, extra: Record<string, unknown>): WorkloadHeader {
  return {
    schema: WORKLOAD_SCHEMA,
    ...(opts.tenants && opts.tenants.length > 0 ? { tenants: opts.tenants } : {}),
    meta: {
      generated_at: new Date().toISOString(),
      seed: opts.seed,
      duration_ms: opts.durationMs,
      requests: requestCount,
      ...(opts.outputLength ? { output_length: describeDistribution(opts.outputLength) } : {}),
      ...extra,
      ...(opts.meta ?? {}),
    },
  };
}

/** A workload from an arrival pattern and datasets. */
export function buildWorkload(opts: BuildOptions): BuiltWorkload {
  const root = new Rng(opts.seed);
  const tenants: Array<TenantSpec | undefined> = opts.tenants && opts.tenants.length > 0 ? opts.tenants : [undefined];
  const scales = opts.tenants && opts.tenants.length > 0 ? tenantScales(opts.tenants, opts.pattern, opts.durationMs) : [1];
  const pending: Pending[] = [];
  let seq = 0;
  tenants.forEach((tenant, i) => {
    const times = arrivals(opts.pattern, opts.durationMs, root.fork(`arrivals:${tenant?.id ?? ""}`), scales[i] as number);
    for (const t of times) pending.push({ t, tenant: tenant?.id, seq: seq++ });
  });
  pending.sort((a, b) => a.t - b.t || a.seq - b.seq);
  const samplers = new Map<string, DatasetSampler>();
  const rngs = new Map<string, Rng>();
  const timed: Array<{ timestampMs: number; request: WorkloadRequestJson }> = [];
  let sessionId = 0;
  let requests = 0;
  for (const p of pending) {
    if (opts.maxRequests !== undefined && requests >= opts.maxRequests) break;
    const key = p.tenant ?? "";
    let sampler = samplers.get(key);
    if (!sampler) {
      sampler = new DatasetSampler(datasetFor(opts, p.tenant), root.fork(`prompts:${key}`), opts.order ?? "shuffle");
      samplers.set(key, sampler);
      rngs.set(key, root.fork(`lengths:${key}`));
    }
    const reqs = expand(sampler.next(), p.t, p.tenant, sessionId, opts, rngs.get(key) as Rng);
    if (reqs.length > 1 || reqs[0]?.request.session_id !== undefined) sessionId++;
    for (const r of reqs) timed.push(r);
    requests += reqs.length;
  }
  const entries = toEntries(timed);
  return {
    header: header(opts, requests, {
      pattern: describePattern(opts.pattern),
      // Sessions: QPS is requests per second (turns), the arrival rate is of sessions.
      qps: sessionId > 0 ? round3((requests * 1000) / opts.durationMs) : round3(meanRate(opts.pattern, opts.durationMs) * scales.reduce((s, x) => s + x, 0)),
      arrival_rate: round3(meanRate(opts.pattern, opts.durationMs) * scales.reduce((s, x) => s + x, 0)),
      ...(sessionId > 0 ? { sessions: sessionId } : {}),
    }),
    entries,
    requestCount: requests,
  };
}

/** Replays dataset entries at their own `timestamp_ms` (client-log datasets). */
export function buildReplay(opts: Omit<BuildOptions, "pattern" | "durationMs"> & { durationMs?: number }): BuiltWorkload {
  const root = new Rng(opts.seed);
  const entries = datasetFor({ ...opts, pattern: { kind: "constant", rate: 1 }, durationMs: 0 }, undefined);
  const missing = entries.find((e) => e.timestampMs === undefined);
  if (missing) throw new BenchUsageError(`dataset line ${missing.line} has no timestamp_ms: replay needs a dataset made by 'bench dataset client-log' (or records with timestamp_ms)`);
  const sorted = [...entries].sort((a, b) => (a.timestampMs as number) - (b.timestampMs as number));
  const timed: Array<{ timestampMs: number; request: WorkloadRequestJson }> = [];
  const rng = root.fork("lengths");
  let sessionId = 0;
  let requests = 0;
  const tenants = new Set<string>();
  for (const e of sorted) {
    const t = e.timestampMs as number;
    if (opts.durationMs !== undefined && t >= opts.durationMs) break;
    if (opts.maxRequests !== undefined && requests >= opts.maxRequests) break;
    if (e.tenant) tenants.add(e.tenant);
    const reqs = expand(e, t, e.tenant, e.kind === "session" ? sessionId++ : sessionId, { ...opts, pattern: { kind: "constant", rate: 1 }, durationMs: 0 }, rng);
    for (const r of reqs) timed.push(r);
    requests += reqs.length;
  }
  const last = timed.reduce((m, r) => Math.max(m, r.timestampMs), 0);
  const tenantTable = opts.tenants && opts.tenants.length > 0 ? opts.tenants : [...tenants].sort().map((id) => ({ id }));
  return {
    header: header({ ...opts, tenants: tenantTable, pattern: { kind: "constant", rate: 0 }, durationMs: last }, requests, { pattern: "replay", qps: last > 0 ? round3((requests * 1000) / last) : null }),
    entries: toEntries(timed),
    requestCount: requests,
  };
}

export interface AzureBuildOptions {
  rows: AzureRow[];
  seed: number;
  /** Prompts of matching length are taken from here when given; otherwise text is generated. */
  dataset?: DatasetEntry[];
  /** Cap prompt lengths (the engine's context). */
  maxPromptTokens?: number;
  tenants?: TenantSpec[];
  meta?: Record<string, unknown>;
}

/**
 * Azure trace replay: each row becomes a request at its time with its context and generated token
 * counts. Prompts come from the dataset entry whose prompt_length is closest (AIBrix's approach), or
 * are generated to exactly the row's ContextTokens. Tenants, when given, take rows by weight.
 */
export function buildAzure(opts: AzureBuildOptions): BuiltWorkload {
  const root = new Rng(opts.seed);
  const textRng = root.fork("text");
  const tenantRng = root.fork("tenants");
  const byLength = (opts.dataset ?? [])
    .filter((e): e is Extract<DatasetEntry, { kind: "prompt" }> => e.kind === "prompt" && e.promptLength !== undefined && e.prompt !== undefined)
    .sort((a, b) => (a.promptLength as number) - (b.promptLength as number));
  if (opts.dataset && byLength.length === 0) throw new BenchUsageError("the dataset for --pattern azure needs prompt records with prompt_length");
  const pickClosest = (tokens: number) => {
    let lo = 0;
    let hi = byLength.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((byLength[mid]?.promptLength as number) < tokens) lo = mid + 1;
      else hi = mid;
    }
    // Among equally close entries around lo, pick one at random.
    const best = byLength[lo] as (typeof byLength)[number];
    const prev = byLength[lo - 1];
    const chosen = prev && Math.abs((prev.promptLength as number) - tokens) < Math.abs((best.promptLength as number) - tokens) ? prev : best;
    return chosen;
  };
  const tenants = opts.tenants ?? [];
  const weights = tenants.map((t) => t.weight ?? t.rate ?? 1);
  const timed = opts.rows.map((row) => {
    const tokens = Math.min(row.contextTokens, opts.maxPromptTokens ?? Infinity);
    const tenant = tenants.length > 0 ? (tenants[tenantRng.weighted(weights)] as TenantSpec).id : undefined;
    const e = byLength.length > 0 ? pickClosest(tokens) : undefined;
    const request: WorkloadRequestJson = {
      prompt: e ? (e.prompt as string) : promptText(tokens, textRng),
      prompt_length: e ? (e.promptLength as number) : tokens,
      output_length: row.generatedTokens,
      ...(tenant !== undefined ? { tenant } : {}),
    };
    return { timestampMs: Math.round(row.timestampMs), request };
  });
  const last = timed.reduce((m, r) => Math.max(m, r.timestampMs), 0);
  return {
    header: header({ seed: opts.seed, durationMs: last, datasets: new Map(), pattern: { kind: "constant", rate: 0 }, ...(tenants.length > 0 ? { tenants } : {}), ...(opts.meta ? { meta: opts.meta } : {}) }, timed.length, {
      pattern: "azure",
      qps: last > 0 ? round3((timed.length * 1000) / last) : null,
    }),
    entries: toEntries(timed),
    requestCount: timed.length,
  };
}

function round3(v: number): number {
  return Math.round(v * 1000) / 1000;
}

/** Writes a built workload: the header line, then one entry per line. */
export function writeWorkload(path: string, built: BuiltWorkload): void {
  const w = new JsonlWriter(path);
  try {
    w.write(built.header);
    for (const e of built.entries) w.write(e);
  } finally {
    w.close();
  }
}
