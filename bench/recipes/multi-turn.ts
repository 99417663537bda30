/**
 * Recipe `multi-turn`: the seed's Workload-3 — multi-turn sessions whose histories outgrow the GPU
 * KV capacity — against each KV configuration of `KV_SYSTEMS`: no prefix cache, GPU prefix cache,
 * + DRAM tier (the agent's L1) and + DRAM + remote (L1 and an L2 cache server). The client sends
 * each turn after the previous answer plus a think time, with the whole history, so a turn's prompt
 * repeats the previous context: the GPU prefix cache serves it when the context survived the think
 * time, a lower tier when the GPU evicted it meanwhile. Sessions carry `x-session-key` and use the
 * session-affinity strategy, so on several nodes a session stays on one.
 *
 * Sizing: what decides where a history is found is how many tokens the node took in between two turns
 * of a session (its rate × the think time) against each tier's size. A scale's GPU KV is a few times
 * smaller than that at the mean think time, and just holds the longest session (so none is refused
 * for length); think times are exponential, so some histories stay on the GPU, some in DRAM (3.13×,
 * where the agent's S3-FIFO keeps a block it has not seen twice only briefly) and the rest reach the
 * remote tier (20×, which holds every session of the run). tiers.md has the tokens each tier supplied.
 *
 * @example
 * ```sh
 * npx tsx bench/recipes/multi-turn.ts --scale small
 * ```
 */
import { toEntry } from "../datasets/format";
import { generateMultiTurn } from "../datasets/multi-turn";
import { meanOf, parseDistribution } from "../lib/distribution";
import { buildWorkload } from "../workloads/build";
import { isMain, type Recipe, type RecipeOptions, RecipeSession, type Scale, recipeMain, startBenchStack, warmUp } from "./common";
import { benchSystems, KV_BYTES_PER_MODEL_TOKEN, KV_MODEL_SHAPE, describeSystems, kvSystemsAt, type TierRow, withTierCounts, writeTierTable } from "./kv-systems";

interface MultiTurnScale {
  nodes: number;
  timeScale: number;
  kvCapacityTokens: number;
  turns: string;
  promptLength: string;
  outputLength: string;
  thinkTimeMs: string;
  /** Requests per second (sessions start at qps / mean turns). */
  qps: number;
  durationMs: number;
}

export const MULTI_TURN_SCALES: Record<Scale, MultiTurnScale> = {
  // Two nodes at tiny: session-affinity then has a choice to make, so CI sees sessions kept on one node.
  // Its KV (1,024 tokens a node) holds the longest session (3 turns of ≤ 300 + 16 tokens) and little more,
  // so the GPU loses most histories within a think time and the tiers are exercised in a few seconds.
  tiny: { nodes: 2, timeScale: 1, kvCapacityTokens: 1_024, turns: "uniform:2,3", promptLength: "lognormal:200,60,max=300", outputLength: "16", thinkTimeMs: "exponential:1500,max=3000", qps: 12, durationMs: 3_000 },
  small: { nodes: 1, timeScale: 1, kvCapacityTokens: 12_288, turns: "normal:3.55,2.89,max=8", promptLength: "lognormal:600,300,max=1200", outputLength: "32", thinkTimeMs: "exponential:10000,max=30000", qps: 4, durationMs: 55_000 },
  full: { nodes: 1, timeScale: 1, kvCapacityTokens: 65_536, turns: "normal:3.55,2.89,max=12", promptLength: "lognormal:800,500,max=3000", outputLength: "64", thinkTimeMs: "exponential:30000,max=90000", qps: 2.3, durationMs: 600_000 },
};

