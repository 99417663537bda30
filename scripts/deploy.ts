/**
 * `npm run deploy`: ships the edge Worker with wrangler, in the order a release needs —
 *   1. D1 migrations on the remote database (`wrangler d1 migrations apply <db> --remote`), so the
 *      new code never runs against an old schema;
 *   2. the Worker itself (`wrangler deploy`; Durable Object migrations from wrangler.toml ride along);
 *   3. the secrets given in the environment (`wrangler secret put`, value on stdin, never echoed).
 *
 *   npm run deploy                                  all three
 *   npm run deploy -- --dry-run [--outdir <dir>]    bundle only (no account, no network): CI, and the
 *                                                   bundle infra/modules/edge uploads
 *   npm run deploy -- --migrations-only             step 1 only (what the Terraform edge module runs)
 *
 * Options: --database-id <uuid> (or SWITCHYARD_D1_DATABASE_ID) and --database-name <name> point at
 * the D1 database when wrangler.toml still holds the placeholder id; --name <worker> deploys under
 * another Worker name; --config <file> reads another wrangler config.
 * Environment: CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID (wrangler's own), and the secrets to
 * set: SWITCHYARD_ADMIN_TOKEN → ADMIN_TOKEN, SWITCHYARD_NODE_SECRET_KEY → NODE_SECRET_KEY. A secret
 * whose variable is unset keeps its current value.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const WRANGLER = join(ROOT, "node_modules", ".bin", process.platform === "win32" ? "wrangler.cmd" : "wrangler");
const PLACEHOLDER_DATABASE_ID = /^0{8}-0{4}-0{4}-0{4}-0{12}$/;

/** Worker secret ← environment variable it is read from. */
export const SECRETS = {
  ADMIN_TOKEN: "SWITCHYARD_ADMIN_TOKEN",
  NODE_SECRET_KEY: "SWITCHYARD_NODE_SECRET_KEY",
} as const;

class DeployError extends Error {}

interface Options {
  dryRun: boolean;
  migrationsOnly: boolean;
  outdir: string | undefined;
  config: string;
  databaseId: string | undefined;
  databaseName: string | undefined;
  name: string | undefined;
}

function options(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      "dry-run": { type: "boolean", default: false },
      "migrations-only": { type: "boolean", default: false },
      outdir: { type: "string" },
      config: { type: "string", default: "wrangler.toml" },
      "database-id": { type: "string" },
      "database-name": { type: "string" },
      name: { type: "string" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    process.exit(0);
  }
  if (values["dry-run"] && values["migrations-only"]) throw new DeployError("--dry-run and --migrations-only exclude each other");
  return {
    dryRun: values["dry-run"],
    migrationsOnly: values["migrations-only"],
    outdir: values.outdir,
    config: resolve(ROOT, values.config),
    databaseId: values["database-id"] || process.env.SWITCHYARD_D1_DATABASE_ID || undefined,
    databaseName: values["database-name"] || undefined,
    name: values.name || undefined,
  };
}

const HELP = `npm run deploy [-- options]

  (no options)          D1 migrations (remote), wrangler deploy, secrets from the environment
  --dry-run             bundle only, into --outdir (default: a temporary directory)
  --migrations-only     D1 migrations only
  --database-id <uuid>  D1 database id (default: wrangler.toml, or SWITCHYARD_D1_DATABASE_ID)
  --database-name <n>   D1 database name (default: wrangler.toml)
  --name <worker>       Worker name (default: wrangler.toml)
  --config <file>       wrangler config (default: wrangler.toml)

Environment: CLOUDFLARE_API_TOKEN, CLOUDFLARE_ACCOUNT_ID; SWITCHYARD_ADMIN_TOKEN and
SWITCHYARD_NODE_SECRET_KEY set the ADMIN_TOKEN and NODE_SECRET_KEY secrets (unset: unchanged).
`;

function wrangler(args: string[], opts: { stdin?: string; quiet?: boolean } = {}): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(WRANGLER, args, {
      cwd: ROOT,
      env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
      stdio: [opts.stdin === undefined ? "ignore" : "pipe", opts.quiet ? "ignore" : "inherit", "inherit"],
    });
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolvePromise() : reject(new DeployError(`wrangler ${args[0]} ${args[1] ?? ""} failed (exit ${code})`))));
    if (opts.stdin !== undefined) child.stdin?.end(opts.stdin);
  });
}

