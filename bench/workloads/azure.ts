/**
 * The Azure LLM inference trace (AzurePublicDataset: `AzureLLMInferenceTrace_conv.csv`,
 * `..._code.csv`): CSV with `TIMESTAMP` (`2023-11-16 18:15:46.6805900`, UTC), `ContextTokens` and
 * `GeneratedTokens`. Read as a stream; times become milliseconds from the first row.
 *
 * @example
 * ```ts
 * const rows = await readAzureTrace("AzureLLMInferenceTrace_conv.csv", { durationMs: 600_000 });
 * ```
 */
import { createReadStream } from "node:fs";
import { parse } from "csv-parse";
import { BenchInputError } from "../lib/errors";

export interface AzureRow {
  /** ms from the first row of the trace. */
  timestampMs: number;
  contextTokens: number;
  generatedTokens: number;
  line: number;
}

export interface AzureOptions {
  /** Skip rows before this offset (ms from the first row). */
  startMs?: number;
  /** Keep rows up to startMs + durationMs. */
  durationMs?: number;
  /** At most this many rows. */
  limit?: number;
}

/** `2023-11-16 18:15:46.6805900` → ms since epoch (UTC); also accepts ISO text and epoch numbers. */
export function parseAzureTime(text: string): number {
  const t = text.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Number(t);
  const m = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})?$/.exec(t);
  if (!m) return NaN;
  const base = Date.parse(`${m[1]}T${m[2]}${m[4] ?? "Z"}`);
  const frac = m[3] ? Number(`0.${m[3]}`) * 1000 : 0;
  return base + frac;
}

export async function readAzureTrace(file: string, opts: AzureOptions = {}): Promise<AzureRow[]> {
  const stream = createReadStream(file);
  const opened = new Promise<void>((resolve, reject) => {
    stream.once("open", () => resolve());
    stream.once("error", (err) => reject(new BenchInputError(file, undefined, undefined, (err as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : err.message)));
  });
  await opened;
  const parser = stream.pipe(parse({ columns: true, info: true, skip_empty_lines: true, trim: true, bom: true }));
  const rows: AzureRow[] = [];
  let t0: number | undefined;
  const start = opts.startMs ?? 0;
  const end = opts.durationMs !== undefined ? start + opts.durationMs : Infinity;
  try {
    for await (const item of parser as AsyncIterable<{ record: Record<string, string>; info: { lines: number } }>) {
      const { record, info } = item;
      const line = info.lines;
      for (const col of ["TIMESTAMP", "ContextTokens", "GeneratedTokens"]) {
        if (!(col in record)) throw new BenchInputError(file, 1, col, `missing column (the header must name TIMESTAMP, ContextTokens, GeneratedTokens)`);
      }
      const ts = parseAzureTime(record.TIMESTAMP as string);
      if (!Number.isFinite(ts)) throw new BenchInputError(file, line, "TIMESTAMP", `'${record.TIMESTAMP}' is not a time like 2023-11-16 18:15:46.6805900`);
      const context = Number(record.ContextTokens);
      if (!Number.isInteger(context) || context < 1) throw new BenchInputError(file, line, "ContextTokens", `'${record.ContextTokens}' is not a positive integer`);
      const generated = Number(record.GeneratedTokens);
      if (!Number.isInteger(generated) || generated < 0) throw new BenchInputError(file, line, "GeneratedTokens", `'${record.GeneratedTokens}' is not a non-negative integer`);
      t0 ??= ts;
      const rel = ts - t0;
      if (rel < start) continue;
      if (rel >= end) break;
      rows.push({ timestampMs: rel - start, contextTokens: context, generatedTokens: Math.max(1, generated), line });
      if (opts.limit !== undefined && rows.length >= opts.limit) break;
    }
  } catch (err) {
    if (err instanceof BenchInputError) throw err;
    const e = err as Error & { lines?: number };
    throw new BenchInputError(file, e.lines, undefined, `not valid CSV (${e.message})`);
  } finally {
    stream.destroy();
  }
  if (rows.length === 0) throw new BenchInputError(file, undefined, undefined, "no rows in the selected window");
  rows.sort((a, b) => a.timestampMs - b.timestampMs);
  return rows;
}
