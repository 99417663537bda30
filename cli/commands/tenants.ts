/** `switchyard tenants ...`: create, list, show, update (weight, limits), usage, disable and enable. */
import { type Command, Option } from "commander";
import { seg } from "../admin-client";
import { adminCommand, adminContext, isoDateTime, limitOrNone, naming, orNull, positiveNumber, withExamples } from "../admin-command";
import type { ListBody, TenantJson, UsageJson } from "../admin-types";
import { type Column, fields, isoWithAge, json, shortIso, table } from "../output";

const limit = (n: number | null, unit: string) => (n === null ? "none" : `${n.toLocaleString("en-US")} ${unit}`);

const columns: Column<TenantJson>[] = [
  { header: "id", value: (t) => t.id },
  { header: "name", value: (t) => t.name },
  { header: "status", value: (t) => (t.disabled ? "disabled" : "active") },
  { header: "weight", value: (t) => String(t.weight) },
  { header: "rpm", value: (t) => (t.rpm_limit === null ? "-" : String(t.rpm_limit)) },
  { header: "tpm", value: (t) => (t.tpm_limit === null ? "-" : String(t.tpm_limit)) },
  { header: "budget", value: (t) => (t.token_budget === null ? "-" : `${t.token_budget}/${t.budget_period}`) },
  { header: "created", value: (t) => shortIso(t.created_at) },
];

function tenantFields(t: TenantJson): string {
  return fields([
    ["id", t.id],
    ["name", t.name],
    ["status", t.disabled ? "disabled" : "active"],
    ["fair-share weight", t.weight],
    ["requests per minute", limit(t.rpm_limit, "requests")],
    ["tokens per minute", limit(t.tpm_limit, "tokens")],
    ["token budget", t.token_budget === null ? "none" : `${limit(t.token_budget, "tokens")} per ${t.budget_period} (UTC)`],
    ["default max_tokens", t.default_max_tokens === null ? "edge default (1024) when token limits apply" : t.default_max_tokens],
    ["created", isoWithAge(t.created_at)],
    ["disabled at", t.disabled_at ? isoWithAge(t.disabled_at) : null],
  ]);
}

interface LimitOpts {
  weight?: number;
  rpm?: number | "none";
  tpm?: number | "none";
  tokenBudget?: number | "none";
  budgetPeriod?: "day" | "month";
  defaultMaxTokens?: number | "none";
}

/** The weight and limit options shared by `create` and `update`. */
function withLimitOptions(cmd: Command): Command {
  return cmd
    .option("--weight <n>", "fair-share weight under contention: weight 2 gets twice the service of weight 1", positiveNumber(1_000))
    .option("--rpm <n>", "requests per minute (sliding 60 s), or 'none'", limitOrNone(Number.MAX_SAFE_INTEGER))
    .option("--tpm <n>", "tokens (prompt + completion) per minute, or 'none'", limitOrNone(Number.MAX_SAFE_INTEGER))
    .option("--token-budget <n>", "tokens per budget period, or 'none'", limitOrNone(Number.MAX_SAFE_INTEGER))
    .addOption(new Option("--budget-period <period>", "calendar period of the token budget, in UTC").choices(["day", "month"]))
    .option("--default-max-tokens <n>", "completion cap (and reservation) for requests without max_tokens while token limits apply, or 'none'", limitOrNone(1_000_000));
}

function limitBody(o: LimitOpts): Record<string, unknown> {
  return {
    ...(o.weight !== undefined ? { weight: o.weight } : {}),
    ...(o.rpm !== undefined ? { rpm_limit: orNull(o.rpm) } : {}),
    ...(o.tpm !== undefined ? { tpm_limit: orNull(o.tpm) } : {}),
    ...(o.tokenBudget !== undefined ? { token_budget: orNull(o.tokenBudget) } : {}),
    ...(o.budgetPeriod !== undefined ? { budget_period: o.budgetPeriod } : {}),
    ...(o.defaultMaxTokens !== undefined ? { default_max_tokens: orNull(o.defaultMaxTokens) } : {}),
  };
}

