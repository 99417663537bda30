/** `switchyard regions ...`: where regions are, so callers are sent to the nearest one with room. */
import type { Command } from "commander";
import { seg } from "../admin-client";
import { adminCommand, adminContext, naming, withExamples } from "../admin-command";
import type { DeletedJson, ListBody, RegionJson } from "../admin-types";
import { CliError } from "../cli-error";
import { type Column, json, shortIso, table } from "../output";

const columns: Column<RegionJson>[] = [
  { header: "region", value: (r) => r.id },
  { header: "latitude", value: (r) => r.latitude, right: true },
  { header: "longitude", value: (r) => r.longitude, right: true },
  { header: "updated", value: (r) => shortIso(r.updated_at) },
];

function coordinate(name: string, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === "" || !Number.isFinite(n) || Math.abs(n) > max) throw new CliError(`${name} must be a number from -${max} to ${max}, got '${value}'`);
    return n;
  };
}

export function registerRegionCommands(program: Command): void {
  const regions = withExamples(program.command("regions").description("manage regions: where node groups are, for nearest-region routing"), [
    "switchyard regions set eu-west --latitude 53.35 --longitude -6.26",
    "switchyard regions list",
  ]);

  adminCommand(regions, "set <id>", "create or move a region (nodes registered with --region <id> belong to it)", [
    "switchyard regions set eu-west --latitude 53.35 --longitude -6.26",
  ])
    .requiredOption("--latitude <deg>", "latitude of the region's data centre", coordinate("--latitude", 90))
    .requiredOption("--longitude <deg>", "longitude of the region's data centre", coordinate("--longitude", 180))
    .action(async (id: string, opts: { latitude: number; longitude: number }, cmd: Command) => {
      const ctx = adminContext(cmd);
      const r = await naming(ctx.client.put<RegionJson>(`/regions/${seg(id)}`, { latitude: opts.latitude, longitude: opts.longitude }), {
        id: "<id>",
        latitude: "--latitude",
        longitude: "--longitude",
      });
      ctx.out.out(ctx.json ? json(r) : `Region ${r.id} is at ${r.latitude}, ${r.longitude}.\n`);
    });

  adminCommand(regions, "list", "list regions and their coordinates", ["switchyard regions list"]).action(async (_opts: unknown, cmd: Command) => {
    const ctx = adminContext(cmd);
    const body = await ctx.client.get<ListBody<RegionJson>>("/regions");
    if (ctx.json) return ctx.out.out(json(body));
    ctx.out.out(body.data.length === 0 ? "No regions configured: requests go to the default region first (DEFAULT_REGION).\n" : table(body.data, columns));
  });

  adminCommand(regions, "remove <id>", "forget a region's coordinates (its nodes keep serving; they are just not ranked by distance)", ["switchyard regions remove eu-west"]).action(
    async (id: string, _opts: unknown, cmd: Command) => {
      const ctx = adminContext(cmd);
      const r = await ctx.client.delete<DeletedJson>(`/regions/${seg(id)}`);
      ctx.out.out(ctx.json ? json(r) : `Removed region ${r.id ?? id}.\n`);
    },
  );
}
