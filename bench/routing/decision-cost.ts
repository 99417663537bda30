/**
 * Runs bench/routing/workerd/decision-cost.bench.ts inside workerd and writes
 * bench/results/routing/decision-cost.json and .md.
 *
 *   npx tsx bench/routing/decision-cost.ts
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";

const root = join(import.meta.dirname, "..", "..");
const out = join(root, "bench", "results", "routing");
const run = spawnSync(process.execPath, [join(root, "node_modules", "vitest", "vitest.mjs"), "run", "--config", join(import.meta.dirname, "workerd", "vitest.config.ts")], { cwd: root, encoding: "utf8", maxBuffer: 1 << 26 });
const lines = `${run.stdout}\n${run.stderr}`.split("\n").filter((l) => l.includes("BENCH_RESULT "));
if (run.status !== 0 || lines.length === 0) {
  process.stderr.write(run.stdout + run.stderr);
  throw new Error("the workerd benchmark failed");
}
const results = lines.map((l) => JSON.parse(l.slice(l.indexOf("BENCH_RESULT ") + 13)) as Record<string, number | string>);
const pkg = (name: string) => (JSON.parse(readFileSync(join(root, "node_modules", name, "package.json"), "utf8")) as { version: string }).version;
const meta = { date: new Date().toISOString(), cpu: cpus()[0]?.model, cores: cpus().length, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version, wrangler: pkg("wrangler"), workerd: pkg("workerd") };
mkdirSync(out, { recursive: true });
writeFileSync(join(out, "decision-cost.json"), `${JSON.stringify({ meta, results }, null, 2)}\n`);
const decisions = results.filter((r) => r.name === "decision");
const hash = results.find((r) => r.name === "hash-8k-token-prompt");
const rpc = results.find((r) => r.name === "pool-rpc");
const md = [
  "# Routing decision cost inside workerd",
  "",
  `Local workerd ${meta.workerd} (wrangler ${meta.wrangler}) under vitest-pool-workers, on ${meta.cpu} (${meta.cores} cores, ${meta.memoryGiB} GiB), ${meta.date}. workerd's clock ticks in milliseconds, so decisions are timed in batches of 500 and the median batch is reported; the machine is shared and noisy.`,
  "",
  "| strategy | nodes | prompt | median per decision | p90 |",
  "|---|---:|---:|---:|---:|",
  ...decisions.map((d) => `| ${d.strategy} | ${d.nodes} | ${d.promptTokens} tokens (${d.blocks} blocks) | ${Number(d.medianUs).toFixed(1)} µs | ${Number(d.p90Us).toFixed(1)} µs |`),
  "",
  `Hashing the prompt's blocks in the worker (before calling the pool, in parallel across isolates): ${Number(hash?.medianUs).toFixed(0)} µs per 8k-token prompt.`,
  "",
  `One pool object over RPC (route + release per request, prefix-cache, 64 nodes): ${Number(rpc?.requestsPerSecondSequential).toFixed(0)} requests/s one at a time, ${Number(rpc?.requestsPerSecondConcurrent64).toFixed(0)} requests/s with 64 in flight, in local workerd. Cloudflare documents a soft limit of about 1,000 requests/s per Durable Object; each routed request costs two calls (route and release), so plan for ~400 routed requests/s per pool and shard beyond that (docs/routing.md, "Sharding pools").`,
  "",
].join("\n");
writeFileSync(join(out, "decision-cost.md"), md);
process.stdout.write(md);
