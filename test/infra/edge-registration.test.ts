/**
 * Node registration (infra/scripts/edge-registration.ts): the decisions (register, update, rotate a
 * lost secret, remove) against an in-memory admin API, and then the exact commands the gpu-region
 * module's provisioners run, executed against a fake edge admin API and a fake `aws` CLI: the node
 * ends up registered with the module's models, its secret ends up in its Secrets Manager secret, and
 * the secret is never on a command line.
 */
import { execFile } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminApiError } from "../../cli/admin-client";
import { type AdminApi, ensureNode, removeNode, rotateNode, type SecretStore } from "../../infra/scripts/edge-registration";
import { instantiate, resourceBlocks, type ModuleInstance, type Value } from "./support/terraform";
import { REPO } from "./support/wrangler";

const ADMIN_TOKEN = "an-admin-token-of-32-characters!";

/** Just enough of the edge's /admin node and region API, with its status codes. */
class FakeEdge {
  nodes = new Map<string, { id: string; region: string; models: string[]; version: number }>();
  regions = new Map<string, { latitude: number; longitude: number }>();
  issued: string[] = [];

  private secret(id: string, version: number): string {
    const s = `sy_ns_${version}_${Buffer.from(`${id}:${version}:${this.issued.length}`).toString("base64url").padEnd(24, "x")}`;
    this.issued.push(s);
    return s;
  }

  private json(n: { id: string; region: string; models: string[]; version: number }) {
    return { id: n.id, region: n.region, url: null, models: n.models, drained: false, key_version: n.version, pending_key_version: null, created_at: null, updated_at: null };
  }

  handle(method: string, path: string, body: any): { status: number; body: unknown } {
    const notFound = { status: 404, body: { error: { message: "not found", type: "invalid_request_error", param: null, code: "node_not_found" } } };
    let m: RegExpExecArray | null;
    if (method === "POST" && path === "/admin/nodes") {
      if (this.nodes.has(body.id)) return { status: 409, body: { error: { message: "exists", type: "invalid_request_error", param: "id", code: "node_exists" } } };
      const n = { id: body.id as string, region: body.region as string, models: body.models as string[], version: 1 };
      this.nodes.set(n.id, n);
      return { status: 201, body: { ...this.json(n), secret: this.secret(n.id, 1), warnings: [] } };
    }
    if ((m = /^\/admin\/nodes\/([^/]+)\/rotate-secret$/.exec(path)) && method === "POST") {
      const n = this.nodes.get(decodeURIComponent(m[1] as string));
      if (!n) return notFound;
      n.version += 1;
      return { status: 200, body: { ...this.json(n), secret: this.secret(n.id, n.version), immediate: body?.immediate === true } };
    }
    if ((m = /^\/admin\/nodes\/([^/]+)$/.exec(path))) {
      const id = decodeURIComponent(m[1] as string);
      const n = this.nodes.get(id);
      if (!n) return notFound;
      if (method === "GET") return { status: 200, body: this.json(n) };
      if (method === "PATCH") {
        Object.assign(n, { region: body.region ?? n.region, models: body.models ?? n.models });
        return { status: 200, body: this.json(n) };
      }
      if (method === "DELETE") {
        this.nodes.delete(id);
        return { status: 200, body: { id, deleted: true } };
      }
    }
    if ((m = /^\/admin\/regions\/([^/]+)$/.exec(path)) && method === "PUT") {
      this.regions.set(decodeURIComponent(m[1] as string), body);
      return { status: 200, body: { id: m[1], ...body } };
    }
    return { status: 405, body: { error: { message: `${method} ${path}`, type: "invalid_request_error", param: null, code: null } } };
  }

  /** The same API in process, shaped like the CLI's AdminClient (errors as AdminApiError). */
  client(): AdminApi {
    const call = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
      const r = this.handle(method, `/admin${path}`, body);
      if (r.status >= 400) throw new AdminApiError(`HTTP ${r.status}`, r.status, null, null, r.body);
      return r.body as T;
    };
    return { get: (p) => call("GET", p), post: (p, b) => call("POST", p, b), put: (p, b) => call("PUT", p, b), patch: (p, b) => call("PATCH", p, b), delete: (p) => call("DELETE", p) };
  }
}

class MemoryStore implements SecretStore {
  value: string | null = null;
  async hasValue() {
    return this.value !== null;
  }
  async get() {
    return this.value;
  }
  async put(v: string) {
    this.value = v;
  }
}

