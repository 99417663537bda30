/**
 * `npm run deploy` (scripts/deploy.ts), offline: `--dry-run` bundles the Worker with wrangler (no
 * account, no network) into a bundle that exports every Durable Object class wrangler.toml binds and
 * that infra/modules/edge uploads whole; the remote steps refuse the placeholder database id before
 * contacting anything.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { instantiate } from "./support/terraform";
import { readWranglerConfig, REPO } from "./support/wrangler";

const run = promisify(execFile);
const TSX = resolve(REPO, "node_modules/.bin/tsx");
const DEPLOY = resolve(REPO, "scripts/deploy.ts");

async function deploy(args: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string }> {
  try {
    const r = await run(TSX, [DEPLOY, ...args], { cwd: REPO, env: { ...process.env, ...env, CLOUDFLARE_API_TOKEN: "", WRANGLER_SEND_METRICS: "false" }, timeout: 55_000 });
    return { code: 0, out: r.stdout + r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === "number" ? e.code : 1, out: `${e.stdout ?? ""}${e.stderr ?? ""}` };
  }
}

describe("npm run deploy", () => {
  let outdir: string;
  let bundled: { code: number; out: string };

  beforeAll(async () => {
    outdir = mkdtempSync(join(tmpdir(), "switchyard-deploy-test-"));
    bundled = await deploy(["--dry-run", "--outdir", outdir]);
  }, 60_000);

  it("bundles the Worker with --dry-run", () => {
    expect(bundled.code, bundled.out).toBe(0);
    expect(bundled.out).toContain("--dry-run: exiting now.");
    expect(statSync(join(outdir, "index.js")).size).toBeGreaterThan(100_000);
  });

  it("exports every Durable Object class that wrangler.toml binds", async () => {
    const { durable_objects } = await readWranglerConfig();
    const js = readFileSync(join(outdir, "index.js"), "utf8");
    const exported = [...js.matchAll(/^export\s*\{([^}]*)\}/gm)].flatMap((m) => (m[1] as string).split(",").map((s) => s.trim().split(/\s+as\s+/).at(-1) as string));
    for (const b of durable_objects.bindings) expect(exported, `the bundle does not export ${b.class_name}`).toContain(b.class_name);
    expect(exported).toContain("default");
  });

  it("is what infra/modules/edge uploads: every bundled file, the main module first", async () => {
    const edge = await instantiate(resolve(REPO, "infra/modules/edge"), {
      account_id: "a",
      zone_id: "z",
      hostname: "llm.example.com",
      admin_token: "an-admin-token-of-32-characters!",
      bundle_dir: outdir,
    });
    const modules = (await edge.resourceAttribute("cloudflare_worker_version", "edge", "modules")) as { name: string; content_file: string }[];
    const main = await edge.resourceAttribute("cloudflare_worker_version", "edge", "main_module");
    expect(modules[0]?.name).toBe(main);
    const shipped = readdirSync(outdir).filter((f) => f !== "README.md").sort();
    expect(modules.map((m) => m.name).sort()).toEqual(shipped);
    for (const m of modules) expect(statSync(m.content_file).isFile()).toBe(true);
  });

  it("refuses remote steps against the placeholder D1 database id, before calling Cloudflare", async () => {
    for (const args of [[], ["--migrations-only"]]) {
      const r = await deploy(args, { SWITCHYARD_D1_DATABASE_ID: "" });
      expect(r.code).toBe(2);
      expect(r.out).toMatch(/placeholder D1 database_id: pass --database-id/);
    }
  });

  it("refuses unknown options and contradictory ones", async () => {
    expect((await deploy(["--dry-runn"])).code).toBe(2);
    const both = await deploy(["--dry-run", "--migrations-only"]);
    expect(both.code).toBe(2);
    expect(both.out).toMatch(/exclude each other/);
  });

  it("documents what infra/modules/edge calls it with", async () => {
    const help = (await deploy(["--help"])).out;
    const edgeMain = readFileSync(resolve(REPO, "infra/modules/edge/main.tf"), "utf8");
    const command = /command\s*=\s*"npx tsx scripts\/deploy\.ts ([^"]*)"/.exec(edgeMain)?.[1] ?? "";
    const flags = command.match(/--[a-z-]+/g) ?? [];
    expect(flags.length).toBeGreaterThan(0);
    for (const f of flags) expect(help, `deploy.ts --help does not know ${f}`).toContain(f);
  });
});
