output "cloud_init" {
  description = "cloud-init user data (#cloud-config) that installs and starts everything on the node. Holds no secrets."
  value       = local.cloud_init
}

output "agent_config" {
  description = "The agent configuration written to /etc/switchyard/agent.json (the node secret and advertised URL come from the environment at start)."
  value       = local.agent_config
}

output "agent_config_path" {
  description = "Where the agent configuration is written on the node."
  value       = local.agent_config_path
}

output "systemd_units" {
  description = "Rendered systemd units by file name."
  value       = local.units
}

output "services" {
  description = "systemd services the bootstrap enables, in start order."
  value       = local.systemd_services
}

output "models" {
  description = "Models the node serves, as the edge names them (what its registration lists)."
  value       = [var.engine.model]
}
