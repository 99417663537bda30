output "edge_url" {
  description = "The OpenAI-compatible API: <edge_url>/v1 (and the admin API, <edge_url>/admin)."
  value       = module.edge.url
}

output "worker_version_id" {
  description = "Worker version deployed at 100%."
  value       = module.edge.version_id
}

output "d1_database_id" {
  description = "D1 database id (for wrangler d1 commands: npm run deploy -- --migrations-only --database-id <id>)."
  value       = module.edge.d1_database_id
}

output "durable_object_migration_tag" {
  description = "Set deployed_migration_tag to this before the next apply."
  value       = module.edge.durable_object_migration_tag
}

output "vpc_bindings" {
  description = "Workers VPC binding per region."
  value       = module.edge.vpc_bindings
}

output "nodes" {
  description = "Node ids per region, as registered at the edge."
  value       = { for r, m in module.gpu_region : r => m.node_ids }
}

output "models" {
  description = "Models the regions serve (configure each once: switchyard models configure <model>)."
  value       = distinct(flatten([for r, m in module.gpu_region : m.models]))
}

output "autoscaling_groups" {
  description = "Autoscaling group per node (one instance each)."
  value       = { for r, m in module.gpu_region : r => m.autoscaling_groups }
}
