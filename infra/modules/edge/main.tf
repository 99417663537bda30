# The edge: the Worker (one script, immutable versions, a deployment that sends all traffic to the
# newest), its D1 database with migrations applied, its Durable Object namespaces (created by the
# version's migrations), secrets, a custom domain, and one Cloudflare Tunnel per GPU region for the
# Workers VPC bindings.
#
# This module owns the Worker: do not also run `wrangler deploy` (npm run deploy) against the same
# script, or each tool will replace the other's version. `npm run deploy -- --dry-run` still builds
# the bundle this module uploads, and `--migrations-only` is how it applies D1 migrations.

locals {
  repo_dir        = var.repo_dir != null ? var.repo_dir : abspath("${path.module}/../../..")
  migrations_dir  = "${local.repo_dir}/migrations"
  node_secret_key = var.node_secret_key != null ? var.node_secret_key : random_password.node_secret_key[0].result

  bundle_main = "${var.bundle_dir}/index.js"
  bundle_map  = "${var.bundle_dir}/index.js.map"
  modules = concat(
    [{ name = "index.js", content_type = "application/javascript+module", content_file = local.bundle_main }],
    var.upload_source_map && fileexists(local.bundle_map) ? [{ name = "index.js.map", content_type = "application/source-map", content_file = local.bundle_map }] : [],
  )

  # Changes when any migration file changes, which re-runs `wrangler d1 migrations apply` (it skips
  # the migrations D1 has already recorded).
  migrations_hash = sha1(join(",", [for f in fileset(local.migrations_dir, "*.sql") : "${f}:${filesha1("${local.migrations_dir}/${f}")}"]))
}

resource "random_password" "node_secret_key" {
  count   = var.node_secret_key == null ? 1 : 0
  length  = 48
  special = false
}

resource "cloudflare_d1_database" "edge" {
  account_id            = var.account_id
  name                  = var.d1.name
  primary_location_hint = var.d1.primary_location_hint
  read_replication = {
    mode = var.d1.read_replication ? "auto" : "disabled"
  }
}

resource "terraform_data" "d1_migrations" {
  count            = var.apply_d1_migrations ? 1 : 0
  triggers_replace = [cloudflare_d1_database.edge.id, local.migrations_hash]

  provisioner "local-exec" {
    working_dir = local.repo_dir
    command     = "npx tsx scripts/deploy.ts --migrations-only --database-id '${cloudflare_d1_database.edge.id}' --database-name '${var.d1.name}'"
    environment = {
      CLOUDFLARE_ACCOUNT_ID = var.account_id
      WRANGLER_SEND_METRICS = "false"
    }
  }
}

resource "cloudflare_worker" "edge" {
  account_id = var.account_id
  name       = var.worker_name
  observability = {
    enabled = var.observability
  }
  subdomain = {
    enabled = var.workers_dev
  }
}

resource "cloudflare_worker_version" "edge" {
  account_id          = var.account_id
  worker_id           = cloudflare_worker.edge.id
  compatibility_date  = local.compatibility_date
  compatibility_flags = local.compatibility_flags
  main_module         = "index.js"
  modules             = local.modules
  bindings            = local.bindings
  migrations          = local.version_do_migrations
  limits              = var.cpu_ms == null ? null : { cpu_ms = var.cpu_ms }

  # The new code may need the new schema: migrate D1 first.
  depends_on = [terraform_data.d1_migrations]

  lifecycle {
    precondition {
      condition     = fileexists(local.bundle_main)
      error_message = "No Worker bundle at ${local.bundle_main}: run `npm run deploy -- --dry-run --outdir ${var.bundle_dir}` first."
    }
    precondition {
      condition     = var.deployed_migration_tag == null || contains(local.migration_tags, var.deployed_migration_tag)
      error_message = "deployed_migration_tag must be null or one of the migration tags in wrangler.toml."
    }
  }
}

resource "cloudflare_workers_deployment" "edge" {
  account_id  = var.account_id
  script_name = cloudflare_worker.edge.name
  strategy    = "percentage"
  versions = [{
    version_id = cloudflare_worker_version.edge.id
    percentage = 100
  }]
}

resource "cloudflare_workers_custom_domain" "edge" {
  account_id = var.account_id
  zone_id    = var.zone_id
  hostname   = var.hostname
  service    = cloudflare_worker.edge.name

  depends_on = [cloudflare_workers_deployment.edge]
}

resource "cloudflare_workers_route" "edge" {
  for_each = toset(var.routes)
  zone_id  = var.zone_id
  pattern  = each.value
  script   = cloudflare_worker.edge.name

  depends_on = [cloudflare_workers_deployment.edge]
}

# One remotely managed tunnel per region. Its cloudflared replicas run on the region's GPU nodes
# (every node is a replica, so the tunnel lives as long as any node does); the Worker's
# VPC_<REGION> binding sends requests through it to the nodes' private addresses. No ingress rules:
# nothing is published on a public hostname.
resource "cloudflare_zero_trust_tunnel_cloudflared" "region" {
  for_each   = var.regions
  account_id = var.account_id
  name       = "${var.worker_name}-${each.key}"
  config_src = "cloudflare"
}

data "cloudflare_zero_trust_tunnel_cloudflared_token" "region" {
  for_each   = var.regions
  account_id = var.account_id
  tunnel_id  = cloudflare_zero_trust_tunnel_cloudflared.region[each.key].id
}
