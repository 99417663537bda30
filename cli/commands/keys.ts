/** `switchyard keys ...`: issue, list, show and revoke tenants' API keys. */
import { type Command, Option } from "commander";
import { seg } from "../admin-client";
import { adminCommand, adminContext, isoDateTime, naming, positiveNumber, withExamples } from "../admin-command";
import type { IssuedKeyJson, KeyJson, ListBody } from "../admin-types";
import { CliError } from "../cli-error";
import { ago, type Column, fields, isoWithAge, json, shortIso, table } from "../output";

const MAX_DAYS = 3650;

export const KEY_WARNING = "Store this key now: it is shown only this once and cannot be retrieved later.";

function expiry(k: KeyJson): string {
  if (!k.expires_at) return "never";
  return `${shortIso(k.expires_at)} (${ago(k.expires_at)})`;
}

const columns: Column<KeyJson>[] = [
  { header: "id", value: (k) => k.id },
  { header: "name", value: (k) => k.name },
  { header: "prefix", value: (k) => k.prefix },
  { header: "status", value: (k) => k.status },
  { header: "created", value: (k) => shortIso(k.created_at) },
  { header: "expires", value: expiry },
  { header: "revoked", value: (k) => shortIso(k.revoked_at) },
];

function keyFields(k: KeyJson): string {
  return fields([
    ["id", k.id],
    ["tenant", k.tenant_id],
    ["name", k.name],
    ["prefix", k.prefix],
    ["status", k.status],
    ["created", isoWithAge(k.created_at)],
    ["expires", k.expires_at ? isoWithAge(k.expires_at) : "never"],
    ["revoked", k.revoked_at ? isoWithAge(k.revoked_at) : null],
  ]);
}

/** A key id, also from its listed prefix (`sk-sy-key_...`) or the whole key (whose secret is never sent). */
export function keyIdOf(arg: string): string {
  const m = /^sk-sy-(key_[a-z0-9]+)(\..*)?$/.exec(arg.trim());
  return m ? (m[1] as string) : arg.trim();
}

interface IssueOpts {
  name?: string;
  expiresInDays?: number;
  expiresAt?: string;
}

export function registerKeyCommands(program: Command): void {
  const keys = withExamples(program.command("keys").description("manage tenants' API keys (Bearer keys for /v1)"), [
    "switchyard keys issue acme --name ci --expires-in-days 90",
    "switchyard keys list acme",
  ]);

  adminCommand(keys, "issue <tenant>", "issue an API key for a tenant; the key is printed once", [
    "switchyard keys issue acme",
    "switchyard keys issue acme --name ci --expires-in-days 90",
    "switchyard keys issue acme --expires-at 2026-12-31T23:59:59Z --json",
  ], "Without --expires-in-days or --expires-at the key never expires; revoke it with: switchyard keys revoke <keyId>")
    .option("--name <name>", 'a label to tell keys apart (default "default")')
    .addOption(new Option("--expires-in-days <n>", `expire after n days (at most ${MAX_DAYS}; fractions allowed)`).argParser(positiveNumber(MAX_DAYS)).conflicts("expiresAt"))
    .addOption(new Option("--expires-at <iso>", "expire at this time: ISO 8601 date (UTC midnight) or date-time with Z/offset").argParser(isoDateTime))
    .action(async (tenant: string, opts: IssueOpts, cmd: Command) => {
      if (opts.expiresAt !== undefined && Date.parse(opts.expiresAt) <= Date.now()) {
        throw new CliError(`--expires-at: ${opts.expiresAt} is in the past`);
      }
      const ctx = adminContext(cmd);
      const body = {
        ...(opts.name !== undefined ? { name: opts.name } : {}),
        ...(opts.expiresInDays !== undefined ? { expires_in_days: opts.expiresInDays } : {}),
        ...(opts.expiresAt !== undefined ? { expires_at: opts.expiresAt } : {}),
      };
      const k = await naming(ctx.client.post<IssuedKeyJson>(`/tenants/${seg(tenant)}/keys`, body), {
        tenant: "<tenant>",
        name: "--name",
        expires_in_days: "--expires-in-days",
        expires_at: "--expires-at",
      });
      if (ctx.json) {
        ctx.out.out(json(k));
        ctx.out.err(`switchyard: warning: ${KEY_WARNING}\n`);
        return;
      }
      ctx.out.out(
        [
          `Issued key ${k.id} (${k.name}) for tenant ${k.tenant_id}; expires: ${k.expires_at ? shortIso(k.expires_at) : "never"}.`,
          "",
          `  ${k.key}`,
          "",
          `WARNING: ${KEY_WARNING}`,
          "",
        ].join("\n"),
      );
    });

  adminCommand(keys, "list <tenant>", "list a tenant's API keys (never their plaintext)", ["switchyard keys list acme"]).action(
    async (tenant: string, _opts: unknown, cmd: Command) => {
      const ctx = adminContext(cmd);
      const body = await ctx.client.get<ListBody<KeyJson>>(`/tenants/${seg(tenant)}/keys`);
      if (ctx.json) return ctx.out.out(json(body));
      ctx.out.out(body.data.length === 0 ? `Tenant ${tenant} has no keys. Issue one with: switchyard keys issue ${tenant}\n` : table(body.data, columns));
    },
  );

  adminCommand(keys, "show <keyId>", "show one API key (by id, or by its sk-sy-key_... prefix)", ["switchyard keys show key_3f9k2m1q8x0a"]).action(async (keyId: string, _opts: unknown, cmd: Command) => {
    const ctx = adminContext(cmd);
    const k = await ctx.client.get<KeyJson>(`/keys/${seg(keyIdOf(keyId))}`);
    ctx.out.out(ctx.json ? json(k) : keyFields(k));
  });

  adminCommand(keys, "revoke <keyId>", "revoke an API key (by id or prefix); edge caches catch up within seconds", ["switchyard keys revoke key_3f9k2m1q8x0a"]).action(
    async (keyId: string, _opts: unknown, cmd: Command) => {
      const ctx = adminContext(cmd);
      const k = await ctx.client.post<KeyJson>(`/keys/${seg(keyIdOf(keyId))}/revoke`);
      ctx.out.out(ctx.json ? json(k) : `Revoked key ${k.id} (${k.name}) of tenant ${k.tenant_id}.\n`);
    },
  );
}
