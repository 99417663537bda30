/**
 * The Grafana dashboards in infra/grafana/ import as they are (a `${DS_PROMETHEUS}` input, every
 * panel on it, schema 39, ids and grid positions sane) and cannot drift from the code: every metric
 * a query names is registered by the agent or the cache server — read from their real registries,
 * not from a list — and every label a query filters or groups by is one those metrics carry.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import type { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { cacheServerRegistry, metricsOf as metricInfo, withAgentMetrics } from "../support/metric-registries";

const GRAFANA = resolve(import.meta.dirname, "../../infra/grafana");

interface Known {
  type: string;
  labels: Set<string>;
}

/** Labels Prometheus adds to every scraped series. */
const TARGET_LABELS = ["instance", "job"];

/** Every metric of a registry with its own labels and the target's. */
function metricsOf(registry: Registry): Map<string, Known> {
  return new Map(metricInfo(registry).map((m) => [m.name, { type: m.type, labels: new Set([...m.labels, ...TARGET_LABELS]) }]));
}

/** The registry's default labels, read off one series of its exposition (metric objects do not list them). */
async function defaultLabels(registry: Registry, series: string, own: string[]): Promise<string[]> {
  const line = (await registry.metrics()).split("\n").find((l) => l.startsWith(`${series}{`)) ?? "";
  return [...line.matchAll(/(\w+)="/g)].map((m) => m[1] as string).filter((l) => !own.includes(l));
}

/** The real agent registry, KV tiers (L1 and L2) included, as an agent with `kvCache` builds it. */
function agentMetrics(): Promise<Map<string, Known>> {
  return withAgentMetrics(async (agent) => {
    agent.heartbeats.inc({ result: "ok" });
    const defaults = await defaultLabels(agent.registry, "switchyard_agent_heartbeats_total", ["result"]);
    expect(defaults, "agents label every series with their node").toEqual(["node"]);
    const known = metricsOf(agent.registry);
    expect(known.has("switchyard_kv_tier_lookup_tokens_total"), "the KV tiers' own series are registered").toBe(true);
    for (const k of known.values()) for (const d of defaults) k.labels.add(d);
    return known;
  });
}

async function cacheServerMetrics(): Promise<Map<string, Known>> {
  return metricsOf(cacheServerRegistry());
}

const KEYWORDS = new Set(["by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset", "le"]);

interface Reference {
  metric: string;
  /** Labels named in the metric's own matcher braces. */
  matched: string[];
}

/** The metric names a PromQL expression reads, with the labels each is filtered by, and grouping labels. */
export function parsePromQl(expr: string): { refs: Reference[]; grouping: string[] } {
  let s = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""').replace(/\[[^\]]*\]/g, "");
  const refs: Reference[] = [];
  s = s.replace(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}/g, (_m, metric: string, body: string) => {
    refs.push({ metric, matched: [...body.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)].map((x) => x[1] as string) });
    return " ";
  });
  const grouping: string[] = [];
  s = s.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g, (_m, _k, labels: string) => {
    grouping.push(...labels.split(",").map((l) => l.trim()).filter(Boolean));
    return " ";
  });
  s = s.replace(/\b\d+(?:\.\d+)?(?:e[+-]?\d+)?\b/gi, " ");
  for (const m of s.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g)) {
    const [, name, call] = m;
    if (call || KEYWORDS.has(name as string)) continue;
    refs.push({ metric: name as string, matched: [] });
  }
  return { refs, grouping };
}

/** The registered metric a series name belongs to (histograms expose _bucket, _sum and _count). */
function resolveMetric(known: Map<string, Known>, series: string): { base: Known; extra: string[] } | undefined {
  const direct = known.get(series);
  if (direct) return { base: direct, extra: [] };
  const m = /^(.*)_(bucket|sum|count)$/.exec(series);
  const base = m ? known.get(m[1] as string) : undefined;
  if (!m || !base || (base.type !== "histogram" && base.type !== "summary")) return undefined;
  if (m[2] === "bucket" && base.type !== "histogram") return undefined;
  return { base, extra: m[2] === "bucket" ? ["le"] : [] };
}

interface Query {
  where: string;
  expr: string;
}

interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  gridPos: { h: number; w: number; x: number; y: number };
  targets?: Array<{ expr: string; refId: string; datasource?: { uid: string } }>;
  panels?: Panel[];
}

