/**
 * Tenant tables for multi-tenant workloads: a JSON file (`{"tenants": [...]}` or an array) and/or
 * inline `--tenant id:rate=10,weight=2,key-env=ACME_KEY,dataset=acme.jsonl` options.
 *
 * Each tenant: `id`; `rate` (its own mean req/s — the pattern scaled for it) or `weight` (its share
 * of the pattern's rate among tenants without a rate; default 1); its key as `api_key_env` (an
 * environment variable `bench run` reads) or `api_key`; optionally its own `dataset`.
 *
 * @example
 * ```ts
 * parseTenants(undefined, ["heavy:rate=20,key-env=HEAVY_KEY", "light:weight=1"]);
 * ```
 */
import { BenchInputError, BenchUsageError, parseRecord } from "../lib/errors";
import { readJsonFile } from "../lib/jsonl";
import { type TenantSpec, tenantSpecSchema } from "./format";

const KEYS: Record<string, keyof TenantSpec> = {
  rate: "rate",
  weight: "weight",
  "key-env": "api_key_env",
  key_env: "api_key_env",
  api_key_env: "api_key_env",
  key: "api_key",
  api_key: "api_key",
  dataset: "dataset",
};

export function parseTenantSpec(text: string): TenantSpec {
  const m = /^([^:,=\s]+)(?::(.*))?$/.exec(text.trim());
  if (!m) throw new BenchUsageError(`--tenant '${text}': expected id:rate=…,weight=…,key-env=…`);
  const spec: Record<string, unknown> = { id: m[1] };
  for (const part of (m[2] ?? "").split(",").map((p) => p.trim()).filter(Boolean)) {
    const kv = /^([a-z_-]+)=(.+)$/.exec(part);
    const key = kv ? KEYS[kv[1] as string] : undefined;
    if (!kv || !key) throw new BenchUsageError(`--tenant '${text}': unknown setting '${part}' (use rate=, weight=, key-env=, key=, dataset=)`);
    spec[key] = key === "rate" || key === "weight" ? Number(kv[2]) : kv[2];
  }
  const parsed = tenantSpecSchema.safeParse(spec);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new BenchUsageError(`--tenant '${text}': ${issue?.path.join(".") ?? ""}: ${issue?.message ?? "invalid"}`);
  }
  return parsed.data;
}

export function loadTenantFile(file: string): TenantSpec[] {
  const v = readJsonFile(file);
  const list = Array.isArray(v) ? v : (v as { tenants?: unknown })?.tenants;
  if (!Array.isArray(list)) throw new BenchInputError(file, undefined, "tenants", 'expected {"tenants": [...]} or an array of tenants');
  return list.map((t, i) => parseRecord(tenantSpecSchema, t, file, undefined, `tenants[${i}]`));
}

/** The tenant table from a file and inline specs (inline ones replace file entries of the same id). */
export function parseTenants(file: string | undefined, inline: string[]): TenantSpec[] {
  const out = new Map<string, TenantSpec>();
  if (file) {
    for (const t of loadTenantFile(file)) {
      if (out.has(t.id)) throw new BenchInputError(file, undefined, "tenants", `tenant '${t.id}' appears twice`);
      out.set(t.id, t);
    }
  }
  for (const text of inline) {
    const t = parseTenantSpec(text);
    out.set(t.id, t);
  }
  return [...out.values()];
}
