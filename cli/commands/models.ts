/** `switchyard models ...`: which pool routes a model, its default strategy, who may use it. */
import { type Command, InvalidArgumentError, Option } from "commander";
import { seg } from "../admin-client";
import { adminCommand, adminContext, collect, limitOrNone, naming, orNull, positiveNumber, withExamples } from "../admin-command";
import type { DeletedJson, ListBody, ModelJson } from "../admin-types";
import { type Column, fields, isoWithAge, json, shortIso, table } from "../output";

function admission(m: ModelJson): string {
  if (m.admission_policy === "off") return "off (requests go straight to a node)";
  const policy = m.admission_policy === "vtc" ? "fair (VTC)" : "first come, first served";
  return `${policy}; a request waits at most ${m.max_queue_wait_ms} ms for room`;
}

function access(m: ModelJson): string {
  if (m.allow_all_tenants) return "all tenants";
  return m.tenants.length === 0 ? "no tenants" : m.tenants.join(", ");
}

const columns: Column<ModelJson>[] = [
  { header: "name", value: (m) => m.name },
  { header: "pool", value: (m) => m.pool },
  { header: "strategy", value: (m) => m.default_strategy },
  { header: "access", value: access },
  { header: "created", value: (m) => shortIso(m.created_at) },
];

function modelFields(m: ModelJson): string {
  return fields([
    ["name", m.name],
    ["pool", m.pool],
    ["default strategy", m.default_strategy],
    ["access", access(m)],
    ["prefix sharing", m.prefix_sharing === "shared" ? "shared by all tenants" : "per tenant"],
    ["admission", admission(m)],
    ["node limit", m.node_limit === null ? "the engines' own concurrency" : `${m.node_limit} requests per node`],
    ["vtc weights", `input ${m.vtc_input_weight}, output ${m.vtc_output_weight}`],
    ["vtc headroom", m.vtc_headroom === 0 ? "off" : `${Math.round(m.vtc_headroom * 100)}% over the limit for tenants below their fair share`],
    ...(m.allow_all_tenants && m.tenants.length > 0 ? ([["listed tenants", `${m.tenants.join(", ")} (unused while all tenants are allowed)`]] as const) : []),
    ["created", isoWithAge(m.created_at)],
  ]);
}

interface ConfigureOpts {
  prefixSharing?: "tenant" | "shared";
  pool?: string;
  defaultStrategy?: string;
  allowAllTenants?: boolean;
  restrictTo?: string[];
  admission?: "vtc" | "fcfs" | "off";
  maxQueueWaitMs?: number;
  nodeLimit?: number | "none";
  vtcInputWeight?: number;
  vtcOutputWeight?: number;
  vtcHeadroom?: number;
}

