/**
 * The production routing code (worker/pool/pool-core.ts) as a discrete-event route function:
 * PoolCore runs on the study's virtual clock, hears a heartbeat from every engine each interval
 * (its live load, KV use and eviction counter, exactly what agents report), counts requests at
 * decision time and releases them when they finish with the engine's real token counts.
 */
import type { EngineCore } from "../../dataplane/engines/sim/engine-core";
import type { RouteFn, StudyRecord } from "../../dataplane/engines/sim/des";
import { PoolCore } from "../../worker/pool/pool-core";
import { parseStrategySpec } from "../../worker/routing/spec";
import type { RoutedRequest } from "./workloads";

export interface PoolRouter {
  route: RouteFn<RoutedRequest>;
  onRecord: (record: StudyRecord, req: RoutedRequest) => void;
  core: PoolCore;
  /** Decisions that found a prefix match, and blocks matched in total. */
  stats: { decisions: number; matchedDecisions: number; matchedBlocks: number; totalBlocks: number };
}

const HEARTBEAT_MS = 2_000;
/**
 * Edge blocks are 64 tokens (≈256 characters, protocol/prefix-hash.ts); engine block hashes are
 * chained over 16 tokens, so every fourth one names a 64-token prefix uniquely.
 */
function edgeBlocks(hashes: Float64Array): number[] {
  const out: number[] = [];
  for (let i = 3; i < hashes.length; i += 4) out.push(hashes[i] as number);
  return out;
}

export function poolRouter(strategy: string, seed = 11, maxConcurrency = 512): PoolRouter {
  const spec = parseStrategySpec(strategy);
  if (!spec.ok) throw new Error(spec.message);
  let now = 0;
  let s = seed >>> 0;
  const random = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const core = new PoolCore({ staleAfterMs: 3 * HEARTBEAT_MS + 1_000, now: () => now, random });
  let lastBeat = Number.NEGATIVE_INFINITY;
  const stats = { decisions: 0, matchedDecisions: 0, matchedBlocks: 0, totalBlocks: 0 };

  const beat = (engines: readonly EngineCore[]) => {
    engines.forEach((e, i) => {
      const load = e.load();
      core.heartbeat({
        nodeId: `node-${i}`,
        region: "local",
        url: `sim://${i}`,
        drained: false,
        sentAt: now,
        leaving: false,
        engines: [{ model: "m", engine: "sim", healthy: true, maxConcurrency, ...load }],
      });
    });
  };

  return {
    core,
    stats,
    route(req, engines, at) {
      now = at;
      if (at - lastBeat >= HEARTBEAT_MS) {
        beat(engines);
        lastBeat = at;
      }
      const decision = core.route({
        requestId: req.id,
        tenantId: "t",
        model: "m",
        strategies: spec.strategies,
        prompt: { blocks: edgeBlocks(req.blockHashes), tokens: req.promptTokens.length, maxTokens: req.maxTokens },
        sessionKey: req.sessionKey,
      });
      if (!decision.ok) throw new Error(`no route at ${at}: ${decision.reason}`);
      stats.decisions++;
      stats.totalBlocks += decision.prefixBlocks.total;
      stats.matchedBlocks += decision.prefixBlocks.matched;
      if (decision.prefixBlocks.matched > 0) stats.matchedDecisions++;
      return Number(decision.nodeId.slice("node-".length));
    },
    onRecord(record, req) {
      now = record.finishedMs;
      core.release({
        requestId: req.id,
        outcome: "completed",
        usage: { promptTokens: record.promptTokens, completionTokens: record.outputTokens, cachedTokens: record.cachedTokens, estimated: false },
      });
    },
  };
}
