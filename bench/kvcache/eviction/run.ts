/**
 * S3-FIFO vs LRU on KV chunk traces: hit ratios of an L1 of various sizes (a fraction of each
 * trace's footprint, the bytes of all distinct chunks it touches), by chunk count and by bytes, on
 * (a) multi-turn chat and (b) shared-prefix workloads (traces.ts documents the generators), for LRU
 * and S3-FIFO with small ratio 0.1 / 0.3 and promotion threshold 1 / 2. Also measured:
 *
 * - chains: the share of chunk hits that are unusable (behind a missing parent), and the usable
 *   (leading-prefix) byte hit ratio when the agent reports a request's chunks head first (forward)
 *   or tail first (reverse);
 * - behind an engine: the same L1 when a vLLM-like GPU prefix cache (LRU, tails freed first) sits in
 *   front of it and only the chunks beyond the GPU's prefix reach L1 (gets of GPU misses, puts of
 *   what was computed) — the stream a real L1 sees.
 *
 * Usage: npx tsx bench/kvcache/eviction/run.ts [--seeds 1,2,3] [--out bench/results/kv-eviction] [--quick]
 * Writes results.json (every run) and results.md (tables) to --out.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, platform, release, totalmem } from "node:os";
import { join } from "node:path";
import type { EvictionPolicyConfig } from "../../../dataplane/kvcache/eviction/index";
import { type Order, type SimResult, simulate } from "./simulate";
import { multiTurnTrace, sharedPrefixTrace, type Trace, traceStats } from "./traces";

interface PolicyVariant {
  label: string;
  config: (capacityBytes: number) => EvictionPolicyConfig;
}

const POLICIES: PolicyVariant[] = [
  { label: "LRU", config: (c) => ({ name: "lru", capacityBytes: c }) },
  { label: "S3-FIFO s=0.1 t=1", config: (c) => ({ name: "s3fifo", capacityBytes: c, smallRatio: 0.1, threshold: 1 }) },
  { label: "S3-FIFO s=0.1 t=2", config: (c) => ({ name: "s3fifo", capacityBytes: c, smallRatio: 0.1, threshold: 2 }) },
  { label: "S3-FIFO s=0.3 t=1", config: (c) => ({ name: "s3fifo", capacityBytes: c, smallRatio: 0.3, threshold: 1 }) },
  { label: "S3-FIFO s=0.3 t=2", config: (c) => ({ name: "s3fifo", capacityBytes: c, smallRatio: 0.3, threshold: 2 }) },
];
const GiB = 2 ** 30;
/** GPU prefix cache in front of L1 in the "behind an engine" runs (≈ one H100's KV space after 8B weights). */
const ENGINE_CACHE_BYTES = 64 * GiB;

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const quick = process.argv.includes("--quick");
const seeds = (arg("seeds") ?? (quick ? "1" : "1,2,3")).split(",").map(Number);
const outDir = arg("out") ?? "bench/results/kv-eviction";
const FRACTIONS = quick ? [0.02, 0.1] : [0.01, 0.02, 0.05, 0.1, 0.2, 0.4];

/**
 * The L1 stream behind a GPU prefix cache: per request, the chunks past the longest prefix the GPU
 * holds (an LRU by bytes; a request's chunks are touched tail first, so the GPU, like vLLM, frees
 * a chain's tail before its head).
 */
function behindEngine(trace: Trace, gpuBytes: number): Trace {
  const sim = new Map<number, number>(); // id → size, in recency order (Map order; small and short-lived)
  let used = 0;
  const out: Int32Array[] = [];
  for (const req of trace.requests) {
    let n = 0;
    while (n < req.length && sim.has(req[n] as number)) n++;
    if (n < req.length) out.push(req.subarray(n));
    for (let i = req.length - 1; i >= 0; i--) {
      const id = req[i] as number;
      const size = trace.chunkBytes[id] as number;
      if (sim.has(id)) {
        sim.delete(id);
        sim.set(id, size);
        continue;
      }
      while (used + size > gpuBytes && sim.size > 0) {
        const [old, s] = sim.entries().next().value as [number, number];
        sim.delete(old);
        used -= s;
      }
      sim.set(id, size);
      used += size;
    }
  }
  return { ...trace, name: `${trace.name}, behind a ${gpuBytes / GiB} GiB engine cache`, requests: out };
}