describe("edge-registration decisions", () => {
  const spec = { id: "eu-west-0", region: "eu-west", models: ["llama-3.1-8b"] };

  it("registers a new node and stores the secret the edge issued", async () => {
    const edge = new FakeEdge();
    const store = new MemoryStore();
    expect(await ensureNode(edge.client(), store, spec)).toBe("registered");
    expect(JSON.parse(store.value as string)).toEqual({ nodeSecret: edge.issued[0] });
  });

  it("does nothing the second time, keeping the secret", async () => {
    const edge = new FakeEdge();
    const store = new MemoryStore();
    await ensureNode(edge.client(), store, spec);
    const before = store.value;
    expect(await ensureNode(edge.client(), store, spec)).toBe("unchanged");
    expect(store.value).toBe(before);
    expect(edge.issued).toHaveLength(1);
  });

  it("updates models and region in place", async () => {
    const edge = new FakeEdge();
    const store = new MemoryStore();
    await ensureNode(edge.client(), store, spec);
    expect(await ensureNode(edge.client(), store, { ...spec, models: ["llama-3.1-8b", "qwen2.5-7b"] })).toBe("updated");
    expect(edge.nodes.get(spec.id)?.models).toEqual(["llama-3.1-8b", "qwen2.5-7b"]);
    expect(edge.issued).toHaveLength(1);
  });

  it("rotates at once when the edge knows the node but the store lost its secret", async () => {
    const edge = new FakeEdge();
    const store = new MemoryStore();
    await ensureNode(edge.client(), store, spec);
    store.value = null;
    expect(await ensureNode(edge.client(), store, spec)).toBe("rotated");
    expect(JSON.parse(store.value as unknown as string)).toEqual({ nodeSecret: edge.issued[1] });
    expect(edge.nodes.get(spec.id)?.version).toBe(2);
  });

  it("keeps the previous secret during a planned rotation", async () => {
    const edge = new FakeEdge();
    const store = new MemoryStore();
    await ensureNode(edge.client(), store, spec);
    await rotateNode(edge.client(), store, spec.id);
    expect(JSON.parse(store.value as string)).toEqual({ nodeSecret: edge.issued[1], previousNodeSecret: edge.issued[0] });
  });

  it("removes a node, and is fine when it is already gone", async () => {
    const edge = new FakeEdge();
    await ensureNode(edge.client(), new MemoryStore(), spec);
    expect(await removeNode(edge.client(), spec.id)).toBe("removed");
    expect(await removeNode(edge.client(), spec.id)).toBe("absent");
  });
});

/** A stand-in `aws` CLI: Secrets Manager in a JSON file, every argv logged. */
const FAKE_AWS = `#!/usr/bin/env node
const fs = require("fs");
const args = process.argv.slice(2);
fs.appendFileSync(process.env.FAKE_AWS_LOG, JSON.stringify(args) + "\\n");
const state = fs.existsSync(process.env.FAKE_AWS_STATE) ? JSON.parse(fs.readFileSync(process.env.FAKE_AWS_STATE, "utf8")) : {};
const opt = (n) => args[args.indexOf(n) + 1];
const id = opt("--secret-id");
if (args[0] !== "secretsmanager" || !opt("--region")) { console.error("unexpected call"); process.exit(255); }
if (args[1] === "describe-secret") {
  process.stdout.write(JSON.stringify({ ARN: id, VersionIdsToStages: id in state ? { v1: ["AWSCURRENT"] } : {} }));
} else if (args[1] === "get-secret-value") {
  if (!(id in state)) { console.error("ResourceNotFoundException"); process.exit(254); }
  process.stdout.write(state[id] + "\\n");
} else if (args[1] === "put-secret-value") {
  if (opt("--secret-string") !== "file:///dev/stdin") { console.error("expected the value on stdin"); process.exit(252); }
  state[id] = fs.readFileSync(0, "utf8");
  fs.writeFileSync(process.env.FAKE_AWS_STATE, JSON.stringify(state));
  process.stdout.write(JSON.stringify({ ARN: id, VersionId: "v2" }));
} else { console.error("unsupported " + args[1]); process.exit(253); }
`;

