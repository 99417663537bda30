/**
 * infra/modules/edge uploads the same Worker that wrangler.toml describes: the same D1 binding,
 * Durable Object bindings and migrations, compatibility date and flags, vars and the secrets the
 * code reads, plus one Workers VPC binding per region named the way the code looks it up. The
 * module is evaluated offline (test/infra/support/terraform.ts) and compared with wrangler.toml as
 * wrangler reads it, so adding a Durable Object or a migration to one without the other fails here.
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { instantiate, type ModuleInstance, Unknown, type Value } from "./support/terraform";
import { workerVpcBindingName } from "./support/worker-code";
import { readWranglerConfig, REPO, type WranglerEdgeConfig } from "./support/wrangler";

const EDGE = resolve(REPO, "infra/modules/edge");
const REGIONS = ["eu-west", "us-east", "ap-south.1"];

type Binding = { type: string; name: string; [k: string]: Value };

let wrangler: WranglerEdgeConfig;
let bundleDir: string;
let vpcBindingName: (region: string) => string;

beforeAll(async () => {
  wrangler = await readWranglerConfig();
  vpcBindingName = await workerVpcBindingName();
  bundleDir = mkdtempSync(join(tmpdir(), "switchyard-edge-bundle-"));
  writeFileSync(join(bundleDir, "index.js"), "export default {};\n");
  writeFileSync(join(bundleDir, "index.js.map"), "{}\n");
});

function edge(inputs: Record<string, Value> = {}): Promise<ModuleInstance> {
  return instantiate(EDGE, {
    account_id: "0123456789abcdef0123456789abcdef",
    zone_id: "fedcba9876543210fedcba9876543210",
    hostname: "llm.example.com",
    bundle_dir: bundleDir,
    admin_token: "an-admin-token-of-32-characters!",
    regions: REGIONS,
    ...inputs,
  });
}

async function bindings(inputs: Record<string, Value> = {}): Promise<Binding[]> {
  const v = await (await edge(inputs)).resourceAttribute("cloudflare_worker_version", "edge", "bindings");
  expect(Array.isArray(v)).toBe(true);
  return v as Binding[];
}

const ofType = (all: Binding[], type: string) => all.filter((b) => b.type === type);
const byName = <T extends { name: string }>(xs: T[]) => [...xs].sort((a, b) => a.name.localeCompare(b.name));

/** The secrets the Worker reads: fields of Env documented as "Secret:" in worker/env.ts. */
function workerSecrets(): string[] {
  const src = readFileSync(resolve(REPO, "worker/env.ts"), "utf8");
  return [...src.matchAll(/\/\*\*\s*Secret:[\s\S]*?\*\/\s*(\w+)\??:/g)].map((m) => m[1] as string).sort();
}