interface Run extends SimResult {
  workload: string;
  engineFiltered: boolean;
  seed: number;
  sizeFraction: number;
  capacityBytes: number;
  policy: string;
  order: Order;
}

const runs: Run[] = [];
const workloadStats: Record<string, unknown>[] = [];
const t0 = Date.now();
for (const seed of seeds) {
  for (const make of [multiTurnTrace, sharedPrefixTrace]) {
    const raw = make(seed);
    const rawStats = traceStats(raw);
    workloadStats.push({ workload: raw.name, seed, ...rawStats, params: raw.params });
    const filtered = behindEngine(raw, ENGINE_CACHE_BYTES);
    const filteredStats = traceStats(filtered);
    workloadStats.push({ workload: raw.name, engineCacheBytes: ENGINE_CACHE_BYTES, seed, ...filteredStats });
    for (const [trace, engineFiltered] of [
      [raw, false],
      [filtered, true],
    ] as const) {
      for (const fraction of FRACTIONS) {
        // Sizes are fractions of the raw trace's footprint in both cases, so the columns compare.
        const capacityBytes = Math.floor(rawStats.footprintBytes * fraction);
        for (const p of POLICIES) {
          for (const order of ["forward", "reverse"] as const) {
            if (engineFiltered && order === "forward") continue; // behind an engine: tail first, as recommended
            const r = simulate(trace, p.config(capacityBytes), order);
            runs.push({ workload: raw.name, engineFiltered, seed, sizeFraction: fraction, capacityBytes, policy: p.label, order, ...r });
          }
        }
      }
    }
    process.stderr.write(`seed ${seed}: ${raw.name} done (${((Date.now() - t0) / 1000).toFixed(1)} s)\n`);
  }
}

// --- Aggregation over seeds -------------------------------------------------------------------

type Metric = "objectHitRatio" | "byteHitRatio" | "prefixObjectHitRatio" | "prefixByteHitRatio" | "orphanHitShare" | "nsPerAccess";
function mean(workload: string, engineFiltered: boolean, fraction: number, policy: string, order: Order, metric: Metric): number {
  const xs = runs.filter((r) => r.workload === workload && r.engineFiltered === engineFiltered && r.sizeFraction === fraction && r.policy === policy && r.order === order).map((r) => r[metric]);
  return xs.reduce((a, x) => a + x, 0) / xs.length;
}
/** Largest spread (max − min over seeds) of the LRU − S3-FIFO difference in any cell. */
function maxSeedSpread(): number {
  if (seeds.length < 2) return 0;
  let worst = 0;
  for (const w of new Set(runs.map((r) => r.workload))) {
    for (const f of FRACTIONS) {
      for (const p of POLICIES.slice(1)) {
        const diffs = seeds.map((seed) => {
          const get = (label: string) => runs.find((r) => r.workload === w && !r.engineFiltered && r.seed === seed && r.sizeFraction === f && r.policy === label && r.order === "forward")?.byteHitRatio ?? 0;
          return get(p.label) - get("LRU");
        });
        worst = Math.max(worst, Math.max(...diffs) - Math.min(...diffs));
      }
    }
  }
  return worst;
}

const pct = (x: number) => (100 * x).toFixed(1);
const workloads = [...new Set(runs.map((r) => r.workload))];
const cpu = cpus()[0]?.model ?? "unknown CPU";
const machine = { cpu, cores: cpus().length, memoryGiB: Math.round(totalmem() / GiB), platform: `${platform()} ${release()}`, node: process.version };