export const multiTurnRecipe: Recipe = {
  name: "multi-turn",
  title: "Multi-turn sessions (Workload-3, history beyond GPU KV)",
  description:
    "Multi-turn sessions (history replayed, think time between turns) whose histories outgrow the GPU KV capacity, against each KV configuration (no prefix cache, GPU prefix cache, + DRAM tier, + DRAM + remote cache server). Measures TTFT mean/P99, cache hit rate, and the tokens the tiers supplied.",
  async run(opts: RecipeOptions) {
    const p = MULTI_TURN_SCALES[opts.scale];
    const s = new RecipeSession(multiTurnRecipe, opts);
    const seed = opts.seed ?? 1;
    const turns = parseDistribution(p.turns);
    const promptLength = parseDistribution(p.promptLength);
    const outputLength = parseDistribution(p.outputLength);
    const meanTurns = Math.max(1, meanOf(turns));
    const sessionRate = p.qps / meanTurns;
    const expectedSessions = Math.ceil((sessionRate * p.durationMs) / 1000);
    const sessions = generateMultiTurn({ sessions: Math.max(4, Math.ceil(expectedSessions * 1.3)), turns, promptLength, outputLength, thinkTimeMs: parseDistribution(p.thinkTimeMs), seed }).map((r, i) => toEntry(r, "multi-turn", i + 1));
    const systems = kvSystemsAt(p.kvCapacityTokens);
    // A long session's history outgrows the emulator's default 8k context (Llama-3.1 serves 128k):
    // allow what the KV holds, so its late turns are measured rather than refused with a 400.
    const maxModelLen = Math.max(8192, p.kvCapacityTokens);
    const bench = await startBenchStack({ nodes: p.nodes, timeScale: p.timeScale, engine: { kvCapacityTokens: p.kvCapacityTokens, maxModelLen, modelShape: KV_MODEL_SHAPE }, systems: benchSystems(systems), log: s.log });
    let footprint = 0;
    let longest = 0;
    const tierRows: TierRow[] = [];
    try {
      await warmUp(bench.stack, systems.map((x) => x.model));
      // Session starts are Poisson; each dataset session is used once (sequential order).
      const built = buildWorkload({ pattern: { kind: "poisson", rate: sessionRate }, durationMs: p.durationMs, seed: seed + 7, datasets: new Map([["", sessions]]), order: "sequential", meta: { recipe: "multi-turn" } });
      // Unique tokens the sessions put in KV: every prompt and answer once (the history re-sends them).
      const perSession = new Map<string, number>();
      for (const e of built.entries) {
        for (const r of e.requests) {
          const tokens = (r.prompt_length ?? 0) + (r.output_length ?? 0);
          footprint += tokens;
          const id = String(r.session_id ?? "");
          perSession.set(id, (perSession.get(id) ?? 0) + tokens);
        }
      }
      longest = Math.max(0, ...perSession.values());
      const workload = await s.workload("workload-3", { ...built, header: { ...built.header, meta: { ...built.header.meta, qps: p.qps, footprint_tokens: footprint, footprint_factor: footprint / (p.kvCapacityTokens * p.nodes) } } });
      for (const x of systems) {
        await withTierCounts(bench, x, "Workload-3 (multi-turn)", tierRows, (beforeMeasure) =>
          s.run({ name: `workload-3-${x.system.name}`, stack: bench, workload, beforeMeasure, model: x.model, system: x.system.name, workloadLabel: "Workload-3 (multi-turn)", qps: p.qps, timeScale: p.timeScale, routingStrategy: "session-affinity" }),
        );
      }
    } finally {
      await bench.stop();
    }
    writeTierTable(s.outDir, tierRows);
    return s.finish(
      {
        ...p,
        seed,
        max_model_len: maxModelLen,
        model_shape: KV_MODEL_SHAPE,
        kv_bytes_per_token: KV_BYTES_PER_MODEL_TOKEN,
        session_rate: sessionRate,
        footprint_tokens: footprint,
        footprint_factor: footprint / (p.kvCapacityTokens * p.nodes),
        // Dataset tokens of the longest session (prompts and answers; the chat template adds a few per turn).
        longest_session_tokens: longest,
        systems: describeSystems(systems, bench),
        tier_tokens: tierRows,
      },
      { baseline: "no-prefix-cache" },
    );
  },
};

if (isMain(import.meta.url)) await recipeMain(multiTurnRecipe);
