output "url" {
  description = "The edge's base URL. Available once the Worker is deployed on its custom domain, so node registration that reads it waits for a live edge."
  value       = "https://${var.hostname}"

  depends_on = [cloudflare_workers_custom_domain.edge, cloudflare_workers_deployment.edge]
}

output "worker_name" {
  description = "Name of the Worker script."
  value       = cloudflare_worker.edge.name
}

output "version_id" {
  description = "The Worker version deployed at 100%."
  value       = cloudflare_worker_version.edge.id
}

output "d1_database_id" {
  description = "D1 database id (put it into wrangler.toml's database_id, or pass --database-id, to run wrangler d1 commands against it)."
  value       = cloudflare_d1_database.edge.id
}

output "d1_database_name" {
  description = "D1 database name."
  value       = cloudflare_d1_database.edge.name
}

output "durable_object_migration_tag" {
  description = "The Durable Object migration tag the deployed version brings the Worker to: set deployed_migration_tag to it for the next apply."
  value       = local.latest_migration_tag
}

output "vpc_bindings" {
  description = "Workers VPC binding name per region (VPC_<REGION>)."
  value       = local.vpc_binding_names
}

output "tunnels" {
  description = "Cloudflare Tunnel per region: id and the token its cloudflared replicas run with."
  sensitive   = true
  value = {
    for r in var.regions : r => {
      id    = cloudflare_zero_trust_tunnel_cloudflared.region[r].id
      token = data.cloudflare_zero_trust_tunnel_cloudflared_token.region[r].token
    }
  }
}
