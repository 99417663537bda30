/**
 * Recipe `multi-turn`: the seed's Workload-3 — multi-turn sessions whose conversations together hold
 * about 8× the GPU KV capacity — against each KV configuration of `KV_SYSTEMS`. The client sends
 * each turn after the previous answer plus a think time, with the whole history, so a turn's prompt
 * repeats the previous context: prefix caching serves it when the context survived the think time,
 * a lower tier (issue 6) when it was evicted. Sessions carry `x-session-key` and use the
 * session-affinity strategy, so on several nodes a session stays on one.
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
import { KV_SYSTEMS, kvModelName } from "./kv-systems";

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
  // Tiny checks the mechanics (order, history, affinity, reuse), so its KV holds every session: how
  // much survives eviction would depend on how the sessions overlap in wall time on a busy machine.
  tiny: { nodes: 2, timeScale: 1, kvCapacityTokens: 16_384, turns: "uniform:2,4", promptLength: "lognormal:300,100,max=1000", outputLength: "16", thinkTimeMs: "exponential:300,max=1000", qps: 6, durationMs: 4_000 },
  small: { nodes: 1, timeScale: 1, kvCapacityTokens: 32_768, turns: "normal:3.55,2.89,max=10", promptLength: "lognormal:800,500,max=3000", outputLength: "32", thinkTimeMs: "exponential:2000,max=10000", qps: 4, durationMs: 60_000 },
  full: { nodes: 1, timeScale: 1, kvCapacityTokens: 131_072, turns: "normal:3.55,2.89,max=12", promptLength: "lognormal:800,500,max=3000", outputLength: "64", thinkTimeMs: "exponential:5000,max=30000", qps: 2.3, durationMs: 600_000 },
};

export const multiTurnRecipe: Recipe = {
  name: "multi-turn",
  title: "Multi-turn sessions (Workload-3, ≈8× KV)",
  description:
    "Multi-turn sessions (history replayed, think time between turns) whose contexts add up to about 8× the GPU KV capacity, against each KV configuration (no prefix cache, GPU prefix cache; tiers plug into kv-systems.ts). Measures TTFT mean/P99 and cache hit rate.",
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
    // The GPU configurations only: the tier systems are measured by kv-offload so far.
    const systems = KV_SYSTEMS.filter((k) => !k.tiers).map((k) => ({ system: k, model: kvModelName(k), engine: k.engine(p.kvCapacityTokens) }));
    // A long session's history outgrows the emulator's default 8k context (Llama-3.1 serves 128k):
    // allow what the KV holds, so its late turns are measured rather than refused with a 400.
    const maxModelLen = Math.max(8192, p.kvCapacityTokens);
    const bench = await startBenchStack({ nodes: p.nodes, timeScale: p.timeScale, engine: { kvCapacityTokens: p.kvCapacityTokens, maxModelLen }, systems: systems.map((x) => ({ model: x.model, engine: x.engine })), log: s.log });
    let footprint = 0;
    try {
      await warmUp(bench.stack, systems.map((x) => x.model));
      // Session starts are Poisson; each dataset session is used once (sequential order).
      const built = buildWorkload({ pattern: { kind: "poisson", rate: sessionRate }, durationMs: p.durationMs, seed: seed + 7, datasets: new Map([["", sessions]]), order: "sequential", meta: { recipe: "multi-turn" } });
      // Unique tokens the sessions put in KV: every prompt and answer once (the history re-sends them).
      for (const e of built.entries) for (const r of e.requests) footprint += (r.prompt_length ?? 0) + (r.output_length ?? 0);
      const workload = await s.workload("workload-3", { ...built, header: { ...built.header, meta: { ...built.header.meta, qps: p.qps, footprint_tokens: footprint, footprint_factor: footprint / (p.kvCapacityTokens * p.nodes) } } });
      for (const x of systems) {
        await s.run({ name: `workload-3-${x.system.name}`, stack: bench, workload, model: x.model, system: x.system.name, workloadLabel: "Workload-3 (multi-turn)", qps: p.qps, timeScale: p.timeScale, routingStrategy: "session-affinity" });
      }
    } finally {
      await bench.stop();
    }
    return s.finish({ ...p, seed, max_model_len: maxModelLen, session_rate: sessionRate, footprint_tokens: footprint, footprint_factor: footprint / (p.kvCapacityTokens * p.nodes), systems: systems.map((x) => ({ name: x.system.name, model: x.model, engine: x.engine })) }, { baseline: "no-prefix-cache" });
  },
};

if (isMain(import.meta.url)) await recipeMain(multiTurnRecipe);
