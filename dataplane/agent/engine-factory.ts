/**
 * Builds the agent's engines, handing the agent's KV tiers to the engines that can use them:
 * `llamacpp` saves and restores sequence state through them, `sim` uses them as its lower tier.
 * Other engines (and every engine of an agent without `kvCache`) come from the registry as they are.
 */
import type { EngineAdapter } from "../engines/engine";
import { createEngine, engineLog, type EngineConfig } from "../engines/registry";
import { kvBytesPerToken } from "../engines/sim/config";
import type { AgentKvTiers } from "../kvcache/agent-tiers";
import { modelIdentityFromName } from "../kvcache/keys";
import { SimKvLowerTier } from "../kvcache/sim-tier";
import type { Logger } from "../lib/log";

export async function createAgentEngine(config: EngineConfig, log: Logger, kv?: AgentKvTiers): Promise<EngineAdapter> {
  if (!kv) return createEngine(config, log);
  switch (config.kind) {
    case "llamacpp": {
      const { createLlamaCppEngine } = await import("../engines/llamacpp/adapter");
      return createLlamaCppEngine(config, { kvTiers: kv.forEngine(config.model, log.child({ component: "kv-tiers" })), log: engineLog(config, log) });
    }
    case "sim": {
      const { createSimEngine } = await import("../engines/sim/adapter");
      const tiers = kv.forEngine(config.model, log.child({ component: "kv-tiers" }));
      const shape = config.modelShape;
      // The emulator has no file: its identity is its name and everything its block bytes depend on.
      const identity =
        tiers.configuredIdentity ?? modelIdentityFromName(`sim:${config.model}`, `L${shape.layers}.H${shape.kvHeads}.D${shape.headDim}.B${shape.dtypeBytes}.bs${config.blockSize}`);
      const lowerTier = new SimKvLowerTier(tiers, { identity, blockSize: config.blockSize, blockBytes: config.blockSize * kvBytesPerToken(shape) });
      return createSimEngine(config, { lowerTier, log: engineLog(config, log) });
    }
    default:
      return createEngine(config, log);
  }
}