describe("infra/modules/edge against wrangler.toml", () => {
  it("binds the Durable Object namespaces wrangler.toml binds, to classes of this Worker", async () => {
    const dos = ofType(await bindings(), "durable_object_namespace");
    expect(wrangler.durable_objects.bindings.length).toBeGreaterThan(0);
    expect(byName(dos).map((b) => ({ name: b.name, class_name: b.class_name }))).toEqual(byName(wrangler.durable_objects.bindings).map((b) => ({ name: b.name, class_name: b.class_name })));
    for (const d of dos) expect(d.script_name, `${d.name} must be defined in this Worker`).toBeUndefined();
  });

  it("carries the same Durable Object migrations, in order", async () => {
    const module = (await (await edge()).local("do_migrations")) as Record<string, Value>[];
    const norm = (m: Record<string, unknown>) => Object.fromEntries(Object.entries(m).filter(([, v]) => v !== undefined && !(Array.isArray(v) && v.length === 0)));
    expect(module.map(norm)).toEqual(wrangler.migrations.map((m) => norm(m as Record<string, unknown>)));
    // Every bound class is created by some migration.
    const created = new Set(wrangler.migrations.flatMap((m) => [...(m.new_sqlite_classes ?? []), ...(m.new_classes ?? [])]));
    for (const b of wrangler.durable_objects.bindings) expect(created).toContain(b.class_name);
  });

  it("uploads every migration for a new Worker and only the pending ones after that", async () => {
    const tags = wrangler.migrations.map((m) => m.tag);
    const steps = wrangler.migrations.map((m) => ({ new_sqlite_classes: m.new_sqlite_classes }));
    const upload = async (deployed: string | null) => (await edge({ deployed_migration_tag: deployed })).resourceAttribute("cloudflare_worker_version", "edge", "migrations");

    expect(await upload(null)).toEqual({ old_tag: null, new_tag: tags.at(-1), steps });
    for (const [i, tag] of tags.entries()) {
      const expected = i === tags.length - 1 ? null : { old_tag: tag, new_tag: tags.at(-1), steps: steps.slice(i + 1) };
      expect(await upload(tag), `deployed at ${tag}`).toEqual(expected);
    }
    await expect(upload("v0-never-existed")).rejects.toThrow(/not in the list/);
    expect(await (await edge()).output("durable_object_migration_tag")).toBe(tags.at(-1));
  });

  it("binds D1 under wrangler.toml's binding and database name", async () => {
    const d1 = ofType(await bindings(), "d1");
    expect(d1.map((b) => b.name)).toEqual(wrangler.d1_databases.map((d) => d.binding));
    expect(d1[0]?.id).toBeInstanceOf(Unknown);
    const inst = await edge();
    expect(await inst.resourceAttribute("cloudflare_d1_database", "edge", "name")).toBe(wrangler.d1_databases[0]?.database_name);
  });

  it("uses wrangler.toml's compatibility date and flags", async () => {
    const inst = await edge();
    expect(await inst.resourceAttribute("cloudflare_worker_version", "edge", "compatibility_date")).toBe(wrangler.compatibility_date);
    expect([...((await inst.resourceAttribute("cloudflare_worker_version", "edge", "compatibility_flags")) as string[])].sort()).toEqual([...wrangler.compatibility_flags].sort());
  });

  it("sets wrangler.toml's vars, with DEFAULT_REGION and overrides from its inputs", async () => {
    const plain = (all: Binding[]) => Object.fromEntries(ofType(all, "plain_text").map((b) => [b.name, b.text]));
    const defaults = plain(await bindings());
    expect(Object.keys(defaults).sort()).toEqual(Object.keys(wrangler.vars).sort());
    for (const [k, v] of Object.entries(wrangler.vars)) if (k !== "DEFAULT_REGION") expect(defaults[k], k).toBe(v);
    const custom = plain(await bindings({ default_region: "eu-west", vars: { KEY_CACHE_TTL_MS: "2000", HEARTBEAT_INTERVAL_MS: "1000" } }));
    expect(custom).toMatchObject({ DEFAULT_REGION: "eu-west", KEY_CACHE_TTL_MS: "2000", HEARTBEAT_INTERVAL_MS: "1000", MAX_BODY_BYTES: wrangler.vars.MAX_BODY_BYTES as string });
  });

  it("binds exactly the secrets the Worker reads (worker/env.ts), never as plain text", async () => {
    const all = await bindings({ node_secret_key: "a-node-secret-key-given-by-the-operator" });
    const secrets = ofType(all, "secret_text");
    expect(workerSecrets()).toEqual(["ADMIN_TOKEN", "NODE_SECRET_KEY"]);
    expect(secrets.map((s) => s.name).sort()).toEqual(workerSecrets());
    expect(secrets.find((s) => s.name === "ADMIN_TOKEN")?.text).toBe("an-admin-token-of-32-characters!");
    expect(secrets.find((s) => s.name === "NODE_SECRET_KEY")?.text).toBe("a-node-secret-key-given-by-the-operator");
    // Without one, the key is generated (known after apply) rather than left empty.
    const generated = ofType(await bindings(), "secret_text").find((s) => s.name === "NODE_SECRET_KEY");
    expect(generated?.text).toBeInstanceOf(Unknown);
    expect(ofType(all, "plain_text").map((b) => b.name)).not.toContain("ADMIN_TOKEN");
  });

  it("gives every region a VPC network binding named as worker/nodes/node-transport.ts looks it up", async () => {
    const vpc = ofType(await bindings(), "vpc_network");
    expect(vpc.map((b) => b.name).sort()).toEqual(REGIONS.map((r) => vpcBindingName(r)).sort());
    for (const b of vpc) expect(String((b.tunnel_id as Unknown).address)).toMatch(/cloudflare_zero_trust_tunnel_cloudflared\.region\[".+"\]\.id$/);
    expect(ofType(await bindings({ regions: [] }), "vpc_network")).toEqual([]);
    expect(await (await edge()).output("vpc_bindings")).toEqual(Object.fromEntries(REGIONS.map((r) => [r, vpcBindingName(r)])));
  });

  it("refuses a short admin token and a region that is not a slug", async () => {
    await expect((await edge({ admin_token: "short" })).validateAll()).rejects.toThrow(/admin_token/);
    await expect((await edge({ regions: ["EU West"] })).validateAll()).rejects.toThrow(/regions must be lowercase slugs/);
  });

  it("uploads the bundle's main module, and its source map when asked", async () => {
    const modules = async (inputs: Record<string, Value>) => (await edge(inputs)).resourceAttribute("cloudflare_worker_version", "edge", "modules") as Promise<Record<string, Value>[]>;
    const main = await (await edge()).resourceAttribute("cloudflare_worker_version", "edge", "main_module");
    const withMap = await modules({});
    expect(withMap.map((m) => m.name)).toEqual([main, "index.js.map"]);
    expect(withMap[0]).toMatchObject({ content_type: "application/javascript+module", content_file: join(bundleDir, "index.js") });
    expect((await modules({ upload_source_map: false })).map((m) => m.name)).toEqual([main]);
    const noMap = mkdtempSync(join(tmpdir(), "switchyard-edge-nomap-"));
    mkdirSync(noMap, { recursive: true });
    writeFileSync(join(noMap, "index.js"), "export default {};\n");
    expect((await modules({ bundle_dir: noMap })).map((m) => m.name)).toEqual([main]);
  });

  it("serves on the custom domain it reports as its URL", async () => {
    const inst = await edge();
    expect(await inst.resourceAttribute("cloudflare_workers_custom_domain", "edge", "hostname")).toBe("llm.example.com");
    expect(await inst.output("url")).toBe("https://llm.example.com");
  });
});
