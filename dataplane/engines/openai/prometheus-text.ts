/**
 * Reader for the Prometheus text exposition format, enough to pull engine load out of vLLM,
 * SGLang and llama-server `/metrics`: metric name, labels, value. Comments and malformed lines are
 * skipped rather than fatal, since engines differ in what else they print.
 */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?\s*$/;

function parseLabels(text: string): Record<string, string> | undefined {
  const labels: Record<string, string> = {};
  let i = 0;
  while (i < text.length) {
    while (text[i] === " " || text[i] === ",") i++;
    if (i >= text.length) break;
    const eq = text.indexOf("=", i);
    if (eq < 0 || text[eq + 1] !== '"') return undefined;
    const name = text.slice(i, eq).trim();
    let j = eq + 2;
    let value = "";
    for (; j < text.length; j++) {
      const ch = text[j];
      if (ch === "\\") {
        const next = text[++j];
        value += next === "n" ? "\n" : (next ?? "");
      } else if (ch === '"') break;
      else value += ch;
    }
    if (j >= text.length) return undefined;
    labels[name] = value;
    i = j + 1;
  }
  return labels;
}

function parseValue(text: string): number {
  if (text === "+Inf") return Number.POSITIVE_INFINITY;
  if (text === "-Inf") return Number.NEGATIVE_INFINITY;
  return Number(text);
}

export function parsePrometheusText(body: string): Sample[] {
  const out: Sample[] = [];
  for (const raw of body.split("\n")) {
    const line = raw.trim();
    if (line.length === 0 || line.startsWith("#")) continue;
    const m = LINE.exec(line);
    if (!m) continue;
    const labels = m[2] ? parseLabels(m[2]) : {};
    const value = parseValue(m[3] as string);
    if (!labels || Number.isNaN(value)) continue;
    out.push({ name: m[1] as string, labels, value });
  }
  return out;
}

/** Sum of a metric's samples (optionally only those whose labels match), or undefined if absent. */
export function sumOf(samples: readonly Sample[], name: string, match: Record<string, string> = {}): number | undefined {
  let found = false;
  let total = 0;
  for (const s of samples) {
    if (s.name !== name) continue;
    if (Object.entries(match).some(([k, v]) => s.labels[k] !== v)) continue;
    found = true;
    total += s.value;
  }
  return found ? total : undefined;
}

export function firstOf(samples: readonly Sample[], name: string): Sample | undefined {
  return samples.find((s) => s.name === name);
}
