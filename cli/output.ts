/**
 * Human output for the admin commands: compact aligned tables, `field: value` blocks, relative
 * times. `--json` output bypasses all of this and prints the API's JSON as is.
 */

export interface Column<T> {
  header: string;
  value: (row: T) => string | number | boolean | null | undefined;
  /** Right-align (numbers). */
  right?: boolean;
}

function cell(v: string | number | boolean | null | undefined): string {
  if (v === null || v === undefined || v === "") return "-";
  return String(v).replace(/[\r\n\t]+/g, " ");
}

/** Columns separated by two spaces, headers upper-case, no trailing whitespace. */
export function table<T>(rows: readonly T[], columns: readonly Column<T>[]): string {
  const body = rows.map((r) => columns.map((c) => cell(c.value(r))));
  const head = columns.map((c) => c.header.toUpperCase());
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((line) => (line[i] as string).length)));
  const render = (line: string[]) =>
    line
      .map((text, i) => {
        const w = widths[i] as number;
        return columns[i]?.right ? text.padStart(w) : text.padEnd(w);
      })
      .join("  ")
      .trimEnd();
  return [render(head), ...body.map(render)].join("\n") + "\n";
}

/** Aligned `label: value` lines, for `show` commands. */
export function fields(pairs: ReadonlyArray<readonly [string, string | number | boolean | null | undefined]>): string {
  const width = Math.max(0, ...pairs.map(([k]) => k.length + 1));
  return pairs.map(([k, v]) => `${`${k}:`.padEnd(width)}  ${cell(v)}`).join("\n") + "\n";
}

/** "3s ago", "5m ago", "2h ago", "4d ago" (or "in 3d" for future times); "-" for none. */
export function ago(isoTime: string | null | undefined, now = Date.now()): string {
  if (!isoTime) return "-";
  const t = Date.parse(isoTime);
  if (Number.isNaN(t)) return isoTime;
  const diff = now - t;
  const abs = Math.abs(diff);
  const s = Math.floor(abs / 1000);
  const text = s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m` : s < 86_400 ? `${Math.floor(s / 3600)}h` : `${Math.floor(s / 86_400)}d`;
  return diff >= -1000 ? `${text} ago` : `in ${text}`;
}

/** ISO time without milliseconds (tables); "-" for none. */
export function shortIso(isoTime: string | null | undefined): string {
  if (!isoTime) return "-";
  return isoTime.replace(/\.\d{3}Z$/, "Z");
}

/** ISO time followed by its relative age: `2026-05-01T10:00:00Z (3h ago)`. */
export function isoWithAge(isoTime: string | null | undefined, now = Date.now()): string {
  if (!isoTime) return "-";
  return `${shortIso(isoTime)} (${ago(isoTime, now)})`;
}

export function percent(fraction: number | null | undefined): string {
  if (fraction === null || fraction === undefined || !Number.isFinite(fraction)) return "-";
  return `${Math.round(fraction * 100)}%`;
}

export function yesNo(v: boolean | null | undefined): string {
  return v === null || v === undefined ? "-" : v ? "yes" : "no";
}

export function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/** Where command output goes; tests of the formatters need no process. */
export interface Output {
  out(text: string): void;
  err(text: string): void;
}

export const stdio: Output = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
};