const md: string[] = [];
md.push("# KV chunk eviction: S3-FIFO vs LRU", "");
md.push(`Generated by \`npx tsx bench/kvcache/eviction/run.ts\` on ${new Date().toISOString().slice(0, 10)}: ${cpu} (${machine.cores} cores), Node ${process.version}, ${machine.platform}. Seeds ${seeds.join(", ")}; every cell is the mean over the seeds (results.json has each run).`, "");
md.push("Traces (bench/kvcache/eviction/traces.ts): full 256-token chunks; chunk bytes from the model (Llama-3-8B 32 MiB, Llama-3-70B 80 MiB per chunk; 70 % / 30 % of sessions or groups).");
md.push("**(a) multi-turn chat**: Poisson session arrivals (mean 1.5 s), 6 system prompts per model (Zipf 1.0, median 900 tokens); 35 % of sessions abandoned after the first turn, the others continue with p = 0.8 per turn; user messages log-normal (median 120 tokens, 5 % pasted documents of median 3000), replies median 280; think time exponential mean 45 s, 12 % long breaks of mean 20 min; each turn's prompt is the whole history; context capped at 32k tokens.");
md.push("**(b) shared prefix**: 300 groups with log-normal prefixes (median 3000 tokens, 500–16k), popularity Zipf 0.9 in random order; 24,000 requests, each a group's prefix plus a unique suffix (median 400 tokens): every suffix chunk is a one-hit wonder.", "");
md.push("Cache sizes are fractions of the trace's footprint (bytes of all distinct chunks). Per request the cache is probed first (hits), then the policy is told: hits are accesses, misses are inserts. `s` = small FIFO share of the bytes, `t` = promotion threshold; ghost sized like main.", "");

md.push("| workload | seed | requests | chunk accesses | distinct chunks | footprint | one-hit chunks | infinite-cache hit ratio (obj / byte) |");
md.push("|---|---|---|---|---|---|---|---|");
for (const s of workloadStats.filter((x) => x.engineCacheBytes === undefined) as (ReturnType<typeof traceStats> & { workload: string; seed: number })[]) {
  md.push(`| ${s.workload} | ${s.seed} | ${s.requests} | ${s.accesses} | ${s.distinctChunks} | ${(s.footprintBytes / 2 ** 40).toFixed(2)} TiB | ${pct(s.oneHitChunkShare)} % | ${pct(s.infiniteCacheObjectHitRatio)} / ${pct(s.infiniteCacheByteHitRatio)} % |`);
}
md.push("");

/** Per policy, the largest gap to the best policy of a row (workload × size), alone and behind an engine. */
const shortfalls = ([
  ["chunk hits, L1 alone", false, "byteHitRatio", "forward"],
  ["usable hits, behind an engine", true, "prefixByteHitRatio", "reverse"],
] as const).map(([label, filtered, metric, order]) => ({
  label,
  worst: POLICIES.map((p) => {
    let gap = 0;
    let where = "";
    for (const w of workloads) {
      for (const f of FRACTIONS) {
        const best = Math.max(...POLICIES.map((q) => mean(w, filtered, f, q.label, order, metric)));
        const g = best - mean(w, filtered, f, p.label, order, metric);
        if (g > gap) {
          gap = g;
          where = `${w}, ${f * 100} %`;
        }
      }
    }
    return { gap, where };
  }),
}));

