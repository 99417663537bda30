/**
 * Engine kinds the agent can run, by the `kind` in its config. A new engine is one folder with a
 * config schema and an adapter, plus one entry here. Adapters load lazily so an agent that never
 * runs llama.cpp never loads its native binary.
 */
import { z } from "zod";
import type { Logger } from "../lib/log";
import type { EngineAdapter } from "./engine";
import { llamaCppEngineConfigSchema } from "./llamacpp/config";
import { openAIEngineConfigSchema } from "./openai/config";
import { simEngineConfigSchema } from "./sim/config";

export const engineConfigSchema = z.discriminatedUnion("kind", [llamaCppEngineConfigSchema, openAIEngineConfigSchema, simEngineConfigSchema]);
export type EngineConfig = z.infer<typeof engineConfigSchema>;
export type EngineConfigInput = z.input<typeof engineConfigSchema>;

/** The engine's own log lines: `component: "engine"`, so they are told apart from the agent's. */
export function engineLog(config: EngineConfig, log: Logger): Logger {
  return log.child({ component: "engine", engine: config.kind, model: config.model });
}

export async function createEngine(config: EngineConfig, log: Logger): Promise<EngineAdapter> {
  switch (config.kind) {
    case "llamacpp": {
      const { createLlamaCppEngine } = await import("./llamacpp/adapter");
      return createLlamaCppEngine(config, { log: engineLog(config, log) });
    }
    case "openai": {
      const { createOpenAIEngine } = await import("./openai/adapter");
      return createOpenAIEngine(config, log);
    }
    case "sim": {
      const { createSimEngine } = await import("./sim/adapter");
      return createSimEngine(config, { log: engineLog(config, log) });
    }
  }
}
