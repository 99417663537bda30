/**
 * JSON-lines logs for the data plane, one object per line with the request id when there is one,
 * so a request can be followed edge → agent → engine. Secrets and prompt text are never logged.
 */
export type LogLevel = "debug" | "info" | "warn" | "error";
const order: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

let threshold: LogLevel = (process.env.SWITCHYARD_LOG_LEVEL as LogLevel | undefined) ?? "info";

export function setLogLevel(level: LogLevel): void {
  threshold = level;
}

export interface Logger {
  debug(event: string, fields?: Record<string, unknown>): void;
  info(event: string, fields?: Record<string, unknown>): void;
  warn(event: string, fields?: Record<string, unknown>): void;
  error(event: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

/** Where lines go: by default warnings and errors to stderr, the rest to stdout. */
export type LogSink = (line: string, level: LogLevel) => void;

const stdio: LogSink = (line, level) => (level === "error" || level === "warn" ? process.stderr : process.stdout).write(`${line}\n`);

export function createLogger(base: Record<string, unknown>, sink: LogSink = stdio): Logger {
  const emit = (level: LogLevel, event: string, fields?: Record<string, unknown>) => {
    if (order[level] < order[threshold]) return;
    sink(JSON.stringify({ ts: new Date().toISOString(), level, ...base, event, ...fields }), level);
  };
  return {
    debug: (e, f) => emit("debug", e, f),
    info: (e, f) => emit("info", e, f),
    warn: (e, f) => emit("warn", e, f),
    error: (e, f) => emit("error", e, f),
    child: (fields) => createLogger({ ...base, ...fields }, sink),
  };
}