export function registerModelCommands(program: Command): void {
  const models = withExamples(program.command("models").description("manage models: their pool, default routing strategy and tenant access"), [
    "switchyard models configure llama-3.1-8b --default-strategy least-request",
    "switchyard models list",
  ]);

  adminCommand(models, "list", "list configured models", ["switchyard models list", "switchyard models list --json"]).action(async (_opts: unknown, cmd: Command) => {
    const ctx = adminContext(cmd);
    const body = await ctx.client.get<ListBody<ModelJson>>("/models");
    if (ctx.json) return ctx.out.out(json(body));
    ctx.out.out(body.data.length === 0 ? "No models configured. Configure one with: switchyard models configure <name>\n" : table(body.data, columns));
  });

  adminCommand(models, "show <name>", "show one model's configuration", ["switchyard models show llama-3.1-8b", "switchyard models show meta-llama/Llama-3.1-8B-Instruct"]).action(
    async (name: string, _opts: unknown, cmd: Command) => {
      const ctx = adminContext(cmd);
      const m = await ctx.client.get<ModelJson>(`/models/${seg(name)}`);
      ctx.out.out(ctx.json ? json(m) : modelFields(m));
    },
  );

  adminCommand(models, "configure <name>", "create or update a model; options left out keep their current value (new models: pool from the name, least-request, all tenants)", [
    "switchyard models configure llama-3.1-8b",
    "switchyard models configure llama-3.1-8b --pool llama-8b --default-strategy least-request:3,random",
    "switchyard models configure llama-3.1-8b --restrict-to acme --restrict-to globex",
    "switchyard models configure llama-3.1-8b --allow-all-tenants",
    "switchyard models configure llama-3.1-8b --prefix-sharing shared",
    "switchyard models configure llama-3.1-8b --admission vtc --max-queue-wait-ms 20000 --node-limit 32",
  ])
    .option("--pool <pool>", "pool (lowercase slug) whose nodes serve the model; models sharing a pool share its nodes' load view")
    .option("--default-strategy <spec>", "routing strategy used when a request names none: a name or weighted names, e.g. least-request or least-request:3,random")
    .addOption(new Option("--allow-all-tenants", "let every tenant use the model").conflicts("restrictTo"))
    .addOption(
      new Option("--prefix-sharing <mode>", "tenant: each tenant's prompts match only its own cached prefixes (default); shared: all tenants share (public system prompts)").choices(["tenant", "shared"]),
    )
    .addOption(new Option("--restrict-to <tenant>", "only these tenants may use the model (repeat, or comma-separate); replaces the list").argParser(collect))
    .addOption(
      new Option("--admission <policy>", "when nodes are full: vtc waits fairly between tenants (default), fcfs in arrival order, off sends at once").choices(["vtc", "fcfs", "off"]),
    )
    .option("--max-queue-wait-ms <ms>", "longest a request waits for room before a 429 (0..600000)", (v: string) => {
      const n = v.trim() === "0" ? 0 : positiveNumber(600_000)(v);
      if (!Number.isInteger(n)) throw new InvalidArgumentError("must be a whole number of milliseconds");
      return n;
    })
    .option("--node-limit <n>", "requests in flight per node before requests wait, or 'none' for the engines' own concurrency", limitOrNone(1_000_000))
    .option("--vtc-input-weight <w>", "VTC cost of one prompt token (default 1)", positiveNumber(1_000))
    .option("--vtc-output-weight <w>", "VTC cost of one output token (default 2)", positiveNumber(1_000))
    .option("--vtc-headroom <fraction>", "how far over its limit a node may go for a tenant below its fair share, 0..1 of the limit (default 0.1; 0 turns it off)", (v: string) => {
      const n = Number(v.trim());
      if (v.trim() === "" || !Number.isFinite(n) || n < 0 || n > 1) throw new InvalidArgumentError("must be a number from 0 to 1");
      return n;
    })
    .action(async (name: string, opts: ConfigureOpts, cmd: Command) => {
      const ctx = adminContext(cmd);
      const body = {
        ...(opts.pool !== undefined ? { pool: opts.pool } : {}),
        ...(opts.defaultStrategy !== undefined ? { default_strategy: opts.defaultStrategy } : {}),
        ...(opts.prefixSharing !== undefined ? { prefix_sharing: opts.prefixSharing } : {}),
        ...(opts.allowAllTenants ? { allow_all_tenants: true } : {}),
        ...(opts.restrictTo !== undefined ? { allow_all_tenants: false, tenants: opts.restrictTo } : {}),
        ...(opts.admission !== undefined ? { admission_policy: opts.admission } : {}),
        ...(opts.maxQueueWaitMs !== undefined ? { max_queue_wait_ms: opts.maxQueueWaitMs } : {}),
        ...(opts.nodeLimit !== undefined ? { node_limit: orNull(opts.nodeLimit) } : {}),
        ...(opts.vtcInputWeight !== undefined ? { vtc_input_weight: opts.vtcInputWeight } : {}),
        ...(opts.vtcOutputWeight !== undefined ? { vtc_output_weight: opts.vtcOutputWeight } : {}),
        ...(opts.vtcHeadroom !== undefined ? { vtc_headroom: opts.vtcHeadroom } : {}),
      };
      const m = await naming(ctx.client.put<ModelJson>(`/models/${seg(name)}`, body), {
        name: "<name>",
        pool: "--pool",
        prefix_sharing: "--prefix-sharing",
        default_strategy: "--default-strategy",
        allow_all_tenants: "--allow-all-tenants",
        tenants: "--restrict-to",
        admission_policy: "--admission",
        max_queue_wait_ms: "--max-queue-wait-ms",
        node_limit: "--node-limit",
        vtc_input_weight: "--vtc-input-weight",
        vtc_output_weight: "--vtc-output-weight",
        vtc_headroom: "--vtc-headroom",
      });
      ctx.out.out(ctx.json ? json(m) : `Configured model ${m.name}.\n${modelFields(m)}`);
    });

  adminCommand(models, "allow <name> <tenant>", "let one more tenant use a restricted model (the rest of the list is kept)", ["switchyard models allow llama-3.1-8b acme"]).action(
    async (name: string, tenant: string, _opts: unknown, cmd: Command) => {
      const ctx = adminContext(cmd);
      const m = await ctx.client.put<ModelJson>(`/access/${seg(tenant)}/${seg(name)}`, {});
      ctx.out.out(ctx.json ? json(m) : `Tenant ${tenant} may use ${m.name}.\n${modelFields(m)}`);
    },
  );

  adminCommand(models, "deny <name> <tenant>", "withdraw one tenant's access to a restricted model", ["switchyard models deny llama-3.1-8b acme"]).action(
    async (name: string, tenant: string, _opts: unknown, cmd: Command) => {
      const ctx = adminContext(cmd);
      const m = await ctx.client.delete<ModelJson>(`/access/${seg(tenant)}/${seg(name)}`);
      ctx.out.out(ctx.json ? json(m) : `Tenant ${tenant} no longer appears in ${m.name}'s list.\n${modelFields(m)}`);
    },
  );

  adminCommand(models, "remove <name>", "remove a model's configuration: requests for it fail until it is configured again", ["switchyard models remove llama-3.1-8b"]).action(
    async (name: string, _opts: unknown, cmd: Command) => {
      const ctx = adminContext(cmd);
      const r = await ctx.client.delete<DeletedJson>(`/models/${seg(name)}`);
      ctx.out.out(ctx.json ? json(r) : `Removed model ${r.name ?? name}.\n`);
    },
  );
}