const LIMIT_FLAGS = {
  weight: "--weight",
  rpm_limit: "--rpm",
  tpm_limit: "--tpm",
  token_budget: "--token-budget",
  budget_period: "--budget-period",
  default_max_tokens: "--default-max-tokens",
};

const count = (n: number) => n.toLocaleString("en-US");

function usageText(u: UsageJson): string {
  const rows = u.data.flatMap((b) => b.results.map((r) => ({ start: new Date(b.start_time * 1000).toISOString(), ...r })));
  const t = u.totals;
  const head = `Usage of ${u.tenant_id} from ${new Date(u.start_time * 1000).toISOString()} to ${new Date(u.end_time * 1000).toISOString()}:\n`;
  const totals = fields([
    ["requests", count(t.num_model_requests)],
    ["input tokens", `${count(t.input_tokens)} (${count(t.input_cached_tokens)} cached)`],
    ["output tokens", count(t.output_tokens)],
    ["failed or cut off", count(t.failed_requests)],
    ["estimated counts", count(t.estimated_requests)],
  ]);
  if (rows.length === 0) return `${head}${totals}`;
  return `${head}${table(rows, [
    { header: u.bucket_width === "1h" ? "hour" : "day", value: (r) => (u.bucket_width === "1h" ? r.start.slice(0, 16).replace("T", " ") : r.start.slice(0, 10)) },
    { header: "model", value: (r) => r.model ?? "" },
    { header: "requests", value: (r) => count(r.num_model_requests) },
    { header: "input", value: (r) => count(r.input_tokens) },
    { header: "cached", value: (r) => count(r.input_cached_tokens) },
    { header: "output", value: (r) => count(r.output_tokens) },
    { header: "failed", value: (r) => count(r.failed_requests) },
  ])}\nTotals:\n${totals}`;
}