interface D1Entry {
  binding: string;
  database_name: string;
  database_id?: string;
  migrations_dir?: string;
}

/**
 * The wrangler config to run with: wrangler.toml itself, or — when the database id or name is
 * overridden — a copy with those replaced, written under .wrangler/ (git-ignored) with paths
 * rewritten relative to it, so the same code is bundled.
 */
async function effectiveConfig(o: Options): Promise<{ path: string; d1: D1Entry }> {
  const { experimental_readRawConfig } = await import("wrangler");
  const { rawConfig } = experimental_readRawConfig({ config: o.config });
  const d1 = (rawConfig.d1_databases ?? []) as D1Entry[];
  const db = d1.find((d) => d.binding === "DB");
  if (!db) throw new DeployError(`${relative(ROOT, o.config)} has no [[d1_databases]] entry with binding "DB"`);
  if (o.databaseId === undefined && o.databaseName === undefined) return { path: o.config, d1: db };

  const dir = join(ROOT, ".wrangler", "switchyard-deploy");
  mkdirSync(dir, { recursive: true });
  const from = dirname(o.config);
  const rel = (p: string) => relative(dir, resolve(from, p));
  const patched: D1Entry = { ...db, ...(o.databaseId ? { database_id: o.databaseId } : {}), ...(o.databaseName ? { database_name: o.databaseName } : {}), migrations_dir: rel(db.migrations_dir ?? "migrations") };
  const config = { ...rawConfig, ...(rawConfig.main ? { main: rel(rawConfig.main) } : {}), d1_databases: d1.map((d) => (d === db ? patched : d)) };
  const path = join(dir, "wrangler.json");
  writeFileSync(path, `${JSON.stringify(config, null, 2)}\n`);
  return { path, d1: patched };
}

function requireRealDatabase(d1: D1Entry, config: string): void {
  if (!d1.database_id || PLACEHOLDER_DATABASE_ID.test(d1.database_id)) {
    throw new DeployError(
      `${relative(ROOT, config)} has the placeholder D1 database_id: pass --database-id <uuid> (or set SWITCHYARD_D1_DATABASE_ID), ` +
        "or put the id from `wrangler d1 create switchyard` (or Terraform's d1_database_id output) into wrangler.toml",
    );
  }
}

export async function deploy(argv: string[]): Promise<void> {
  const o = options(argv);
  const { path: config, d1 } = await effectiveConfig(o);
  const common = ["--config", config, ...(o.name ? ["--name", o.name] : [])];

  if (o.dryRun) {
    const outdir = resolve(o.outdir ?? mkdtempSync(join(tmpdir(), "switchyard-bundle-")));
    mkdirSync(outdir, { recursive: true });
    await wrangler(["deploy", "--dry-run", "--outdir", outdir, ...common]);
    if (!existsSync(join(outdir, "index.js"))) throw new DeployError(`wrangler wrote no index.js into ${outdir}`);
    process.stdout.write(`deploy: bundle in ${outdir}\n`);
    return;
  }

  requireRealDatabase(d1, config);
  // `d1 migrations apply` takes the database name; it has no --name.
  await wrangler(["d1", "migrations", "apply", d1.database_name, "--remote", "--config", config], { stdin: "" });
  if (o.migrationsOnly) return;

  await wrangler(["deploy", ...common]);
  for (const [secret, envName] of Object.entries(SECRETS)) {
    const value = process.env[envName];
    if (value === undefined || value === "") {
      process.stdout.write(`deploy: ${envName} is not set; ${secret} keeps its current value\n`);
      continue;
    }
    if (secret === "ADMIN_TOKEN" && value.length < 16) throw new DeployError(`${envName} must be at least 16 characters`);
    await wrangler(["secret", "put", secret, ...common], { stdin: value, quiet: true });
    process.stdout.write(`deploy: ${secret} set\n`);
  }
}

deploy(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`deploy: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(err instanceof DeployError || (err instanceof TypeError && "code" in err) ? 2 : 1);
});
