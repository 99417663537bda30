/**
 * Reading and writing the toolkit's files: JSONL with line numbers in every error, big JSON arrays
 * (ShareGPT dumps are hundreds of MB) element by element as a stream, and an append-only JSONL
 * writer that puts each record on disk as soon as it is written (a Ctrl-C keeps what finished).
 *
 * Python's `json.dumps` writes `NaN` for pandas' missing values (AIBrix workloads have
 * `"prompt_length": NaN`); such bare `NaN`/`Infinity` tokens are read as `null`.
 */
import { closeSync, createReadStream, existsSync, fsyncSync, openSync, readFileSync, readSync, statSync, writeSync } from "node:fs";
import { createInterface } from "node:readline";
import { BenchInputError } from "./errors";

export interface Line<T = unknown> {
  value: T;
  /** 1-based line number in the file. */
  line: number;
}

/** Replaces bare NaN / Infinity / -Infinity tokens outside strings with null. */
function nanToNull(text: string): string {
  let out = "";
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (inString) {
      out += c;
      if (c === "\\") {
        out += text[i + 1] ?? "";
        i++;
      } else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') {
      inString = true;
      out += c;
      continue;
    }
    if (text.startsWith("NaN", i)) {
      out += "null";
      i += 2;
    } else if (text.startsWith("-Infinity", i)) {
      out += "null";
      i += 8;
    } else if (text.startsWith("Infinity", i)) {
      out += "null";
      i += 7;
    } else out += c;
  }
  return out;
}

/** JSON.parse with the NaN tolerance; throws BenchInputError naming file and line. */
export function parseJsonText(text: string, file: string, line: number | undefined): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    if (/NaN|Infinity/.test(text)) {
      try {
        return JSON.parse(nanToNull(text));
      } catch {
        // fall through to the original message
      }
    }
    throw new BenchInputError(file, line, undefined, `not valid JSON (${(err as Error).message})`);
  }
}

function assertReadable(file: string): void {
  if (!existsSync(file)) throw new BenchInputError(file, undefined, undefined, "no such file");
  if (statSync(file).isDirectory()) throw new BenchInputError(file, undefined, undefined, "is a directory, not a file");
}

/** Every non-blank line of a JSONL file, parsed, with its line number (streamed). */
export async function* readJsonl(file: string): AsyncGenerator<Line> {
  assertReadable(file);
  const rl = createInterface({ input: createReadStream(file, { encoding: "utf8" }), crlfDelay: Infinity });
  let n = 0;
  for await (const text of rl) {
    n++;
    if (text.trim() === "") continue;
    yield { value: parseJsonText(text, file, n), line: n };
  }
}

/** Every non-blank line of a JSONL file (synchronous, whole file in memory). */
export function readJsonlSync(file: string): Line[] {
  assertReadable(file);
  const out: Line[] = [];
  const lines = readFileSync(file, "utf8").split(/\r?\n/);
  lines.forEach((text, i) => {
    if (text.trim() !== "") out.push({ value: parseJsonText(text, file, i + 1), line: i + 1 });
  });
  return out;
}

/** Reads a whole JSON file (object or array). */
export function readJsonFile(file: string): unknown {
  assertReadable(file);
  return parseJsonText(readFileSync(file, "utf8"), file, undefined);
}

/** The first non-whitespace character of a file (tells a JSON array from JSONL). */
export function firstChar(file: string): string | undefined {
  assertReadable(file);
  const fd = openSync(file, "r");
  try {
    const buf = Buffer.alloc(4096);
    const n = readSync(fd, buf, 0, buf.length, 0);
    const m = /\S/.exec(buf.subarray(0, n).toString("utf8").replace(/^\uFEFF/, ""));
    return m?.[0];
  } finally {
    closeSync(fd);
  }
}

/**
 * The elements of a top-level JSON array, parsed one at a time while the file streams in, each with
 * the line on which it starts. Memory stays proportional to one element.
 */
export async function* readJsonArray(file: string): AsyncGenerator<Line & { index: number }> {
  assertReadable(file);
  let line = 1;
  let depth = 0;
  let inString = false;
  let escaped = false;
  let started = false;
  let current: string[] = [];
  let elementLine = 0;
  let index = 0;
  let pendingValue = false;
  for await (const chunk of createReadStream(file, { encoding: "utf8", highWaterMark: 1 << 20 })) {
    const text = chunk as string;
    let segStart = pendingValue ? 0 : -1;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 10) line++;
      if (!started) {
        if (c === 0x5b) {
          started = true;
          depth = 1;
        } else if (c !== 0xfeff && c !== 32 && c !== 9 && c !== 10 && c !== 13) {
          throw new BenchInputError(file, line, undefined, "expected a JSON array ('[' first)");
        }
        continue;
      }
      if (depth === 0) {
        if (c !== 32 && c !== 9 && c !== 10 && c !== 13) throw new BenchInputError(file, line, undefined, "unexpected text after the closing ']'");
        continue;
      }
      if (inString) {
        if (escaped) escaped = false;
        else if (c === 0x5c) escaped = true;
        else if (c === 0x22) inString = false;
        continue;
      }
      if (c === 0x22) {
        inString = true;
        if (depth === 1 && !pendingValue) {
          pendingValue = true;
          elementLine = line;
          segStart = i;
        }
        continue;
      }
      if (depth === 1 && (c === 0x2c || c === 0x5d)) {
        // End of an element at ',' or ']'.
        if (pendingValue) {
          current.push(text.slice(segStart, i));
          const raw = current.join("");
          current = [];
          segStart = -1;
          pendingValue = false;
          yield { value: parseJsonText(raw, file, elementLine), line: elementLine, index: index++ };
        }
        if (c === 0x5d) depth = 0;
        continue;
      }
      if (c === 0x7b || c === 0x5b) {
        if (depth === 1 && !pendingValue) {
          pendingValue = true;
          elementLine = line;
          segStart = i;
        }
        depth++;
        continue;
      }
      if (c === 0x7d || c === 0x5d) {
        depth--;
        continue;
      }
      if (depth === 1 && !pendingValue && c !== 32 && c !== 9 && c !== 10 && c !== 13) {
        pendingValue = true;
        elementLine = line;
        segStart = i;
      }
    }
    if (pendingValue) current.push(text.slice(segStart));
  }
  if (!started) throw new BenchInputError(file, line, undefined, "empty file: expected a JSON array");
  if (depth !== 0) throw new BenchInputError(file, line, undefined, "the JSON array is not closed (truncated file?)");
}

/** Appends JSON lines to a file, each one written through to the OS at once. */
export class JsonlWriter {
  private fd: number | undefined;
  count = 0;

  constructor(
    readonly path: string,
    { append = false }: { append?: boolean } = {},
  ) {
    this.fd = openSync(path, append ? "a" : "w");
  }

  write(record: unknown): void {
    if (this.fd === undefined) throw new Error(`${this.path} is closed`);
    writeSync(this.fd, `${JSON.stringify(record)}\n`);
    this.count++;
  }

  close(): void {
    if (this.fd === undefined) return;
    try {
      fsyncSync(this.fd);
    } catch {
      // fsync is best effort (pipes, some filesystems)
    }
    closeSync(this.fd);
    this.fd = undefined;
  }
}

/** Writes records as a JSONL file in one go. */
export function writeJsonl(path: string, records: Iterable<unknown>): number {
  const w = new JsonlWriter(path);
  try {
    for (const r of records) w.write(r);
    return w.count;
  } finally {
    w.close();
  }
}
