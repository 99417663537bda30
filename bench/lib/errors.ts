/**
 * Errors the benchmark toolkit reports to people: a bad input file (naming the file, the line and
 * the field) or a bad option value. The CLI prints them as one message and exits 2.
 *
 * @example
 * ```ts
 * throw new BenchInputError("w.jsonl", 12, "requests[0].prompt", "expected a string");
 * // w.jsonl:12: requests[0].prompt: expected a string
 * ```
 */
import type { z } from "zod";
import { paramPath } from "../../protocol/openai-request";

export class BenchInputError extends Error {
  constructor(
    readonly file: string,
    readonly line: number | undefined,
    readonly field: string | undefined,
    readonly detail: string,
  ) {
    super(`${file}${line !== undefined ? `:${line}` : ""}: ${field ? `${field}: ` : ""}${detail}`);
    this.name = "BenchInputError";
  }
}

/** A bad option or argument value (not a file): the message names the option. */
export class BenchUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BenchUsageError";
  }
}

/**
 * Validates one parsed record; on failure throws a BenchInputError naming the first bad field
 * (prefixed by `fieldPrefix`, e.g. `requests[3]`).
 */
export function parseRecord<S extends z.ZodType>(schema: S, value: unknown, file: string, line: number | undefined, fieldPrefix = ""): z.infer<S> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const path = issue ? paramPath(issue.path) : "";
  const field = [fieldPrefix, path].filter((p) => p !== "").join(path.startsWith("[") ? "" : ".") || undefined;
  throw new BenchInputError(file, line, field, issue?.message ?? "invalid record");
}
