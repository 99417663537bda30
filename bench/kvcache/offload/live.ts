/**
 * End-to-end cross-check of the discrete-event offloading sweep (run.ts): one QPS point of the same
 * Workload-2 shape, scaled down, run twice — in discrete-event mode (study.ts) and through a real
 * node agent (HTTP, signature check, admission, the `sim` engine on the wall clock at `timeScale`,
 * and for "+ DRAM" the agent's real L1 tier behind the emulator's lower-tier hooks, sim-tier.ts) —
 * for GPU prefix cache only and + DRAM tier. Both runs get the same requests (same seed: prefixes,
 * suffixes, arrival times), the same GPU KV capacity, DRAM size (the full-scale ratio, 3.13× the
 * GPU KV) and KV bytes per token.
 *
 * Scaled setup: GPU KV `--gpu-kv-tokens` (default 32,768 tokens, 1/12.8 of an H100's) with 6000-token
 * prefixes at 8× footprint (44 prefixes); the engine's speed is the H100 calibration's, so the QPS
 * axis means what it means at full scale. KV bytes per token are a small model shape's (256 B), so
 * the agent's L1 holds 25 MB instead of 12.5 GiB; host→GPU loads then cost next to nothing in both
 * runs (at full scale a 6000-token prefix costs ≈ 15 ms of a ≈ 0.4 s TTFT).
 *
 * Live TTFT is the time from a request's scheduled arrival to its first streamed token, on the wall
 * clock, times `timeScale` (so it includes HTTP and event-loop delays, magnified by the scale).
 *
 *   npx tsx bench/kvcache/offload/live.ts [--qps 6] [--duration-s 60] [--time-scale 1,5] [--seed 1] [--gap-s 10]
 *                                         [--gpu-kv-tokens 32768] [--out bench/results/kv-offload-live]
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { startAgent, type RunningAgent } from "../../../dataplane/agent/agent";
import { parseAgentConfig } from "../../../dataplane/agent/config";
import type { Logger } from "../../../dataplane/lib/log";
import { signRequest } from "../../../protocol/signing";
import { quantileSorted } from "../../lib/stats";
import { BLOCK_SIZE, OFFLOAD_CONFIGS, runOffloadPoint } from "./study";
import { GiB } from "./tiers";
import { offloadWorkload, offloadWorkloadShape, type OffloadWorkloadOptions } from "./workload";

const { values: args } = parseArgs({
  options: {
    qps: { type: "string", default: "6" },
    "duration-s": { type: "string", default: "60" },
    /** One live run per scale (comma-separated): 1 is the reference, larger ones show what the knob costs. */
    "time-scale": { type: "string", default: "1,5" },
    seed: { type: "string", default: "1" },
    "gpu-kv-tokens": { type: "string", default: "32768" },
    "gap-s": { type: "string", default: "10" },
    out: { type: "string", default: "bench/results/kv-offload-live" },
  },
});

const QPS = Number(args.qps);
const DURATION_MS = Number(args["duration-s"]) * 1000;
const TIME_SCALES = (args["time-scale"] as string).split(",").map(Number);
const SEED = Number(args.seed);
const GPU_KV = Number(args["gpu-kv-tokens"]);
const GAP_MS = Number(args["gap-s"]) * 1000;
/** 1 layer × 1 KV head × 64 × bf16, K and V: 256 B a token, 4 KiB a block. */
const MODEL_SHAPE = { layers: 1, kvHeads: 1, headDim: 64, dtypeBytes: 2 };
const KV_BYTES_PER_TOKEN = 2 * MODEL_SHAPE.layers * MODEL_SHAPE.kvHeads * MODEL_SHAPE.headDim * MODEL_SHAPE.dtypeBytes;
/** The full-scale study's DRAM : GPU KV ratio (160 GiB over 419,152 tokens of 128 KiB). */
const DRAM_RATIO = (160 * GiB) / (419_152 * 131_072);
const DRAM_BYTES = Math.floor((GPU_KV * DRAM_RATIO * KV_BYTES_PER_TOKEN) / (BLOCK_SIZE * KV_BYTES_PER_TOKEN)) * BLOCK_SIZE * KV_BYTES_PER_TOKEN;
const NODE = "offload-live";
const SECRET = "sy_ns_1_offloadliveoffloadliveoffload";
const MODEL = "sim-llama-3-8b";

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };

const workload: OffloadWorkloadOptions = { kvCapacityTokens: GPU_KV, qps: QPS, durationMs: DURATION_MS, seed: SEED, gapMs: GAP_MS, blockSize: BLOCK_SIZE };
const configs = OFFLOAD_CONFIGS.filter((c) => c.name === "gpu" || c.name === "gpu+dram");

interface Summary {
  requests: number;
  meanMs: number;
  p50Ms: number;
  p99Ms: number;
}

function summarize(ttft: number[]): Summary {
  const s = [...ttft].sort((a, b) => a - b);
  return { requests: s.length, meanMs: s.reduce((a, b) => a + b, 0) / Math.max(1, s.length), p50Ms: quantileSorted(s, 0.5) ?? Number.NaN, p99Ms: quantileSorted(s, 0.99) ?? Number.NaN };
}

