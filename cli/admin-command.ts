/**
 * What every admin command shares: the connection options (--edge-url, --admin-token, --json),
 * the client built from them, exit status 2 for usage errors, help examples, and cheap local
 * validation of option values (numbers, dates, URLs) with messages naming the option.
 */
import { type Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { AdminApiError, AdminClient, DEFAULT_EDGE_URL, resolveConnection } from "./admin-client";
import { type Output, stdio } from "./output";

export interface AdminContext {
  client: AdminClient;
  /** --json: print the API's JSON as is. */
  json: boolean;
  out: Output;
}

interface ConnectionOpts {
  edgeUrl?: string;
  adminToken?: string;
  json?: boolean;
}

const CONNECTION_GROUP = "Connection options:";

/** Adds --edge-url, --admin-token and --json to a leaf admin command. */
export function withAdminOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option("--edge-url <url>", "edge base URL")
        .env("SWITCHYARD_EDGE_URL")
        .default(DEFAULT_EDGE_URL)
        .helpGroup(CONNECTION_GROUP),
    )
    .addOption(new Option("--admin-token <token>", "admin token (the edge's ADMIN_TOKEN secret); required").env("SWITCHYARD_ADMIN_TOKEN").helpGroup(CONNECTION_GROUP))
    .addOption(new Option("--json", "print the API's JSON response as is").helpGroup(CONNECTION_GROUP));
}

/** The client and output mode of an admin command, from its options (throws CliError when unusable). */
export function adminContext(cmd: Command, out: Output = stdio): AdminContext {
  const opts = cmd.opts<ConnectionOpts>();
  return { client: new AdminClient(resolveConnection(opts)), json: opts.json === true, out };
}

/**
 * Creates the admin command `parent <nameAndArgs>` with examples in its help; the connection
 * options are added by {@link finishAdminCommands} once its own options are in (so they list last).
 */
export function adminCommand(parent: Command, nameAndArgs: string, description: string, examples: string[], notes?: string): Command {
  const cmd = parent.command(nameAndArgs).description(description);
  adminLeaves.add(cmd);
  return withExamples(cmd, examples, notes);
}

const adminLeaves = new WeakSet<Command>();

export function withExamples(cmd: Command, examples: string[], notes?: string): Command {
  return cmd.addHelpText("after", `${notes ? `\n${notes.trim()}\n` : ""}\nExamples:\n${examples.map((e) => `  $ ${e}`).join("\n")}\n`);
}

/**
 * Finishes an admin command tree: connection options on every command made by
 * {@link adminCommand}; usage errors (unknown option, missing argument, invalid value, a group
 * without a subcommand) exit 2 like every other user error, while help still exits 0.
 */
export function finishAdminCommands(cmd: Command): void {
  if (adminLeaves.has(cmd)) withAdminOptions(cmd);
  // A one-line pointer instead of the whole help after a usage error.
  cmd.showHelpAfterError(`(run '${commandPath(cmd)} --help' for usage and examples)`);
  cmd.exitOverride((err: CommanderError) => {
    if (err.exitCode === 0 || err.code === "commander.executeSubCommandAsync") throw err;
    throw new CommanderError(2, err.code, err.message);
  });
  for (const sub of cmd.commands) finishAdminCommands(sub);
}

/**
 * Names the CLI option behind an API error's `param` (`expires_at` → `--expires-at`), so the
 * operator sees which flag to fix. `hints` maps the request body's top-level fields.
 */
export async function naming<T>(call: Promise<T>, hints: Record<string, string>): Promise<T> {
  try {
    return await call;
  } catch (err) {
    if (err instanceof AdminApiError && err.param) {
      const field = err.param.split(/[.[]/)[0] ?? err.param;
      const option = Object.hasOwn(hints, field) ? hints[field] : undefined;
      if (option) throw err.naming(option);
    }
    throw err;
  }
}

function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) names.unshift(c.name());
  return names.join(" ");
}

// --- option value parsers (commander reports their errors naming the option) ---

/** Collects a repeatable option; each value may also be a comma-separated list. */
export function collect(value: string, previous: string[] | undefined): string[] {
  const items = value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (items.length === 0) throw new InvalidArgumentError("must not be empty");
  return [...(previous ?? []), ...items];
}

export function positiveNumber(max: number): (value: string) => number {
  return (value) => {
    const n = Number(value.trim());
    if (value.trim() === "" || !Number.isFinite(n) || n <= 0) throw new InvalidArgumentError("must be a positive number");
    if (n > max) throw new InvalidArgumentError(`must be at most ${max}`);
    return n;
  };
}

/**
 * An ISO 8601 date (`2026-12-31`, taken as midnight UTC) or date-time with `Z` or an offset;
 * returned normalized to UTC (`2026-12-31T00:00:00.000Z`).
 */
export function isoDateTime(value: string): string {
  const v = value.trim();
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2}))?$/i.exec(v);
  if (!m) {
    if (/^\d{4}-\d{2}-\d{2}T[\d:.]+$/.test(v)) throw new InvalidArgumentError("needs a time zone: end it with Z (UTC) or an offset such as +02:00");
    throw new InvalidArgumentError("must be an ISO 8601 date or date-time, e.g. 2026-12-31 or 2026-12-31T23:59:59Z");
  }
  const [year, month, day, hour, minute, second] = [1, 2, 3, 4, 5, 6].map((i) => Number(m[i] ?? 0)) as [number, number, number, number, number, number];
  // Date.parse rolls 2026-02-31 over into March; refuse impossible fields instead.
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth || hour > 23 || minute > 59 || second > 59) throw new InvalidArgumentError("is not a valid date");
  const t = Date.parse(m[4] === undefined ? `${v}T00:00:00Z` : v);
  if (Number.isNaN(t)) throw new InvalidArgumentError("is not a valid date");
  return new Date(t).toISOString();
}

/**
 * A positive whole number, or `none` to lift the limit ({@link orNull} turns it into the API's
 * null: commander does not keep a null an option parser returns).
 */
export function limitOrNone(max: number): (value: string) => number | "none" {
  return (value) => {
    const v = value.trim().toLowerCase();
    if (v === "none" || v === "unlimited") return "none";
    const n = Number(v.replace(/_/g, ""));
    if (v === "" || !Number.isInteger(n) || n <= 0) throw new InvalidArgumentError("must be a positive whole number, or 'none' to lift the limit");
    if (n > max) throw new InvalidArgumentError(`must be at most ${max}`);
    return n;
  };
}

export function orNull(v: number | "none"): number | null {
  return v === "none" ? null : v;
}

export function httpUrl(value: string): string {
  let u: URL;
  try {
    u = new URL(value.trim());
  } catch {
    throw new InvalidArgumentError("must be a URL, e.g. http://10.0.0.5:8801");
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new InvalidArgumentError("must be an http:// or https:// URL");
  return value.trim();
}
