/** `switchyard tenants ...`: create, list, show, disable and enable tenants. */
import type { Command } from "commander";
import { seg } from "../admin-client";
import { adminCommand, adminContext, naming, withExamples } from "../admin-command";
import type { ListBody, TenantJson } from "../admin-types";
import { type Column, fields, isoWithAge, json, shortIso, table } from "../output";

const columns: Column<TenantJson>[] = [
  { header: "id", value: (t) => t.id },
  { header: "name", value: (t) => t.name },
  { header: "status", value: (t) => (t.disabled ? "disabled" : "active") },
  { header: "created", value: (t) => shortIso(t.created_at) },
  { header: "disabled at", value: (t) => shortIso(t.disabled_at) },
];

function tenantFields(t: TenantJson): string {
  return fields([
    ["id", t.id],
    ["name", t.name],
    ["status", t.disabled ? "disabled" : "active"],
    ["created", isoWithAge(t.created_at)],
    ["disabled at", t.disabled_at ? isoWithAge(t.disabled_at) : null],
  ]);
}

export function registerTenantCommands(program: Command): void {
  const tenants = withExamples(program.command("tenants").description("manage tenants (the customers whose API keys call /v1)"), [
    'switchyard tenants create "Acme Corp" --id acme',
    "switchyard tenants list",
  ]);

  adminCommand(tenants, "create <name>", "create a tenant", ['switchyard tenants create "Acme Corp" --id acme', 'switchyard tenants create "Globex" --json'])
    .option("--id <slug>", "tenant id (lowercase slug: a-z, 0-9, '.', '_', '-'); generated when omitted")
    .action(async (name: string, opts: { id?: string }, cmd: Command) => {
      const ctx = adminContext(cmd);
      const t = await naming(ctx.client.post<TenantJson>("/tenants", { name, ...(opts.id !== undefined ? { id: opts.id } : {}) }), { name: "<name>", id: "--id" });
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
