/**
 * Files an agent config points at (a GGUF model, an emulator calibration), checked before any engine
 * starts: a path that cannot be read stops the agent with a message naming the field, instead of an
 * engine's stack trace from deep inside its loader.
 */
import { accessSync, constants, statSync } from "node:fs";
import { ConfigError } from "../lib/config-error";
import type { AgentConfig } from "./config";

function unreadable(path: string): string | undefined {
  try {
    accessSync(path, constants.R_OK);
    return statSync(path).isFile() ? undefined : "is not a file";
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "ENOENT" ? "does not exist" : "cannot be read";
  }
}

export function checkConfigFiles(config: AgentConfig, source: string): void {
  const problems: string[] = [];
  config.engines.forEach((engine, i) => {
    const files: Array<[string, string | undefined]> = [
      ["modelPath", engine.kind === "llamacpp" ? engine.modelPath : undefined],
      ["calibrationPath", engine.kind === "sim" ? engine.calibrationPath : undefined],
    ];
    for (const [field, path] of files) {
      const why = path === undefined ? undefined : unreadable(path);
      if (why) problems.push(`  engines[${i}].${field}: '${path}' ${why}`);
    }
  });
  if (problems.length > 0) throw new ConfigError(`invalid configuration in ${source}:\n${problems.join("\n")}`);
}
