/**
 * The admin CLI as operators run it (`node bin/switchyard.mjs ...`, a child process) against a fake
 * /admin API: the requests each command sends, its human and --json output, and its failures.
 * Invocations run a few at a time (each costs a tsx start-up).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAgentConfig } from "../../../dataplane/agent/config";
import { type CliResult, closedPort, count, FakeAdmin, openAIError, runAll } from "./fake-admin";

const TOKEN = "test-admin-token-0123456789";
const admin = new FakeAdmin(TOKEN);
let env: Record<string, string>;

const created = "2026-01-02T03:04:05.678Z";
const noLimits = { weight: 1, rpm_limit: null, tpm_limit: null, token_budget: null, budget_period: "month", default_max_tokens: null };
const tenant = { id: "acme", name: "Acme Corp", ...noLimits, created_at: created, disabled: false, disabled_at: null };
const tenant2 = { id: "ten_x1y2z3a4b5c6", name: "Globex", ...noLimits, created_at: created, disabled: true, disabled_at: "2026-02-01T00:00:00.000Z" };
const limited = { ...tenant, weight: 2, rpm_limit: 600, tpm_limit: 200_000, token_budget: 10_000_000, budget_period: "day" };
const usage = {
  object: "page",
  tenant_id: "acme",
  start_time: 1793491200,
  end_time: 1794960000,
  bucket_width: "1d",
  data: [
    {
      object: "bucket",
      start_time: 1793491200,
      end_time: 1793577600,
      results: [{ object: "usage.result", model: "llama-3.1-8b", num_model_requests: 1200, input_tokens: 3_400_000, output_tokens: 250_000, input_cached_tokens: 2_000_000, estimated_requests: 3, failed_requests: 5 }],
    },
  ],
  totals: { object: "usage.result", model: null, num_model_requests: 1200, input_tokens: 3_400_000, output_tokens: 250_000, input_cached_tokens: 2_000_000, estimated_requests: 3, failed_requests: 5 },
};
const key = {
  id: "key_abcdefghijkl",
  tenant_id: "acme",
  name: "ci",
  prefix: "sk-sy-key_abcdefghijkl",
  status: "active",
  created_at: created,
  expires_at: "2099-01-01T00:00:00.000Z",
  revoked_at: null,
};
const plaintextKey = "sk-sy-key_abcdefghijkl.AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-AbCdE";
const secret = "sy_ns_1_QWERTYUIOPASDFGHJKLZXCVBNMqwertyuiopasdfgh";
const secret2 = "sy_ns_2_ZXCVBNMqwertyuiopasdfghQWERTYUIOPASDFGHJKL";
const node = {
  id: "gpu-a1",
  region: "eu-west",
  url: null,
  models: ["llama-3.1-8b", "qwen2.5-7b"],
  drained: false,
  key_version: 1,
  pending_key_version: null,
  created_at: created,
  updated_at: created,
};
const beat = () => new Date(Date.now() - 3_000).toISOString();
const live = () => [
  { model: "llama-3.1-8b", status: "healthy", engine: "openai", url: "http://10.0.0.5:8801", inflight: 3, running: 2, waiting: 1, max_concurrency: 256, kv_usage: 0.42, kv_capacity_tokens: 100_000, last_heartbeat_at: beat() },
];
const model = {
  name: "meta-llama/Llama-3.1-8B",
  pool: "llama",
  default_strategy: "least-request",
  allow_all_tenants: false,
  prefix_sharing: "tenant",
  tenants: ["acme", "globex"],
  admission_policy: "vtc",
  max_queue_wait_ms: 30_000,
  node_limit: null,
  vtc_input_weight: 1,
  vtc_output_weight: 2,
  vtc_headroom: 0.1,
  created_at: created,
};
const region = { id: "eu-west", latitude: 53.35, longitude: -6.26, created_at: created, updated_at: created };

beforeAll(async () => {
  await admin.start();
  env = { SWITCHYARD_EDGE_URL: admin.url, SWITCHYARD_ADMIN_TOKEN: TOKEN };
  admin
    .on("POST", "/admin/tenants", 201, tenant)
    .on("GET", "/admin/tenants", 200, { object: "list", data: [tenant, tenant2] })
    .on("GET", "/admin/tenants/acme", 200, tenant)
    .on("POST", "/admin/tenants/acme/disable", 200, { ...tenant, disabled: true, disabled_at: "2026-03-01T00:00:00.000Z" })
    .on("POST", "/admin/tenants/acme/enable", 200, tenant)
    .on("PATCH", "/admin/tenants/acme", 200, limited)
    .on("GET", "/admin/tenants/acme/usage?bucket_width=1d&start_time=1793491200", 200, usage)
    .on("PUT", "/admin/models/admission-model", 200, { ...model, name: "admission-model", admission_policy: "fcfs", max_queue_wait_ms: 0, node_limit: 32 })
    .on("POST", "/admin/tenants/acme/keys", 201, { ...key, key: plaintextKey })
    .on("GET", "/admin/tenants/acme/keys", 200, { object: "list", data: [key, { ...key, id: "key_zzzzzzzzzzzz", name: "old", status: "revoked", expires_at: null, revoked_at: created }] })
    .on("GET", `/admin/keys/${key.id}`, 200, key)
    .on("POST", `/admin/keys/${key.id}/revoke`, 200, { ...key, status: "revoked", revoked_at: created })
    .on("POST", "/admin/tenants/bad/keys", 400, openAIError("'expires_at' is in the past.", "expires_at", "invalid_value"))
    .on("GET", "/admin/tenants/html", 502, "<html><body>Bad gateway</body></html>", "text/html")
    .on("POST", "/admin/nodes", 201, { ...node, secret, warnings: ["model 'qwen2.5-7b' is not configured: the node is not used for it until it is (PUT /admin/models/qwen2.5-7b)"] })
    .on("GET", "/admin/nodes", 200, {
      object: "list",
      data: [
        { ...node, live: live() },
        { ...node, id: "gpu-b2", region: "us-east", models: ["llama-3.1-8b"], drained: true, live: [] },
      ],
    })
    .on("GET", "/admin/nodes/gpu-a1", 200, { ...node, live: live() })
    .on("PATCH", "/admin/nodes/gpu-a1", 200, { ...node, region: "eu-central" })
    .on("POST", "/admin/nodes/gpu-a1/drain", 200, { ...node, drained: true })
    .on("POST", "/admin/nodes/gpu-a1/undrain", 200, node)
    .on("POST", "/admin/nodes/gpu-a1/rotate-secret", 200, { ...node, pending_key_version: 2, secret: secret2, immediate: false })
    .on("DELETE", "/admin/nodes/gpu-a1", 200, { id: "gpu-a1", deleted: true })
    .on("GET", "/admin/models", 200, { object: "list", data: [model, { ...model, name: "llama-3.1-8b", pool: "llama-3.1-8b", allow_all_tenants: true, tenants: [] }] })
    .on("GET", "/admin/models/meta-llama%2FLlama-3.1-8B", 200, model)
    .on("PUT", "/admin/models/meta-llama%2FLlama-3.1-8B", 200, model)
    .on("PUT", "/admin/models/llama-3.1-8b", 201, { ...model, name: "llama-3.1-8b", allow_all_tenants: true, tenants: [] })
    .on("DELETE", "/admin/models/meta-llama%2FLlama-3.1-8B", 200, { name: "meta-llama/Llama-3.1-8B", deleted: true })
    .on("PUT", "/admin/access/initech/meta-llama%2FLlama-3.1-8B", 200, { ...model, tenants: ["acme", "globex", "initech"] })
    .on("DELETE", "/admin/access/acme/meta-llama%2FLlama-3.1-8B", 200, { ...model, tenants: ["globex"] })
    .on("PUT", "/admin/models/shared-model", 201, { ...model, name: "shared-model", prefix_sharing: "shared" })
    .on("PUT", "/admin/regions/eu-west", 201, region)
    .on("GET", "/admin/regions", 200, { object: "list", data: [region] })
    .on("DELETE", "/admin/regions/eu-west", 200, { id: "eu-west", deleted: true });
});

afterAll(async () => {
  await admin.stop();
});

function only(method: string, path: string) {
  const found = admin.find(method, path);
  expect(found, `${method} ${path}`).toHaveLength(1);
  const r = found[0] as (typeof found)[number];
  expect(r.authorization).toBe(`Bearer ${TOKEN}`);
  return r;
}

function headerLine(stdout: string): string {
  return stdout.split("\n")[0] ?? "";
}

describe("switchyard tenants", () => {
  it("create, list, show, disable and enable send the right requests and print tables or JSON", async () => {
    const [create, list, listJson, show, disable, enable] = await runAll([
      // Flags instead of the environment.
      { args: ["tenants", "create", "Acme Corp", "--id", "acme", "--edge-url", admin.url, "--admin-token", TOKEN] },
      { args: ["tenants", "list"], env },
      { args: ["tenants", "list", "--json"], env },
      { args: ["tenants", "show", "acme"], env },
      { args: ["tenants", "disable", "acme"], env },
      { args: ["tenants", "enable", "acme"], env },
    ]);
    for (const r of [create, list, listJson, show, disable, enable]) expect(r?.code, r?.stderr).toBe(0);

    const post = only("POST", "/admin/tenants");
    expect(post.body).toEqual({ name: "Acme Corp", id: "acme" });
    expect(post.contentType).toBe("application/json");
    expect(create?.stdout).toContain("Created tenant acme");

    expect(headerLine(list?.stdout ?? "").split(/\s{2,}/)).toEqual(["ID", "NAME", "STATUS", "WEIGHT", "RPM", "TPM", "BUDGET", "CREATED"]);
    expect(list?.stdout).toMatch(/acme\s+Acme Corp\s+active\s+1\s+-\s+-\s+-\s+2026-01-02T03:04:05Z/);
    expect(list?.stdout).toMatch(/ten_x1y2z3a4b5c6\s+Globex\s+disabled/);
    expect(JSON.parse(listJson?.stdout ?? "")).toEqual({ object: "list", data: [tenant, tenant2] });

    expect(show?.stdout).toMatch(/^id:\s+acme$/m);
    expect(show?.stdout).toMatch(/^name:\s+Acme Corp$/m);
    only("GET", "/admin/tenants/acme");
    expect(only("POST", "/admin/tenants/acme/disable").rawBody).toBe("");
    expect(disable?.stdout).toContain("Tenant acme is disabled");
    only("POST", "/admin/tenants/acme/enable");
    expect(enable?.stdout).toContain("Tenant acme is enabled");
  });
});

describe("switchyard tenants: weights, limits and usage", () => {
  it("update sends only the given fields, 'none' lifts a limit, and usage prints a table", async () => {
    const [update, lift, usageOut, usageJson, nothing, badLimit, badPeriod] = await runAll([
      { args: ["tenants", "update", "acme", "--weight", "2", "--rpm", "600", "--tpm", "200_000", "--token-budget", "10000000", "--budget-period", "day"], env },
      { args: ["tenants", "update", "acme", "--tpm", "none", "--default-max-tokens", "512"], env },
      { args: ["tenants", "usage", "acme", "--from", "2026-11-01"], env },
      { args: ["tenants", "usage", "acme", "--from", "2026-11-01", "--json"], env },
      { args: ["tenants", "update", "acme"], env },
      { args: ["tenants", "update", "acme", "--rpm", "-5"], env },
      { args: ["tenants", "update", "acme", "--budget-period", "week"], env },
    ]);
    for (const r of [update, lift, usageOut, usageJson]) expect(r?.code, r?.stderr).toBe(0);
    const patches = admin.find("PATCH", "/admin/tenants/acme").map((r) => r.body);
    expect(patches).toEqual(
      expect.arrayContaining([
        { weight: 2, rpm_limit: 600, tpm_limit: 200_000, token_budget: 10_000_000, budget_period: "day" },
        { tpm_limit: null, default_max_tokens: 512 },
      ]),
    );
    expect(patches).toHaveLength(2);
    expect(update?.stdout).toMatch(/^tokens per minute:\s+200,000 tokens$/m);
    expect(update?.stdout).toMatch(/^token budget:\s+10,000,000 tokens per day \(UTC\)$/m);
    expect(usageOut?.stdout).toMatch(/2026-11-01\s+llama-3.1-8b\s+1,200\s+3,400,000\s+2,000,000\s+250,000\s+5/);
    expect(usageOut?.stdout).toMatch(/^estimated counts:\s+3$/m);
    expect(JSON.parse(usageJson?.stdout ?? "")).toEqual(usage);
    for (const r of [nothing, badLimit, badPeriod]) expect(r?.code).toBe(2);
    expect(nothing?.stderr).toContain("give at least one of");
    expect(badLimit?.stderr).toContain("--rpm");
    expect(badPeriod?.stderr).toContain("--budget-period");
  });

  it("models configure sends the admission settings and shows them", async () => {
    const [configure, bad] = await runAll([
      { args: ["models", "configure", "admission-model", "--admission", "fcfs", "--max-queue-wait-ms", "0", "--node-limit", "32", "--vtc-output-weight", "3"], env },
      { args: ["models", "configure", "admission-model", "--max-queue-wait-ms", "1.5"], env },
    ]);
    expect(configure?.code, configure?.stderr).toBe(0);
    expect(admin.find("PUT", "/admin/models/admission-model").map((r) => r.body)).toEqual([{ admission_policy: "fcfs", max_queue_wait_ms: 0, node_limit: 32, vtc_output_weight: 3 }]);
    expect(configure?.stdout).toMatch(/^admission:\s+first come, first served; a request waits at most 0 ms for room$/m);
    expect(configure?.stdout).toMatch(/^node limit:\s+32 requests per node$/m);
    expect(bad?.code).toBe(2);
    expect(bad?.stderr).toContain("--max-queue-wait-ms");
  });
});

describe("switchyard keys", () => {
  it("issue prints the key once with a warning; list, show and revoke hit the key routes", async () => {
    const [issue, issueJson, list, show, revoke] = await runAll([
      { args: ["keys", "issue", "acme", "--name", "ci", "--expires-in-days", "90"], env },
      { args: ["keys", "issue", "acme", "--expires-at", "2099-01-01", "--json"], env },
      { args: ["keys", "list", "acme"], env },
      { args: ["keys", "show", key.id], env },
      // A key's listed prefix works as its id.
      { args: ["keys", "revoke", key.prefix], env },
    ]);
    for (const r of [issue, issueJson, list, show, revoke]) expect(r?.code, r?.stderr).toBe(0);

    const issued = admin.find("POST", "/admin/tenants/acme/keys");
    expect(issued.map((r) => r.body)).toEqual(expect.arrayContaining([{ name: "ci", expires_in_days: 90 }, { expires_at: "2099-01-01T00:00:00.000Z" }]));
    expect(count(issue?.stdout ?? "", plaintextKey)).toBe(1);
    expect(issue?.stdout).toMatch(/WARNING: .*shown only this once/);
    expect(JSON.parse(issueJson?.stdout ?? "")).toEqual({ ...key, key: plaintextKey });
    expect(issueJson?.stderr).toMatch(/warning: .*shown only this once/);

    expect(headerLine(list?.stdout ?? "").split(/\s{2,}/)).toEqual(["ID", "NAME", "PREFIX", "STATUS", "CREATED", "EXPIRES", "REVOKED"]);
    expect(list?.stdout).toMatch(/key_abcdefghijkl\s+ci\s+sk-sy-key_abcdefghijkl\s+active/);
    expect(list?.stdout).toMatch(/key_zzzzzzzzzzzz\s+old\s+\S+\s+revoked\s+\S+\s+never/);
    expect(list?.stdout).not.toContain(plaintextKey);
    only("GET", "/admin/tenants/acme/keys");

    expect(show?.stdout).toMatch(/^status:\s+active$/m);
    only("GET", `/admin/keys/${key.id}`);
    only("POST", `/admin/keys/${key.id}/revoke`);
    expect(revoke?.stdout).toContain(`Revoked key ${key.id}`);
  });
});

describe("switchyard nodes", () => {
  it("register, list, show, update, drain, undrain, rotate-secret and remove", async () => {
    const [register, list, listJson, show, update, unsetUrl, drain, undrain, rotate, remove, nothing] = await runAll([
      { args: ["nodes", "register", "gpu-a1", "--region", "eu-west", "--model", "llama-3.1-8b", "--model", "qwen2.5-7b"], env },
      { args: ["nodes", "list"], env },
      { args: ["nodes", "list", "--json"], env },
      { args: ["nodes", "show", "gpu-a1"], env },
      { args: ["nodes", "update", "gpu-a1", "--region", "eu-central", "--url", "http://10.0.0.9:8801", "--model", "a,b", "--model", "c"], env },
      { args: ["nodes", "update", "gpu-a1", "--no-url"], env },
      { args: ["nodes", "drain", "gpu-a1"], env },
      { args: ["nodes", "undrain", "gpu-a1"], env },
      { args: ["nodes", "rotate-secret", "gpu-a1"], env },
      { args: ["nodes", "remove", "gpu-a1"], env },
      { args: ["nodes", "update", "gpu-a1"], env },
    ]);
    for (const r of [register, list, listJson, show, update, unsetUrl, drain, undrain, rotate, remove]) expect(r?.code, r?.stderr).toBe(0);

    // register: the secret once, with a warning, inside an agent config the agent accepts.
    const reg = register as CliResult;
    expect(only("POST", "/admin/nodes").body).toEqual({ id: "gpu-a1", region: "eu-west", models: ["llama-3.1-8b", "qwen2.5-7b"] });
    expect(count(reg.stdout, secret)).toBe(1);
    expect(reg.stdout).toMatch(/WARNING: .*shown only this once/);
    const snippet = /^\{[\s\S]*?^\}$/m.exec(reg.stdout)?.[0];
    const config = JSON.parse(snippet ?? "null");
    expect(config).toMatchObject({ nodeId: "gpu-a1", region: "eu-west", edge: { url: admin.url, nodeSecret: secret } });
    expect(config.engines.map((e: { model: string }) => e.model)).toEqual(["llama-3.1-8b", "qwen2.5-7b"]);
    expect(() => parseAgentConfig(config, "snippet")).not.toThrow();
    // qwen2.5-7b is not a configured model: the edge's warning reaches the operator.
    expect(reg.stderr).toMatch(/warning: model 'qwen2\.5-7b' is not configured/);

    expect(headerLine(list?.stdout ?? "").split(/\s{2,}/)).toEqual(["NODE", "REGION", "MODEL", "STATUS", "INFLIGHT", "RUNNING", "WAITING", "KV", "HEARTBEAT"]);
    expect(list?.stdout).toMatch(/gpu-a1\s+eu-west\s+llama-3\.1-8b\s+healthy\s+3\/256\s+2\s+1\s+42%\s+\d+s ago/);
    expect(list?.stdout).toMatch(/gpu-a1\s+eu-west\s+qwen2\.5-7b\s+no heartbeat\s+-\s+-\s+-\s+-\s+-/);
    expect(list?.stdout).toMatch(/gpu-b2\s+us-east\s+llama-3\.1-8b\s+drained/);
    const listed = JSON.parse(listJson?.stdout ?? "");
    expect(listed.data.map((n: { id: string }) => n.id)).toEqual(["gpu-a1", "gpu-b2"]);
    expect(listed.data[0].live[0].kv_usage).toBe(0.42);

    expect(show?.stdout).toMatch(/^region:\s+eu-west$/m);
    expect(show?.stdout).toMatch(/MODEL\s+STATUS\s+ENGINE\s+URL\s+INFLIGHT/);
    expect(show?.stdout).toMatch(/llama-3\.1-8b\s+healthy\s+openai\s+http:\/\/10\.0\.0\.5:8801\s+3\/256/);

    const patches = admin.find("PATCH", "/admin/nodes/gpu-a1").map((r) => r.body);
    expect(patches).toEqual(expect.arrayContaining([{ region: "eu-central", url: "http://10.0.0.9:8801", models: ["a", "b", "c"] }, { url: null }]));
    expect(patches).toHaveLength(2);
    expect(update?.stdout).toContain("Updated node gpu-a1");
    expect(nothing?.code).toBe(2);
    expect(nothing?.stderr).toMatch(/nothing to update/);

    only("POST", "/admin/nodes/gpu-a1/drain");
    expect(drain?.stdout).toContain("drained");
    only("POST", "/admin/nodes/gpu-a1/undrain");
    expect(undrain?.stdout).toContain("no longer drained");

    expect(only("POST", "/admin/nodes/gpu-a1/rotate-secret").body).toEqual({ immediate: false });
    expect(count(rotate?.stdout ?? "", secret2)).toBe(1);
    expect(rotate?.stdout).toContain("pending");
    expect(rotate?.stdout).toMatch(/WARNING: .*shown only this once/);
    expect(rotate?.stdout).toContain("previousNodeSecret");
    expect(rotate?.stdout).toContain("version 2");

    only("DELETE", "/admin/nodes/gpu-a1");
    expect(remove?.stdout).toContain("Removed node gpu-a1");
  });
});

describe("switchyard regions and prefix sharing", () => {
  it("sets, lists and removes regions; configures a model's prefix sharing", async () => {
    const [set, list, remove, badLat, sharing, badSharing] = await runAll([
      { args: ["regions", "set", "eu-west", "--latitude", "53.35", "--longitude", "-6.26"], env },
      { args: ["regions", "list"], env },
      { args: ["regions", "remove", "eu-west"], env },
      { args: ["regions", "set", "eu-west", "--latitude", "123", "--longitude", "0"], env },
      { args: ["models", "configure", "shared-model", "--prefix-sharing", "shared"], env },
      { args: ["models", "configure", "shared-model", "--prefix-sharing", "everyone"], env },
    ]);
    for (const r of [set, list, remove, sharing]) expect(r?.code, r?.stderr).toBe(0);
    expect(only("PUT", "/admin/regions/eu-west").body).toEqual({ latitude: 53.35, longitude: -6.26 });
    expect(list?.stdout).toMatch(/eu-west\s+53\.35\s+-6\.26/);
    only("DELETE", "/admin/regions/eu-west");
    expect(badLat?.code).toBe(2);
    expect(badLat?.stderr).toContain("--latitude");
    expect(only("PUT", "/admin/models/shared-model").body).toEqual({ prefix_sharing: "shared" });
    expect(sharing?.stdout).toMatch(/prefix sharing:\s+shared by all tenants/);
    expect(badSharing?.code).toBe(2);
  });
});

describe("switchyard models", () => {
  it("list, show, configure and remove; names with '/' travel as one path segment", async () => {
    const [list, show, restrict, allowAll, remove, both, allow, deny] = await runAll([
      { args: ["models", "list"], env },
      { args: ["models", "show", "meta-llama/Llama-3.1-8B", "--json"], env },
      { args: ["models", "configure", "meta-llama/Llama-3.1-8B", "--pool", "llama", "--default-strategy", "least-request:3,random", "--restrict-to", "acme", "--restrict-to", "globex"], env },
      { args: ["models", "configure", "llama-3.1-8b", "--allow-all-tenants"], env },
      { args: ["models", "remove", "meta-llama/Llama-3.1-8B"], env },
      { args: ["models", "configure", "x", "--allow-all-tenants", "--restrict-to", "acme"], env },
      { args: ["models", "allow", "meta-llama/Llama-3.1-8B", "initech"], env },
      { args: ["models", "deny", "meta-llama/Llama-3.1-8B", "acme"], env },
    ]);
    for (const r of [list, show, restrict, allowAll, remove, allow, deny]) expect(r?.code, r?.stderr).toBe(0);
    only("PUT", "/admin/access/initech/meta-llama%2FLlama-3.1-8B");
    expect(allow?.stdout).toMatch(/^access:\s+acme, globex, initech$/m);
    only("DELETE", "/admin/access/acme/meta-llama%2FLlama-3.1-8B");
    expect(deny?.stdout).toMatch(/^access:\s+globex$/m);

    expect(headerLine(list?.stdout ?? "").split(/\s{2,}/)).toEqual(["NAME", "POOL", "STRATEGY", "ACCESS", "CREATED"]);
    expect(list?.stdout).toMatch(/meta-llama\/Llama-3\.1-8B\s+llama\s+least-request\s+acme, globex/);
    expect(list?.stdout).toMatch(/llama-3\.1-8b\s+llama-3\.1-8b\s+least-request\s+all tenants/);
    expect(JSON.parse(show?.stdout ?? "")).toEqual(model);
    only("GET", "/admin/models/meta-llama%2FLlama-3.1-8B");

    expect(only("PUT", "/admin/models/meta-llama%2FLlama-3.1-8B").body).toEqual({
      pool: "llama",
      default_strategy: "least-request:3,random",
      allow_all_tenants: false,
      tenants: ["acme", "globex"],
    });
    expect(restrict?.stdout).toMatch(/^access:\s+acme, globex$/m);
    expect(only("PUT", "/admin/models/llama-3.1-8b").body).toEqual({ allow_all_tenants: true });
    only("DELETE", "/admin/models/meta-llama%2FLlama-3.1-8B");
    expect(remove?.stdout).toContain("Removed model meta-llama/Llama-3.1-8B");

    expect(both?.code).toBe(2);
    expect(both?.stderr).toMatch(/--allow-all-tenants.*cannot be used with.*--restrict-to/);
  });
});

describe("failures", () => {
  it("exit 2 with a clear message: missing token, API errors, unreachable edge, bad option values", async () => {
    const port = await closedPort();
    const before = admin.requests.length;
    const [noToken, apiError, unauthorized, unreachable, badGateway, badDays, badDate, badUrl, badEdgeUrl, unknownOption] = await runAll([
      { args: ["tenants", "list"], env: { SWITCHYARD_EDGE_URL: admin.url } },
      { args: ["keys", "issue", "bad", "--expires-at", "2099-01-01T00:00:00Z"], env },
      { args: ["tenants", "list", "--admin-token", "wrong-token-wrong-token"], env },
      { args: ["tenants", "list", "--edge-url", `http://127.0.0.1:${port}`], env },
      { args: ["tenants", "show", "html"], env },
      { args: ["keys", "issue", "acme", "--expires-in-days", "soon"], env },
      { args: ["keys", "issue", "acme", "--expires-at", "2026-12-31T10:00"], env },
      { args: ["nodes", "register", "n1", "--region", "r", "--model", "m", "--url", "ftp://host"], env },
      { args: ["tenants", "list", "--edge-url", "edge.example.com"], env },
      { args: ["tenants", "list", "--bogus"], env },
    ]);
    const all = [noToken, apiError, unauthorized, unreachable, badGateway, badDays, badDate, badUrl, badEdgeUrl, unknownOption];
    for (const r of all) expect(r?.code, `${r?.stdout}\n${r?.stderr}`).toBe(2);
    for (const r of all) expect(r?.stderr).not.toMatch(/\n\s+at /); // no stack traces

    expect(noToken?.stderr).toMatch(/admin token is required.*--admin-token.*SWITCHYARD_ADMIN_TOKEN/);
    expect(apiError?.stderr).toContain("'expires_at' is in the past.");
    expect(apiError?.stderr).toMatch(/HTTP 400; param: expires_at \(--expires-at\), code: invalid_value/);
    expect(unauthorized?.stderr).toMatch(/A valid admin token is required\. \(HTTP 401.*check --admin-token/);
    expect(unreachable?.stderr).toContain(`cannot reach the edge at http://127.0.0.1:${port}/admin/tenants`);
    expect(unreachable?.stderr).toMatch(/ECONNREFUSED/);
    expect(badGateway?.stderr).toMatch(/HTTP 502: <html><body>Bad gateway/);
    expect(badDays?.stderr).toMatch(/--expires-in-days <n>' argument 'soon' is invalid\. must be a positive number/);
    expect(badDate?.stderr).toMatch(/--expires-at <iso>' argument .* needs a time zone/);
    expect(badUrl?.stderr).toMatch(/--url <url>' argument 'ftp:\/\/host' is invalid\. must be an http/);
    expect(badEdgeUrl?.stderr).toMatch(/--edge-url: 'edge\.example\.com' is not a URL/);
    expect(unknownOption?.stderr).toMatch(/unknown option '--bogus'[\s\S]*--help/);

    // Only the API error, the 401 and the 502 reached the server; local checks sent nothing.
    const sent = admin.requests.slice(before).map((r) => `${r.method} ${r.path}`);
    expect(sent.sort()).toEqual(["GET /admin/tenants", "GET /admin/tenants/html", "POST /admin/tenants/bad/keys"]);
  });
});

describe("--help", () => {
  // Every command's help is checked in-process (admin-units.test.ts); here the real process, for
  // each group and one command of each.
  it("prints usage and an example and exits 0", async () => {
    const paths = [["tenants"], ["tenants", "create"], ["keys"], ["keys", "issue"], ["nodes"], ["nodes", "register"], ["models"], ["models", "configure"]];
    const results = await runAll(paths.map((p) => ({ args: [...p, "--help"] })));
    results.forEach((r, i) => {
      const path = paths[i] as string[];
      expect(r.code, `${path.join(" ")}: ${r.stderr}`).toBe(0);
      expect(r.stdout).toContain(`Usage: switchyard ${path.join(" ")}`);
      expect(r.stdout).toMatch(new RegExp(`Examples:\\n  \\$ switchyard ${path[0]}`));
      if (path.length === 2) expect(r.stdout).toContain("--admin-token <token>");
    });
  });
});
