/**
 * One point of the offloading study: a KV configuration at one QPS and seed, in discrete-event mode
 * (N emulated H100 / Llama-3-8B engines on one virtual clock, dataplane/engines/sim/des.ts), with the
 * tiers of ./tiers.ts under each engine. Reports TTFT of the measured phase and where its prompt
 * tokens came from (GPU prefix cache, DRAM, remote, computed).
 *
 * @example
 * ```ts
 * const r = runOffloadPoint({ config: OFFLOAD_CONFIGS[2]!, qps: 6, durationMs: 300_000, seed: 1 });
 * console.log(r.ttftMs.mean, r.tokens.dram);
 * ```
 */
import { h100Llama3Calibration } from "../../../dataplane/engines/sim/calibration";
import { CostModel } from "../../../dataplane/engines/sim/cost-model";
import { H100_KV_CAPACITY_TOKENS, leastLoaded, runClusterStudy } from "../../../dataplane/engines/sim/des";
import type { EngineCore } from "../../../dataplane/engines/sim/engine-core";
import { summarizeValues, type Stats } from "../../lib/stats";
import { DramTierModel, GiB, LINKS, type LinkName, RemoteTierModel, TierStack } from "./tiers";
import { offloadWorkload, offloadWorkloadShape, type OffloadRequest, type OffloadWorkloadOptions, type OffloadWorkloadShape } from "./workload";

/** Llama-3-8B, bf16: K+V × 32 layers × 8 KV heads × 128 × 2 B (reference/kvcache.md §7). */
export const KV_BYTES_PER_TOKEN = 131_072;
export const BLOCK_SIZE = 16;

export interface OffloadConfig {
  name: string;
  title: string;
  prefixCaching: boolean;
  /** DRAM tier per engine, GiB. */
  dramGiB?: number;
  /** Remote tier shared by the engines, GiB, and the engines' link to it. */
  remoteGiB?: number;
  link?: LinkName;
}

/**
 * DRAM per engine: 160 GiB. An 8-GPU H100 server has ≈ 2 TiB of host memory (DGX H100 2 TB; AWS
 * p5.48xlarge 2 TiB; Azure ND H100 v5 1.9 TB), ≈ 250 GB per GPU; 160 GiB leaves the rest to the OS,
 * the engine process and its pinned staging buffers. That is 1.31 M tokens of Llama-3-8B KV, 3.1×
 * one GPU's KV capacity: together GPU and DRAM hold ≈ half of an 8× working set.
 */
export const DEFAULT_DRAM_GIB = 160;
/**
 * Remote tier: 1 TiB (e.g. 8 cache servers × 128 GiB) — more than the whole working set (≈ 410 GiB
 * at 8× footprint), the role L2 plays in AIBrix's Workload-2 (InfiniStore).
 */
export const DEFAULT_REMOTE_GIB = 1024;

export const OFFLOAD_CONFIGS: OffloadConfig[] = [
  { name: "no-prefix-cache", title: "no prefix cache", prefixCaching: false },
  { name: "gpu", title: "GPU prefix cache only", prefixCaching: true },
  { name: "gpu+dram", title: `+ DRAM tier (${DEFAULT_DRAM_GIB} GiB)`, prefixCaching: true, dramGiB: DEFAULT_DRAM_GIB },
  { name: "gpu+dram+remote", title: `+ DRAM (${DEFAULT_DRAM_GIB} GiB) and remote (${DEFAULT_REMOTE_GIB} GiB, ${LINKS["rdma-100g"].name})`, prefixCaching: true, dramGiB: DEFAULT_DRAM_GIB, remoteGiB: DEFAULT_REMOTE_GIB, link: "rdma-100g" },
];

export interface OffloadPointOptions extends Omit<OffloadWorkloadOptions, "kvCapacityTokens"> {
  config: OffloadConfig;
  /** Engines (one per GPU); requests go to the least loaded. Default 1. */
  engines?: number;
  /** GPU KV per engine. Default the H100 figure (419,152 tokens). */
  kvCapacityTokens?: number;
  /**
   * KV bytes per token: sizes the tiers' blocks and the host→GPU cost of a load. Default
   * Llama-3-8B's. The live cross-check (live.ts) uses a small model shape to keep its L1 small.
   */
  kvBytesPerToken?: number;
}

/** Prompt tokens of the measured phase by where their KV came from. */
export interface TokenSources {
  prompt: number;
  gpu: number;
  dram: number;
  remote: number;
  computed: number;
}

export interface OffloadPointResult {
  config: string;
  qps: number;
  seed: number;
  requests: number;
  /** Measured requests that never finished (0 unless the engine got stuck: a bug). */
  unfinished: number;
  ttftMs: Stats;
  e2eMs: Stats;
  tokens: TokenSources;
  /** Shares of `tokens.prompt`. */
  hitRate: { gpu: number; dram: number; remote: number; total: number };
  preemptions: number;
  /** Fraction of the measured phase (until its last request finished) the NIC spent receiving / sending. */
  nicRxBusy: number;
  nicTxBusy: number;
  /** Fraction of the measured phase the host→GPU link spent copying DRAM hits. */
  h2dBusy: number;
  droppedSpills: number;
  /** Arrivals of the measured phase over its model-time length; throughput = completed / time to drain. */
  drainMs: number;
  wallMs: number;
  shape: OffloadWorkloadShape;
}

