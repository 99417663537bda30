# What the Worker's code expects, mirrored from wrangler.toml (which `wrangler dev` and
# `npm run deploy` read). test/infra/edge-module.test.ts reads wrangler.toml and fails when these
# drift: add a Durable Object, a migration, a compatibility flag or a var there, and here.

locals {
  compatibility_date  = "2026-04-20"
  compatibility_flags = ["nodejs_compat", "enable_request_signal"]

  # [[d1_databases]]
  d1_binding = "DB"

  # [[durable_objects.bindings]]
  durable_objects = [
    { name = "POOL", class_name = "PoolObject" },
    { name = "LEDGER", class_name = "TenantLedger" },
  ]

  # [[migrations]], oldest first. Never edit an applied entry: append a new tag.
  do_migrations = [
    { tag = "v1", new_sqlite_classes = ["PoolObject"] },
    { tag = "v2", new_sqlite_classes = ["TenantLedger"] },
  ]

  # [vars] defaults; var.vars overrides them and DEFAULT_REGION comes from var.default_region.
  default_vars = {
    MAX_BODY_BYTES   = "1048576"
    KEY_CACHE_TTL_MS = "5000"
  }

  # Secrets the Worker reads (worker/env.ts).
  secrets = {
    ADMIN_TOKEN     = var.admin_token
    NODE_SECRET_KEY = local.node_secret_key
  }

  plain_vars = merge(local.default_vars, { DEFAULT_REGION = var.default_region }, var.vars)

  # VPC_<REGION>: the region upper-cased, other characters as "_" (worker/nodes/node-transport.ts).
  vpc_binding_names = { for r in var.regions : r => "VPC_${upper(replace(r, "/[^a-zA-Z0-9]/", "_"))}" }

  bindings = concat(
    [{ type = "d1", name = local.d1_binding, id = cloudflare_d1_database.edge.id }],
    [for d in local.durable_objects : { type = "durable_object_namespace", name = d.name, class_name = d.class_name }],
    [for k in sort(keys(local.plain_vars)) : { type = "plain_text", name = k, text = local.plain_vars[k] }],
    [for k in sort(keys(local.secrets)) : { type = "secret_text", name = k, text = local.secrets[k] }],
    [for r in sort(tolist(var.regions)) : { type = "vpc_network", name = local.vpc_binding_names[r], tunnel_id = cloudflare_zero_trust_tunnel_cloudflared.region[r].id }],
  )

  # A version carries the migrations after the live tag: all of them for a new Worker, none once
  # the latest is deployed (re-sending an applied tag fails the upload).
  migration_tags        = [for m in local.do_migrations : m.tag]
  latest_migration_tag  = local.migration_tags[length(local.migration_tags) - 1]
  applied_migrations    = var.deployed_migration_tag == null ? 0 : index(local.migration_tags, var.deployed_migration_tag) + 1
  pending_do_migrations = slice(local.do_migrations, local.applied_migrations, length(local.do_migrations))
  version_do_migrations = length(local.pending_do_migrations) == 0 ? null : {
    old_tag = var.deployed_migration_tag
    new_tag = local.latest_migration_tag
    steps   = [for m in local.pending_do_migrations : { new_sqlite_classes = m.new_sqlite_classes }]
  }
}
