output "node_ids" {
  description = "Node ids registered at the edge for this region."
  value       = local.node_ids
}

output "models" {
  description = "Models this region's nodes serve (configure them at the edge: switchyard models configure <model>)."
  value       = local.models
}

output "vpc_id" {
  description = "The region's VPC."
  value       = aws_vpc.region.id
}

output "private_subnet_ids" {
  description = "Private subnets the nodes run in."
  value       = aws_subnet.private[*].id
}

output "security_group_id" {
  description = "Security group of the nodes."
  value       = aws_security_group.node.id
}

output "autoscaling_groups" {
  description = "Autoscaling group name per node id."
  value       = { for id in local.node_ids : id => aws_autoscaling_group.node[id].name }
}

output "node_secret_names" {
  description = "Secrets Manager secret per node id (JSON {nodeSecret, previousNodeSecret?})."
  value       = { for id, n in local.nodes : id => n.secret_name }
}

output "ami_id" {
  description = "AMI new instances boot (pin it with ami_id: with the default, the next apply after an AWS release moves the launch templates to it)."
  value       = local.ami_id
}

output "agent_configs" {
  description = "Agent configuration per node id, as written to /etc/switchyard/agent.json."
  value       = { for id in local.node_ids : id => module.bootstrap[id].agent_config }
}