md.push("## Summary", "");
for (const w of workloads) {
  const diffs = POLICIES.slice(1).map((p) => {
    const ds = FRACTIONS.map((f) => mean(w, false, f, p.label, "forward", "byteHitRatio") - mean(w, false, f, "LRU", "forward", "byteHitRatio"));
    const signed = (x: number) => (Math.abs(x) < 0.0005 ? "0.0" : `${x > 0 ? "+" : "−"}${pct(Math.abs(x))}`);
    return `${p.label} ${signed(Math.min(...ds))} … ${signed(Math.max(...ds))}`;
  });
  md.push(`- ${w}, byte hit ratio minus LRU's over the sizes (L1 alone): ${diffs.join("; ")} points.`);
}
const pick = POLICIES.map((p, i) => ({ p, worst: Math.max(...shortfalls.map((r) => (r.worst[i] as { gap: number }).gap)) })).sort((a, b) => a.worst - b.worst)[0] as { p: PolicyVariant; worst: number };
const L1_DEFAULT_LABEL = "S3-FIFO s=0.3 t=1";
md.push(`- Smallest worst-case shortfall over both workloads, alone and behind an engine: **${pick.p.label}** (${pct(pick.worst)} points; table "Worst shortfall"). ${pick.p.label === L1_DEFAULT_LABEL ? "The L1 default (L1_S3FIFO_DEFAULTS in dataplane/kvcache/l1/dram-tier.ts) is this policy." : `The L1 default (${L1_DEFAULT_LABEL}) is not this policy on this run: revisit L1_S3FIFO_DEFAULTS.`}`);
{
  let gain = 0;
  let orphanFwd = 0;
  let orphanRev = 0;
  for (const w of workloads) {
    for (const f of FRACTIONS) {
      for (const p of POLICIES) {
        gain = Math.max(gain, mean(w, false, f, p.label, "reverse", "prefixByteHitRatio") - mean(w, false, f, p.label, "forward", "prefixByteHitRatio"));
        orphanFwd = Math.max(orphanFwd, mean(w, false, f, p.label, "forward", "orphanHitShare"));
        orphanRev = Math.max(orphanRev, mean(w, false, f, p.label, "reverse", "orphanHitShare"));
      }
    }
  }
  md.push(`- Chains: with chunks reported head first, at most ${pct(orphanFwd)} % of chunk hits sat behind an evicted parent (useless); tail first, at most ${pct(orphanRev)} %, and the usable byte hit ratio gains at most ${pct(gain)} points (section "Chains").`, "");
}

md.push("## Hit ratio by workload, cache size and policy", "");
md.push("Chunk hit ratio in %, `objects / bytes`; head-first order; the best policy per row in bold (by bytes).", "");
for (const w of workloads) {
  md.push(`### ${w}`, "");
  md.push(`| cache size (of footprint) | ${POLICIES.map((p) => p.label).join(" | ")} |`);
  md.push(`|---|${POLICIES.map(() => "---").join("|")}|`);
  for (const f of FRACTIONS) {
    const byte = POLICIES.map((p) => mean(w, false, f, p.label, "forward", "byteHitRatio"));
    const best = Math.max(...byte);
    const cells = POLICIES.map((p, i) => {
      const cell = `${pct(mean(w, false, f, p.label, "forward", "objectHitRatio"))} / ${pct(byte[i] as number)}`;
      return (byte[i] as number) >= best - 0.0005 ? `**${cell}**` : cell;
    });
    md.push(`| ${f * 100} % | ${cells.join(" | ")} |`);
  }
  md.push("");
}
if (seeds.length > 1) md.push(`Seed-to-seed spread of (S3-FIFO − LRU) byte hit ratio, worst cell: ${pct(maxSeedSpread())} points.`, "");

md.push("## Chains: unusable hits and reporting order", "");
md.push("A chunk is only usable if every earlier chunk of the prompt is loaded too. *usable* = byte hit ratio of the leading run of hits; *orphaned* = share of chunk hits that sat behind a missing parent. *fwd* = the agent reports a request's chunks head first, *rev* = tail first.", "");
for (const w of workloads) {
  md.push(`### ${w}`, "");
  const shown = [POLICIES[0], POLICIES[1], POLICIES[3]] as PolicyVariant[];
  md.push(`| cache size | ${shown.map((p) => `${p.label}: usable fwd → rev (orphaned fwd → rev)`).join(" | ")} |`);
  md.push(`|---|${shown.map(() => "---").join("|")}|`);
  for (const f of FRACTIONS) {
    const cells = shown.map((p) => {
      const u = (o: Order) => pct(mean(w, false, f, p.label, o, "prefixByteHitRatio"));
      const o = (or: Order) => pct(mean(w, false, f, p.label, or, "orphanHitShare"));
      return `${u("forward")} → ${u("reverse")} (${o("forward")} → ${o("reverse")} %)`;
    });
    md.push(`| ${f * 100} % | ${cells.join(" | ")} |`);
  }
  md.push("");
}

