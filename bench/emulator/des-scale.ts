/**
 * How fast the emulator's discrete-event mode runs at cluster scale: 100 engines × 100,000 requests
 * (the emulator issue's bar: under a minute on the 2-core dev machine), repeated, median wall time.
 * Writes bench/results/emulator-des/results.{json,md}.
 *
 *   npx tsx bench/emulator/des-scale.ts [--reps 3]
 */
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { runBench } from "../../dataplane/engines/sim/bench-des";

const { values } = parseArgs({ options: { reps: { type: "string", default: "3" } } });
const reps = Number(values.reps);
const cells = [
  { nodes: 100, requests: 100_000, route: "affinity" as const },
  { nodes: 100, requests: 100_000, route: "least-loaded" as const },
  { nodes: 8, requests: 10_000, route: "affinity" as const },
];
const runs = cells.map((c) => ({ ...c, results: Array.from({ length: reps }, () => runBench({ ...c, ratePerNode: 6 })) }));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const machine = `${os.cpus()[0]?.model ?? "cpu"} × ${os.cpus().length}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
const lines = [
  "# Discrete-event mode at cluster scale",
  "",
  `\`npx tsx bench/emulator/des-scale.ts\` on ${machine}, ${new Date().toISOString().slice(0, 10)}; a synthetic workload with shared prefixes at 6 requests/s per engine (H100 / Llama-3-8B calibration). ${reps} runs per row; wall time is the median (the machine is shared, so single runs vary).`,
  "",
  "| engines × requests | route | wall time (median) | runs | simulated req per wall s | model time | TTFT p50 / p99 (model ms) | prefix hit rate |",
  "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: |",
  ...runs.map((r) => {
    const walls = r.results.map((x) => x.wallSeconds);
    const last = r.results[0] as ReturnType<typeof runBench>;
    return `| ${r.nodes} × ${r.requests.toLocaleString("en-US")} | ${r.route} | ${median(walls).toFixed(1)} s | ${walls.map((w) => w.toFixed(1)).join(", ")} s | ${Math.round(r.requests / median(walls)).toLocaleString("en-US")} | ${last.modelSeconds} s | ${last.ttftMs.p50} / ${last.ttftMs.p99} | ${last.prefixHitRate} |`;
  }),
  "",
];
const out = path.join(import.meta.dirname, "..", "results", "emulator-des");
mkdirSync(out, { recursive: true });
writeFileSync(path.join(out, "results.json"), `${JSON.stringify({ machine, date: new Date().toISOString(), runs }, null, 1)}\n`);
writeFileSync(path.join(out, "results.md"), `${lines.join("\n")}\n`);
console.log(lines.join("\n"));
