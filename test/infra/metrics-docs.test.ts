/**
 * docs/dashboard.md's metrics reference cannot drift from the code: its tables list exactly the
 * metrics the agent's and the cache server's registries hold (prom-client's process and Node.js
 * defaults aside, which the page describes by prefix), each with its real type and labels.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { cacheServerRegistry, type MetricInfo, metricsOf, shardSupervisorRegistry, withAgentMetrics } from "../support/metric-registries";

const DOC = readFileSync(resolve(import.meta.dirname, "../../docs/dashboard.md"), "utf8");

/** The rows `| \`name\` | type | labels | meaning |` of the table under `heading`. */
function documented(heading: string): MetricInfo[] {
  const start = DOC.indexOf(`\n${heading}\n`);
  expect(start, `docs/dashboard.md has a "${heading}" section`).toBeGreaterThan(0);
  const section = DOC.slice(start + heading.length + 2).split(/\n#{2,3} /)[0] as string;
  return section
    .split("\n")
    .filter((l) => /^\| `switchyard_/.test(l))
    .map((l) => {
      const [name, type, labels] = l.split("|").slice(1, 4).map((c) => c.trim());
      return { name: (name as string).replace(/`/g, ""), type: type as string, labels: (labels as string).split(",").map((x) => x.trim()).filter(Boolean) };
    });
}

function compare(doc: MetricInfo[], code: MetricInfo[], defaultsPrefix: string): void {
  const exported = code.filter((m) => !m.name.startsWith(`${defaultsPrefix}process_`) && !m.name.startsWith(`${defaultsPrefix}nodejs_`));
  const sorted = (xs: MetricInfo[]) => xs.map((m) => ({ ...m, labels: [...m.labels].sort() })).sort((a, b) => a.name.localeCompare(b.name));
  expect(sorted(doc)).toEqual(sorted(exported));
  // The defaults really are there, under the prefix the page names.
  expect(code.some((m) => m.name === `${defaultsPrefix}process_cpu_seconds_total`)).toBe(true);
  expect(DOC).toContain(`\`${defaultsPrefix}process_*\``);
}

describe("docs/dashboard.md metrics reference", () => {
  it("lists every node agent metric (KV tiers included) with its type and labels", async () => {
    const code = await withAgentMetrics((agent) => metricsOf(agent.registry));
    const doc = documented("### Node agents");
    expect(doc.length).toBeGreaterThan(20);
    compare(doc, code, "switchyard_agent_");
  });

  it("lists every cache server metric with its type and labels", () => {
    compare(documented("### Cache servers"), metricsOf(cacheServerRegistry()), "switchyard_kvcache_server_");
  });

  it("lists the sharded cache server's own metrics", () => {
    const sorted = (xs: MetricInfo[]) => xs.map((m) => ({ ...m, labels: [...m.labels].sort() })).sort((a, b) => a.name.localeCompare(b.name));
    expect(sorted(documented("### Sharded cache servers"))).toEqual(sorted(metricsOf(shardSupervisorRegistry())));
  });

  it("would notice a metric the code exports and the page omits", async () => {
    const code = await withAgentMetrics((agent) => metricsOf(agent.registry));
    const doc = documented("### Node agents").filter((m) => m.name !== "switchyard_agent_tpot_seconds");
    expect(() => compare(doc, code, "switchyard_agent_")).toThrow();
  });
});