describe("gpu-region registration provisioners, run as Terraform would run them", () => {
  const edge = new FakeEdge();
  let server: Server;
  let edgeUrl: string;
  let dir: string;
  let region: ModuleInstance;
  const secretArn = (id: string) => `arn:aws:secretsmanager:eu-west-1:123456789012:secret:switchyard/eu-west/nodes/${id}-AbCdEf`;

  beforeAll(async () => {
    server = createServer((req, res) => {
      let raw = "";
      req.on("data", (d) => (raw += d));
      req.on("end", () => {
        const r = req.headers.authorization === `Bearer ${ADMIN_TOKEN}` ? edge.handle(req.method as string, req.url as string, raw ? JSON.parse(raw) : undefined) : { status: 401, body: { error: { message: "bad token", type: "authentication_error", param: null, code: null } } };
        res.writeHead(r.status, { "content-type": "application/json" }).end(JSON.stringify(r.body));
      });
    });
    await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
    edgeUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    dir = mkdtempSync(join(tmpdir(), "switchyard-fake-aws-"));
    writeFileSync(join(dir, "aws"), FAKE_AWS);
    chmodSync(join(dir, "aws"), 0o755);
    region = await instantiate(
      resolve(REPO, "infra/modules/gpu-region"),
      {
        region: "eu-west",
        aws_region: "eu-west-1",
        edge_url: edgeUrl,
        tunnel_token: "eyJhIjoidHVubmVsIn0",
        node_count: 2,
        engine: { model: "llama-3.1-8b" },
        switchyard_source: { git_url: "https://github.com/example/switchyard.git", git_ref: "main" },
        location: { latitude: 53.35, longitude: -6.26 },
      },
      { stub: (address) => (/^aws_secretsmanager_secret\.node\["(.+)"\]\.arn$/.exec(address)?.[1] ? secretArn(/^aws_secretsmanager_secret\.node\["(.+)"\]\.arn$/.exec(address)?.[1] as string) : undefined) },
    );
  });

  afterAll(() => new Promise<void>((ok) => server.close(() => ok())));

  /** The local-exec provisioners of a terraform_data resource, evaluated for one instance. */
  async function provisioners(name: string, each: Record<string, Value> | null): Promise<{ command: string; working_dir: string; when: string }[]> {
    const block = resourceBlocks(region.source).find((r) => r.type === "terraform_data" && r.name === name);
    if (!block) throw new Error(`no terraform_data.${name}`);
    const scope = new Map<string, Value>(each ? [["each", each]] : []);
    if (block.body.input) scope.set("self", { input: await region.evalValue(block.body.input, scope, `${name}.input`) });
    const out = [];
    for (const p of block.body.provisioner["local-exec"] as Record<string, unknown>[]) {
      out.push({
        command: (await region.evalValue(p.command, scope, `${name} command`)) as string,
        working_dir: ((await region.evalValue(p.working_dir, scope, `${name} working_dir`)) as string) ?? REPO,
        when: p.when === "${destroy}" ? "destroy" : "create",
      });
    }
    return out;
  }

  async function sh(command: string, cwd: string): Promise<string> {
    const r = await promisify(execFile)("sh", ["-c", command], {
      cwd,
      timeout: 55_000,
      env: { ...process.env, PATH: `${dir}:${process.env.PATH}`, SWITCHYARD_ADMIN_TOKEN: ADMIN_TOKEN, FAKE_AWS_STATE: join(dir, "state.json"), FAKE_AWS_LOG: join(dir, "calls.log") },
    });
    return r.stdout;
  }

  const stored = () => JSON.parse(readFileSync(join(dir, "state.json"), "utf8")) as Record<string, string>;
  const argvLog = () => readFileSync(join(dir, "calls.log"), "utf8");

  it("registers each node with the module's models and stores its secret, never on a command line", async () => {
    const [create] = await provisioners("node_registration", { key: "eu-west-0", value: { secret_name: "switchyard/eu-west/nodes/eu-west-0" } });
    expect(create?.when).toBe("create");
    expect(create?.working_dir).toBe(REPO);
    const out = await sh(create?.command as string, create?.working_dir as string);
    expect(out).toContain("node eu-west-0: registered");
    expect(edge.nodes.get("eu-west-0")).toMatchObject({ region: "eu-west", models: ["llama-3.1-8b"] });
    expect(JSON.parse(stored()[secretArn("eu-west-0")] as string)).toEqual({ nodeSecret: edge.issued[0] });
    expect(argvLog()).not.toContain(edge.issued[0]);
    expect(out).not.toContain(edge.issued[0]);
  }, 60_000);

  it("re-runs as a no-op (the settings provisioner), then removes the node on destroy", async () => {
    const [settings] = await provisioners("node_settings", { key: "eu-west-0", value: { secret_name: "switchyard/eu-west/nodes/eu-west-0" } });
    expect(await sh(settings?.command as string, settings?.working_dir as string)).toContain("node eu-west-0: unchanged");
    expect(edge.issued).toHaveLength(1);
    const destroy = (await provisioners("node_registration", { key: "eu-west-0", value: {} })).find((p) => p.when === "destroy");
    expect(await sh(destroy?.command as string, destroy?.working_dir as string)).toContain("node eu-west-0: removed");
    expect(edge.nodes.has("eu-west-0")).toBe(false);
  }, 60_000);

  it("records the region's coordinates", async () => {
    const [setRegion] = await provisioners("region_location", null);
    await sh(setRegion?.command as string, setRegion?.working_dir as string);
    expect(edge.regions.get("eu-west")).toEqual({ latitude: 53.35, longitude: -6.26 });
  }, 60_000);
});
