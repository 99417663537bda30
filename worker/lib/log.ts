/**
 * JSON-lines logging with the request id on every line, so one request can be followed from the
 * edge through the agent to the engine. Never pass secrets or prompt text here.
 */
export type LogLevel = "debug" | "info" | "warn" | "error";

export function log(level: LogLevel, event: string, fields: Record<string, unknown> = {}): void {
  const line = JSON.stringify({ ts: new Date().toISOString(), level, component: "edge", event, ...fields });
  if (level === "error") console.error(line);
  else if (level === "warn") console.warn(line);
  else console.log(line);
}