export function runOffloadPoint(opts: OffloadPointOptions): OffloadPointResult {
  const c = opts.config;
  const nodes = opts.engines ?? 1;
  const kvCapacityTokens = opts.kvCapacityTokens ?? H100_KV_CAPACITY_TOKENS;
  const workloadOptions: OffloadWorkloadOptions = { ...opts, kvCapacityTokens: kvCapacityTokens * nodes, blockSize: BLOCK_SIZE };
  const shape = offloadWorkloadShape(workloadOptions);
  const kvBytesPerToken = opts.kvBytesPerToken ?? KV_BYTES_PER_TOKEN;
  const blockBytes = BLOCK_SIZE * kvBytesPerToken;
  const remote = c.remoteGiB ? new RemoteTierModel({ capacityBytes: c.remoteGiB * GiB, blockBytes }) : undefined;
  const stacks: TierStack[] = [];
  const cost = new CostModel(h100Llama3Calibration());
  const h2dCostMs = (bytes: number) => cost.h2dMs(bytes);

  const ttft: number[] = [];
  const e2e: number[] = [];
  let promptTokens = 0;
  let lastFinish = 0;
  let measureStart = Number.POSITIVE_INFINITY;
  let measuredArrivals = 0;
  let engineRefs: readonly EngineCore[] = [];
  const before = { gpu: 0, queries: 0, dram: 0, remote: 0, preemptions: 0, rx: 0, tx: 0, h2d: 0, dropped: 0 };
  const tally = () => {
    const t = { gpu: 0, queries: 0, dram: 0, remote: 0, preemptions: 0, rx: 0, tx: 0, h2d: 0, dropped: 0 };
    for (const e of engineRefs) {
      t.gpu += e.metrics.prefixCacheHits;
      t.queries += e.metrics.prefixCacheQueries;
      t.preemptions += e.metrics.preemptions;
    }
    for (const s of stacks) {
      t.dram += s.counters.dramHitBlocks * BLOCK_SIZE;
      t.remote += s.counters.remoteHitBlocks * BLOCK_SIZE;
      t.rx += s.counters.rxBusyMs;
      t.tx += s.counters.txBusyMs;
      t.h2d += s.counters.h2dBusyMs;
      t.dropped += s.counters.droppedSpills;
    }
    return t;
  };

  const result = runClusterStudy<OffloadRequest>({
    nodes,
    requests: offloadWorkload(workloadOptions),
    engine: (_i, clock) => {
      const settings = { kvCapacityTokens, blockSize: BLOCK_SIZE, kvBytesPerToken, enablePrefixCaching: c.prefixCaching, seed: opts.seed };
      if (!c.dramGiB && !remote) return settings;
      const stack = new TierStack({
        now: () => clock.now(),
        dram: c.dramGiB ? new DramTierModel({ capacityBytes: c.dramGiB * GiB, blockBytes }) : undefined,
        remote,
        link: c.link ? LINKS[c.link] : undefined,
        h2dCostMs,
      });
      stacks.push(stack);
      return { ...settings, lowerTier: stack };
    },
    route: (req, engines, now) => {
      engineRefs = engines;
      if (req.phase === "measure") measuredArrivals++;
      if (req.phase === "measure" && !Number.isFinite(measureStart)) {
        measureStart = now;
        Object.assign(before, tally());
      }
      return engines.length === 1 ? 0 : leastLoaded(engines);
    },
    onRecord: (rec, req) => {
      if (req.phase !== "measure") return;
      promptTokens += rec.promptTokens;
      lastFinish = Math.max(lastFinish, rec.finishedMs);
      if (rec.firstTokenMs >= 0) ttft.push(rec.firstTokenMs - rec.arrivalMs);
      e2e.push(rec.finishedMs - rec.arrivalMs);
    },
  });

  const after = tally();
  const gpu = after.gpu - before.gpu;
  const dram = after.dram - before.dram;
  const rem = after.remote - before.remote;
  const computed = Math.max(0, promptTokens - gpu - dram - rem);
  const share = (x: number) => (promptTokens > 0 ? x / promptTokens : 0);
  // Links stay busy while the backlog of the measured phase drains: measure use over that whole span.
  const drainMs = Number.isFinite(measureStart) ? lastFinish - measureStart : 0;
  const measuredMs = Math.max(drainMs, Number.isFinite(measureStart) ? opts.durationMs : 0);
  return {
    config: c.name,
    qps: opts.qps,
    seed: opts.seed,
    requests: ttft.length,
    unfinished: measuredArrivals - e2e.length,
    ttftMs: summarizeValues(ttft),
    e2eMs: summarizeValues(e2e),
    tokens: { prompt: promptTokens, gpu, dram, remote: rem, computed },
    hitRate: { gpu: share(gpu), dram: share(dram), remote: share(rem), total: share(gpu + dram + rem) },
    preemptions: after.preemptions - before.preemptions,
    nicRxBusy: measuredMs > 0 ? (after.rx - before.rx) / (measuredMs * nodes) : 0,
    nicTxBusy: measuredMs > 0 ? (after.tx - before.tx) / (measuredMs * nodes) : 0,
    h2dBusy: measuredMs > 0 ? (after.h2d - before.h2d) / (measuredMs * nodes) : 0,
    droppedSpills: after.dropped - before.dropped,
    drainMs,
    wallMs: result.wallMs,
    shape,
  };
}