function allPanels(panels: Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

function queriesOf(dash: { panels: Panel[]; templating: { list: Array<{ name: string; query: { query: string } | string }> } }): Query[] {
  const out: Query[] = [];
  for (const p of allPanels(dash.panels)) for (const t of p.targets ?? []) out.push({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr });
  for (const v of dash.templating.list) {
    const q = typeof v.query === "string" ? v.query : v.query.query;
    // label_values(metric{...}, label): the metric is read, the label must be one of its own.
    const m = /^label_values\((.*),\s*([a-zA-Z_]\w*)\)$/.exec(q);
    out.push({ where: `variable $${v.name}`, expr: m ? `sum by (${m[2]}) (${m[1]})` : q });
  }
  return out;
}

const dashboards = [
  { file: "agents.json", registry: agentMetrics },
  { file: "cache-servers.json", registry: cacheServerMetrics },
];

describe("the PromQL reader these checks rely on", () => {
  it("finds metrics, matchers and grouping labels, and skips functions, numbers and strings", () => {
    const { refs, grouping } = parsePromQl(
      'histogram_quantile(0.95, sum by (le, node) (rate(switchyard_agent_ttft_seconds_bucket{node=~"$node", model!="x"}[$__rate_interval]))) / clamp_min(sum(switchyard_engine_running), 1e-9)',
    );
    expect(refs).toEqual([
      { metric: "switchyard_agent_ttft_seconds_bucket", matched: ["node", "model"] },
      { metric: "switchyard_engine_running", matched: [] },
    ]);
    expect(grouping).toEqual(["le", "node"]);
  });
});

describe.each(dashboards)("infra/grafana/$file", ({ file, registry }) => {
  const dash = JSON.parse(readFileSync(resolve(GRAFANA, file), "utf8"));

  it("imports as it is: a Prometheus data source input, every panel and variable on it", () => {
    expect(dash.schemaVersion).toBe(39);
    expect(dash.id).toBeNull();
    expect(dash.uid).toMatch(/^switchyard-[a-z-]+$/);
    expect(dash.title).toMatch(/^Switchyard/);
    expect(dash.__inputs).toEqual([expect.objectContaining({ name: "DS_PROMETHEUS", type: "datasource", pluginId: "prometheus" })]);
    const panels = allPanels(dash.panels);
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size, "panel ids are unique").toBe(ids.length);
    for (const p of panels) {
      expect(p.gridPos.x + p.gridPos.w, `panel "${p.title}" fits the 24-column grid`).toBeLessThanOrEqual(24);
      if (p.type === "row") continue;
      expect(p.datasource, `panel "${p.title}"`).toEqual({ type: "prometheus", uid: "${DS_PROMETHEUS}" });
      expect(p.targets?.length, `panel "${p.title}" has queries`).toBeGreaterThan(0);
      for (const t of p.targets ?? []) expect(t.datasource?.uid).toBe("${DS_PROMETHEUS}");
    }
    for (const v of dash.templating.list) expect(v.datasource).toEqual({ type: "prometheus", uid: "${DS_PROMETHEUS}" });
    // Nothing but the input names a data source (a dashboard exported with a fixed uid would not import elsewhere).
    const uids = [...JSON.stringify(dash).matchAll(/"uid":\s*"([^"]*)"/g)].map((m) => m[1]);
    expect(new Set(uids.filter((u) => u !== dash.uid && u !== "-- Grafana --"))).toEqual(new Set(["${DS_PROMETHEUS}"]));
  });

  it("names only metrics the code registers, with labels they carry", async () => {
    const known = await registry();
    const queries = queriesOf(dash);
    expect(queries.length).toBeGreaterThan(10);
    const problems: string[] = [];
    for (const q of queries) {
      const { refs, grouping } = parsePromQl(q.expr);
      if (refs.length === 0) problems.push(`${q.where}: no metric in ${q.expr}`);
      const labelsInScope = new Set<string>();
      for (const r of refs) {
        const resolved = resolveMetric(known, r.metric);
        if (!resolved) {
          problems.push(`${q.where}: unknown metric ${r.metric}`);
          continue;
        }
        const labels = new Set([...resolved.base.labels, ...resolved.extra]);
        for (const l of labels) labelsInScope.add(l);
        for (const l of r.matched) if (!labels.has(l)) problems.push(`${q.where}: ${r.metric} has no label '${l}'`);
      }
      for (const l of grouping) if (!labelsInScope.has(l)) problems.push(`${q.where}: groups by '${l}', which none of its metrics has`);
    }
    expect(problems).toEqual([]);
  });

  it("the checks catch a metric or a label the code does not have", async () => {
    const known = await registry();
    const bogus = parsePromQl('sum by (tenant) (rate(switchyard_agent_made_up_total{colour="red"}[5m]))');
    expect(resolveMetric(known, bogus.refs[0]?.metric as string)).toBeUndefined();
    const real = [...known.entries()].find(([, k]) => k.type === "counter") as [string, Known];
    expect(real[1].labels.has("colour")).toBe(false);
  });
});