md.push(`## Behind an engine cache (${ENGINE_CACHE_BYTES / GiB} GiB GPU prefix cache, LRU, in front of L1)`, "");
{
  const small = runs.filter((r) => r.engineFiltered && r.capacityBytes <= ENGINE_CACHE_BYTES);
  const rows = [...new Set(small.map((r) => `${r.sizeFraction * 100} %`))].join(", ");
  const range = small.length === 0 ? "" : ` (${rows}: ${Math.round(Math.min(...small.map((r) => r.capacityBytes)) / GiB)}–${Math.round(Math.max(...small.map((r) => r.capacityBytes)) / GiB)} GiB)`;
  md.push(`Only the chunks past the GPU's cached prefix reach L1. L1 usable byte hit ratio over the chunks that reach it, tail-first order; L1 sizes as above (fractions of the raw footprint). An L1 no larger than the GPU cache${range} holds little the GPU does not, so such rows are near zero for every policy.`, "");
}
for (const w of workloads) {
  const share = (seed: number) => {
    const f = workloadStats.find((x) => x.workload === w && x.engineCacheBytes !== undefined && x.seed === seed) as ReturnType<typeof traceStats>;
    const r = workloadStats.find((x) => x.workload === w && x.engineCacheBytes === undefined && x.seed === seed) as ReturnType<typeof traceStats>;
    return f.accesses / r.accesses;
  };
  md.push(`### ${w} (L1 sees ${pct(seeds.reduce((a, s) => a + share(s), 0) / seeds.length)} % of the chunk accesses)`, "");
  md.push(`| L1 size | ${POLICIES.map((p) => p.label).join(" | ")} |`);
  md.push(`|---|${POLICIES.map(() => "---").join("|")}|`);
  for (const f of FRACTIONS) {
    const vals = POLICIES.map((p) => mean(w, true, f, p.label, "reverse", "prefixByteHitRatio"));
    const best = Math.max(...vals);
    md.push(`| ${f * 100} % | ${vals.map((v) => (v >= best - 0.0005 && best >= 0.0005 ? `**${pct(v)}**` : pct(v))).join(" | ")} |`);
  }
  md.push("");
}

md.push("## Worst shortfall", "");
md.push("For each policy, the largest gap (byte hit ratio points) to the best policy of the same row, over all sizes of both workloads: a policy to pick without knowing the workload should keep this small.", "");
md.push("| | " + POLICIES.map((p) => p.label).join(" | ") + " |");
md.push(`|---|${POLICIES.map(() => "---").join("|")}|`);
for (const row of shortfalls) md.push(`| ${row.label} | ${row.worst.map((x) => (x.gap < 0.0005 ? "0.0" : `${pct(x.gap)} (${x.where})`)).join(" | ")} |`);
md.push("");

md.push("## Cost per chunk access", "");
md.push("Mean replay time per chunk access (probe + policy update + map work), over all runs:", "");
md.push(`| ${POLICIES.map((p) => p.label).join(" | ")} |`);
md.push(`|${POLICIES.map(() => "---").join("|")}|`);
md.push(`| ${POLICIES.map((p) => {
  const xs = runs.filter((r) => r.policy === p.label).map((r) => r.nsPerAccess);
  return `${Math.round(xs.reduce((a, x) => a + x, 0) / xs.length)} ns`;
}).join(" | ")} |`, "");

mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, "results.json"), `${JSON.stringify({ generatedAt: new Date().toISOString(), machine, seeds, fractions: FRACTIONS, engineCacheBytes: ENGINE_CACHE_BYTES, policies: POLICIES.map((p) => ({ label: p.label, config: p.config(1) })), workloads: workloadStats, runs }, null, 1)}\n`);
writeFileSync(join(outDir, "results.md"), `${md.join("\n")}\n`);
process.stderr.write(`wrote ${join(outDir, "results.json")} and results.md (${runs.length} runs, ${((Date.now() - t0) / 1000).toFixed(1)} s)\n`);
