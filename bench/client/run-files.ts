/**
 * A benchmark run written to disk: records appended to `<out>.jsonl` as requests finish, the run file
 * (`<out>.run.json`) written at the start (marked unfinished) and again at the end, and an optional
 * progress bar on stderr (cli-progress; only on a TTY). Used by `bench run` and the recipes.
 *
 * @example
 * ```ts
 * const { meta } = await runToFiles(workload, { output: "out/run.jsonl", system: "prefix-cache", baseUrl, model, apiKey });
 * ```
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import cliProgress from "cli-progress";
import { JsonlWriter } from "../lib/jsonl";
import type { Workload } from "../workloads/format";
import { type RunMeta, runFileFor } from "./records";
import { type Progress, type RunOptions, type RunResult, runWorkload } from "./runner";

export interface RunToFilesOptions extends RunOptions {
  output: string;
  system: string;
  workloadLabel?: string;
  /** Nominal QPS for reports (default: the workload header's meta.qps × nothing — workload time). */
  qps?: number;
  modelTimeScale?: number;
  tags?: Record<string, string>;
  /** Show a progress bar on stderr when it is a TTY. */
  progress?: boolean;
}

export interface RunToFilesResult {
  result: RunResult;
  meta: RunMeta;
  resultsPath: string;
  runPath: string;
}

function progressBar(total: number): { update: (p: Progress) => void; stop: () => void } {
  const bar = new cliProgress.SingleBar(
    {
      format: " {bar} {value}/{total} requests | {inflight} in flight | {errors} errors | {duration_formatted}",
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: false,
      etaBuffer: 50,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0, { inflight: 0, errors: 0 });
  return {
    update: (p) => bar.update(p.done, { inflight: p.inflight, errors: p.errors }),
    stop: () => bar.stop(),
  };
}

export async function runToFiles(workload: Workload, opts: RunToFilesOptions): Promise<RunToFilesResult> {
  mkdirSync(dirname(opts.output), { recursive: true });
  const runPath = runFileFor(opts.output);
  const writer = new JsonlWriter(opts.output);
  const headerQps = typeof workload.header?.meta?.qps === "number" ? (workload.header.meta.qps as number) : null;
  const total = opts.limit !== undefined ? Math.min(opts.limit, workload.requests.length) : workload.requests.length;
  const meta: RunMeta = {
    schema: "switchyard.bench.run.v1",
    run_id: opts.runId ?? Math.random().toString(16).slice(2, 10),
    system: opts.system,
    workload: opts.workloadLabel ?? null,
    workload_file: workload.file,
    qps: opts.qps ?? headerQps,
    base_url: opts.baseUrl,
    model: opts.model,
    endpoint: opts.endpoint ?? "chat",
    stream: opts.stream ?? true,
    routing_strategy: opts.routingStrategy ?? null,
    time_scale: opts.timeScale ?? 1,
    model_time_scale: opts.modelTimeScale ?? 1,
    max_concurrency: opts.maxConcurrency ?? 256,
    started_at: new Date().toISOString(),
    finished_at: null,
    duration_ms: null,
    requests_total: total,
    sent: 0,
    ok: 0,
    errors: 0,
    cancelled: 0,
    not_sent: total,
    interrupted: false,
    tags: opts.tags ?? {},
  };
  writeFileSync(runPath, `${JSON.stringify(meta, null, 2)}\n`);
  const bar = opts.progress && process.stderr.isTTY ? progressBar(total) : undefined;
  let result: RunResult;
  try {
    result = await runWorkload(workload, {
      ...opts,
      runId: meta.run_id,
      keepRecords: opts.keepRecords ?? false,
      onRecord: (r) => {
        writer.write(r);
        opts.onRecord?.(r);
      },
      onProgress: (p) => {
        bar?.update(p);
        opts.onProgress?.(p);
      },
    });
  } finally {
    bar?.stop();
    writer.close();
  }
  const final: RunMeta = {
    ...meta,
    started_at: result.startedAt,
    finished_at: result.finishedAt,
    duration_ms: Math.round(result.durationMs),
    sent: result.sent,
    ok: result.ok,
    errors: result.errors,
    cancelled: result.cancelled,
    not_sent: result.notSent,
    interrupted: result.interrupted,
  };
  writeFileSync(runPath, `${JSON.stringify(final, null, 2)}\n`);
  return { result, meta: final, resultsPath: opts.output, runPath };
}
