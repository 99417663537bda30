/**
 * The setting the fairness studies share (run.ts, node-limit.ts, engine-priority.ts), so their
 * tables line up: 4 emulated H100 nodes, one heavy tenant at 10× the rate of three light ones,
 * prompts around 1,000 tokens and answers around 200, a 30 s wait bound, a minute of warm-up,
 * and either the full run (3 seeds × 600 s of model time) or `--quick` (1 seed × 120 s).
 */
export const quick = process.argv.includes("--quick");
export const DURATION_MS = quick ? 120_000 : 600_000;
export const WARMUP_MS = 60_000;
export const SEEDS = quick ? [1] : [1, 2, 3];
export const NODES = 4;
export const NODE_LIMIT = 24;
export const LIGHT = ["light-1", "light-2", "light-3"];
export const SHAPE = { promptMedian: 1_000, outputMedian: 200 };
export const MAX_WAIT_MS = 30_000;