/** An edge that accepts every heartbeat (the agent needs one to talk to; routing is not under test). */
async function sinkEdge(): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ ok: true, accepted: [MODEL], ignored: [], draining: false, intervalMs: 2_000 }));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise<void>((r) => server.close(() => r())) };
}

async function ttftOf(agent: RunningAgent, tokens: ArrayLike<number>, scheduledAt: number, timeScale: number): Promise<number | undefined> {
  const path = "/v1/completions";
  const body = new TextEncoder().encode(JSON.stringify({ model: MODEL, prompt: Array.from(tokens), max_tokens: 16, stream: true }));
  const headers = await signRequest({ nodeId: NODE, keyVersion: 1, secret: SECRET, method: "POST", path, body });
  const res = await fetch(agent.url + path, { method: "POST", headers: { "content-type": "application/json", ...headers }, body });
  if (!res.ok || !res.body) {
    process.stderr.write(`request failed: ${res.status} ${await res.text()}\n`);
    return undefined;
  }
  let first: number | undefined;
  let text = "";
  const decoder = new TextDecoder();
  for await (const chunk of res.body) {
    text += decoder.decode(chunk as Uint8Array, { stream: true });
    // The first event that carries generated text is the first token.
    if (first === undefined && /"text":"[^"]/.test(text)) first = performance.now();
  }
  return first === undefined ? undefined : (first - scheduledAt) * timeScale;
}

async function runLive(withDram: boolean, timeScale: number): Promise<Summary & { dramHitRate: number | null; failed: number; wallS: number }> {
  const edge = await sinkEdge();
  const agent = await startAgent(
    parseAgentConfig(
      {
        nodeId: NODE,
        region: "local",
        listen: { port: 0 },
        edge: { url: edge.url, nodeSecret: SECRET },
        queue: { maxWaiting: 100_000 },
        engines: [
          {
            kind: "sim",
            model: MODEL,
            timeScale,
            kvCapacityTokens: GPU_KV,
            modelShape: MODEL_SHAPE,
            eos: { kind: "never" },
            seed: SEED,
            maxConcurrency: 100_000,
          },
        ],
        ...(withDram ? { kvCache: { l1: { bytes: DRAM_BYTES, policy: "s3fifo" } } } : {}),
      },
      "live cross-check",
    ),
    { log: quiet },
  );
  const ttft: number[] = [];
  let failed = 0;
  const start = performance.now() + 200;
  const pending: Promise<void>[] = [];
  const t0 = performance.now();
  try {
    for (const req of offloadWorkload(workload)) {
      const at = start + req.arrivalMs / timeScale;
      const wait = at - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const measured = req.phase === "measure";
      pending.push(
        ttftOf(agent, req.promptTokens, at, timeScale).then(
          (t) => {
            if (!measured) return;
            if (t === undefined) failed++;
            else ttft.push(t);
          },
          (err: unknown) => {
            failed++;
            process.stderr.write(`request error: ${String(err)}\n`);
          },
        ),
      );
    }
    await Promise.all(pending);
    const l1 = agent.kvTiers?.report().tiers.find((t) => t.tier === "l1");
    return { ...summarize(ttft), dramHitRate: l1?.hitRate ?? null, failed, wallS: (performance.now() - t0) / 1000 };
  } finally {
    await agent.stop({ leaving: false });
    await edge.close();
  }
}