export function registerTenantCommands(program: Command): void {
  const tenants = withExamples(program.command("tenants").description("manage tenants (the customers whose API keys call /v1)"), [
    'switchyard tenants create "Acme Corp" --id acme',
    "switchyard tenants update acme --tpm 200000 --token-budget 50000000",
    "switchyard tenants usage acme --from 2026-11-01",
  ]);

  withLimitOptions(
    adminCommand(tenants, "create <name>", "create a tenant", [
      'switchyard tenants create "Acme Corp" --id acme',
      'switchyard tenants create "Globex" --weight 2 --rpm 600 --tpm 200000 --json',
    ]).option("--id <slug>", "tenant id (lowercase slug: a-z, 0-9, '.', '_', '-'); generated when omitted"),
  ).action(async (name: string, opts: { id?: string } & LimitOpts, cmd: Command) => {
    const ctx = adminContext(cmd);
    const t = await naming(ctx.client.post<TenantJson>("/tenants", { name, ...(opts.id !== undefined ? { id: opts.id } : {}), ...limitBody(opts) }), { name: "<name>", id: "--id", ...LIMIT_FLAGS });
    if (ctx.json) return ctx.out.out(json(t));
    ctx.out.out(`Created tenant ${t.id} (${t.name}).\nIssue it an API key with: switchyard keys issue ${t.id}\n`);
  });

  adminCommand(tenants, "list", "list tenants", ["switchyard tenants list", "switchyard tenants list --json | jq -r '.data[].id'"]).action(async (_opts: unknown, cmd: Command) => {
    const ctx = adminContext(cmd);
    const body = await ctx.client.get<ListBody<TenantJson>>("/tenants");
    if (ctx.json) return ctx.out.out(json(body));
    ctx.out.out(body.data.length === 0 ? "No tenants yet. Create one with: switchyard tenants create <name>\n" : table(body.data, columns));
  });

  adminCommand(tenants, "show <id>", "show one tenant", ["switchyard tenants show acme"]).action(async (id: string, _opts: unknown, cmd: Command) => {
    const ctx = adminContext(cmd);
    const t = await ctx.client.get<TenantJson>(`/tenants/${seg(id)}`);
    ctx.out.out(ctx.json ? json(t) : tenantFields(t));
  });

  withLimitOptions(
    adminCommand(
      tenants,
      "update <id>",
      "change a tenant's name, weight or limits; options left out keep their value (edge caches catch up within seconds)",
      ["switchyard tenants update acme --rpm 600 --tpm 200000", "switchyard tenants update acme --token-budget 10000000 --budget-period day", "switchyard tenants update acme --tpm none"],
    ).option("--name <name>", "new display name"),
  ).action(async (id: string, opts: { name?: string } & LimitOpts, cmd: Command) => {
    const ctx = adminContext(cmd);
    const body = { ...(opts.name !== undefined ? { name: opts.name } : {}), ...limitBody(opts) };
    if (Object.keys(body).length === 0) {
      cmd.error("give at least one of --name, --weight, --rpm, --tpm, --token-budget, --budget-period, --default-max-tokens", { exitCode: 2 });
    }
    const t = await naming(ctx.client.patch<TenantJson>(`/tenants/${seg(id)}`, body), { name: "--name", ...LIMIT_FLAGS });
    ctx.out.out(ctx.json ? json(t) : `Updated tenant ${t.id}.\n${tenantFields(t)}`);
  });

  adminCommand(tenants, "usage <id>", "a tenant's usage: requests and tokens by day (or hour) and model; exact, unflushed requests included", [
    "switchyard tenants usage acme",
    "switchyard tenants usage acme --from 2026-11-01 --to 2026-11-15",
    "switchyard tenants usage acme --from 2026-11-24T00:00:00Z --bucket 1h --model llama-3.1-8b --json",
  ])
    .option("--from <date>", "start (ISO date or date-time; default: the start of this month, UTC)", isoDateTime)
    .option("--to <date>", "end, exclusive (ISO date or date-time; default: now)", isoDateTime)
    .addOption(new Option("--bucket <width>", "bucket width").choices(["1h", "1d"]).default("1d"))
    .option("--model <name>", "only this model")
    .action(async (id: string, opts: { from?: string; to?: string; bucket: string; model?: string }, cmd: Command) => {
      const ctx = adminContext(cmd);
      const q = new URLSearchParams({ bucket_width: opts.bucket });
      if (opts.from !== undefined) q.set("start_time", String(Math.floor(Date.parse(opts.from) / 1000)));
      if (opts.to !== undefined) q.set("end_time", String(Math.floor(Date.parse(opts.to) / 1000)));
      if (opts.model !== undefined) q.set("model", opts.model);
      const u = await naming(ctx.client.get<UsageJson>(`/tenants/${seg(id)}/usage?${q.toString()}`), { start_time: "--from", end_time: "--to", bucket_width: "--bucket", model: "--model" });
      ctx.out.out(ctx.json ? json(u) : usageText(u));
    });

  adminCommand(tenants, "disable <id>", "disable a tenant: its API keys are refused until it is enabled again", ["switchyard tenants disable acme"]).action(
    async (id: string, _opts: unknown, cmd: Command) => {
      const ctx = adminContext(cmd);
      const t = await ctx.client.post<TenantJson>(`/tenants/${seg(id)}/disable`);
      ctx.out.out(ctx.json ? json(t) : `Tenant ${t.id} is disabled (since ${shortIso(t.disabled_at)}); its API keys are refused (edge caches catch up within seconds).\n`);
    },
  );

  adminCommand(tenants, "enable <id>", "enable a disabled tenant", ["switchyard tenants enable acme"]).action(async (id: string, _opts: unknown, cmd: Command) => {
    const ctx = adminContext(cmd);
    const t = await ctx.client.post<TenantJson>(`/tenants/${seg(id)}/enable`);
    ctx.out.out(ctx.json ? json(t) : `Tenant ${t.id} is enabled.\n`);
  });
}
