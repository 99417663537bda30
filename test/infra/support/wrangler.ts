/**
 * wrangler.toml as wrangler itself reads it (its own config reader, so TOML quirks, defaults and
 * validation are wrangler's), for comparing the Terraform edge module against it.
 */
import { resolve } from "node:path";

export const REPO = resolve(import.meta.dirname, "../../..");

export interface WranglerEdgeConfig {
  name: string;
  compatibility_date: string;
  compatibility_flags: string[];
  vars: Record<string, unknown>;
  d1_databases: { binding: string; database_name: string; database_id?: string; migrations_dir?: string }[];
  durable_objects: { bindings: { name: string; class_name: string; script_name?: string }[] };
  migrations: { tag: string; new_classes?: string[]; new_sqlite_classes?: string[]; renamed_classes?: unknown[]; deleted_classes?: string[]; transferred_classes?: unknown[] }[];
}

export async function readWranglerConfig(path = resolve(REPO, "wrangler.toml")): Promise<WranglerEdgeConfig> {
  const { unstable_readConfig } = await import("wrangler");
  const c = unstable_readConfig({ config: path });
  return {
    name: c.name as string,
    compatibility_date: c.compatibility_date as string,
    compatibility_flags: c.compatibility_flags ?? [],
    vars: c.vars ?? {},
    d1_databases: c.d1_databases as WranglerEdgeConfig["d1_databases"],
    durable_objects: c.durable_objects as WranglerEdgeConfig["durable_objects"],
    migrations: c.migrations as WranglerEdgeConfig["migrations"],
  };
}