async function main(): Promise<void> {
  const rows: Record<string, unknown>[] = [];
  for (const c of configs) {
    const dramGiB = c.dramGiB ? DRAM_BYTES / GiB : undefined;
    const des = runOffloadPoint({ ...workload, config: { ...c, ...(dramGiB ? { dramGiB } : {}) }, kvCapacityTokens: GPU_KV, kvBytesPerToken: KV_BYTES_PER_TOKEN });
    process.stderr.write(`DES  ${c.name.padEnd(9)} mean ${((des.ttftMs.mean ?? Number.NaN) / 1000).toFixed(2)} s  p99 ${((des.ttftMs.p99 ?? Number.NaN) / 1000).toFixed(2)} s  (${des.requests} requests, DRAM share ${(des.hitRate.dram * 100).toFixed(1)} %)\n`);
    const live: Record<string, Awaited<ReturnType<typeof runLive>>> = {};
    for (const scale of TIME_SCALES) {
      const r = await runLive(c.dramGiB !== undefined, scale);
      live[String(scale)] = r;
      process.stderr.write(`live ${c.name.padEnd(9)} x${scale} mean ${(r.meanMs / 1000).toFixed(2)} s  p99 ${(r.p99Ms / 1000).toFixed(2)} s  (${r.requests} requests, ${r.failed} failed, ${r.wallS.toFixed(0)} s wall)\n`);
    }
    rows.push({
      config: c.name,
      title: c.title.replace(/\(\d+ GiB\)/, "(scaled)"),
      des: { requests: des.requests, meanMs: des.ttftMs.mean, p50Ms: des.ttftMs.p50, p99Ms: des.ttftMs.p99, gpuShare: des.hitRate.gpu, dramShare: des.hitRate.dram },
      live,
    });
  }
  const shape = offloadWorkloadShape(workload);
  const machine = { cpu: os.cpus()[0]?.model ?? "?", cores: os.cpus().length, node: process.version, kernel: `${os.type()} ${os.release()}`, loadAverageAtEnd: os.loadavg().map((x) => Number(x.toFixed(2))) };
  const settings = { qps: QPS, durationS: DURATION_MS / 1000, timeScales: TIME_SCALES, seed: SEED, gpuKvTokens: GPU_KV, dramBytes: DRAM_BYTES, dramTokens: DRAM_BYTES / KV_BYTES_PER_TOKEN, kvBytesPerToken: KV_BYTES_PER_TOKEN, gapS: GAP_MS / 1000, shape };
  mkdirSync(args.out as string, { recursive: true });
  writeFileSync(path.join(args.out as string, "results.json"), `${JSON.stringify({ generatedAt: new Date().toISOString(), machine, settings, rows }, null, 2)}\n`);
  const s = (ms: number) => (ms / 1000).toFixed(2);
  type Live = Record<string, { requests: number; meanMs: number; p99Ms: number; dramHitRate: number | null }>;
  type Des = { requests: number; meanMs: number; p99Ms: number; dramShare: number };
  const liveOf = (r: Record<string, unknown>) => r.live as Live;
  const desOf = (r: Record<string, unknown>) => r.des as Des;
  const [gpu, dram] = rows as [Record<string, unknown>, Record<string, unknown>];
  const md = [
    "# KV offloading: the discrete-event sweep cross-checked through a live agent",
    "",
    `Generated by \`npx tsx bench/kvcache/offload/live.ts --qps ${QPS} --duration-s ${DURATION_MS / 1000} --time-scale ${TIME_SCALES.join(",")} --seed ${SEED} --gpu-kv-tokens ${GPU_KV} --gap-s ${GAP_MS / 1000}\` on ${new Date().toISOString().slice(0, 10)}: ${machine.cpu} (${machine.cores} cores, shared with other work; load average at the end ${machine.loadAverageAtEnd.join(", ")}), Node ${machine.node}.`,
    "",
    `Setup: Workload-2 shape scaled down — GPU KV ${GPU_KV} tokens, ${shape.groups} prefixes of ${shape.prefixTokens} tokens (${shape.footprintFactor.toFixed(2)}× the GPU KV), suffix normal(200, 40), 16 output tokens; warm-up every prefix once at 2 QPS, ${GAP_MS / 1000} s gap, then ${DURATION_MS / 1000} s of Poisson arrivals at ${QPS} QPS (model time). DRAM tier ${(DRAM_BYTES / KV_BYTES_PER_TOKEN).toFixed(0)} tokens (${(DRAM_BYTES / 2 ** 20).toFixed(1)} MiB at ${KV_BYTES_PER_TOKEN} B/token; the full-scale 3.13× the GPU KV), S3-FIFO. The same requests in both modes. Live: one agent, the \`sim\` engine (H100 / Llama-3-8B calibration) at time scale ×N (model time N times faster than the wall clock), requests signed and streamed over HTTP on loopback; + DRAM is the agent's real L1 behind the emulator's lower-tier hooks. Live TTFT: wall time from the scheduled arrival to the first token × N.`,
    "",
    `| configuration | DES mean | ${TIME_SCALES.map((x) => `live ×${x} mean`).join(" | ")} | DES P99 | ${TIME_SCALES.map((x) => `live ×${x} P99`).join(" | ")} |`,
    `|---|---:|${TIME_SCALES.map(() => "---:|").join("")}---:|${TIME_SCALES.map(() => "---:|").join("")}`,
    ...rows.map((r) => `| ${String(r.title)} | ${s(desOf(r).meanMs)} s | ${TIME_SCALES.map((x) => `${s(liveOf(r)[String(x)]?.meanMs ?? Number.NaN)} s`).join(" | ")} | ${s(desOf(r).p99Ms)} s | ${TIME_SCALES.map((x) => `${s(liveOf(r)[String(x)]?.p99Ms ?? Number.NaN)} s`).join(" | ")} |`),
    "",
    `Requests measured: ${desOf(gpu).requests} in each run. DES: DRAM supplied ${(desOf(dram).dramShare * 100).toFixed(1)} % of the measured prompt tokens. Live: the agent's L1 answered ${TIME_SCALES.map((x) => `${((liveOf(dram)[String(x)]?.dramHitRate ?? Number.NaN) * 100).toFixed(1)} % (×${x})`).join(", ")} of its chunk gets in the last minute.`,
    "",
    `GPU-only ÷ + DRAM, mean TTFT: DES ${(desOf(gpu).meanMs / desOf(dram).meanMs).toFixed(1)}×; live ${TIME_SCALES.map((x) => `${((liveOf(gpu)[String(x)]?.meanMs ?? Number.NaN) / (liveOf(dram)[String(x)]?.meanMs ?? Number.NaN)).toFixed(1)}× (×${x})`).join(", ")}.`,
    "",
  ].join("\n");
  writeFileSync(path.join(args.out as string, "results.md"), md);
  process.stderr.write(md);
}

await main();
