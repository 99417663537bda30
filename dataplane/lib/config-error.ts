import type { z } from "zod";
import { paramPath } from "../../protocol/openai-request";

/** A configuration problem, with a message naming the field and where the config came from. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** Validates `value` with `schema`; on failure throws ConfigError listing each bad field. */
export function parseConfig<S extends z.ZodType>(schema: S, value: unknown, source: string): z.infer<S> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const lines = parsed.error.issues.slice(0, 10).map((i) => `  ${i.path.length > 0 ? paramPath(i.path) : "(root)"}: ${i.message}`);
  throw new ConfigError(`invalid configuration in ${source}:\n${lines.join("\n")}`);
}
