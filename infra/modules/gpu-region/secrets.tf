# Secrets Manager holds what nodes must not carry in user data. Terraform creates the containers;
# the node secrets' values are written by the registration step (registration.tf) straight from the
# edge's answer into Secrets Manager, so they never enter Terraform state. The tunnel token is
# already in state (the Cloudflare provider reads it), so Terraform writes that one itself.

locals {
  secret_prefix      = "${var.name_prefix}/${var.region}"
  tunnel_secret_name = "${local.secret_prefix}/tunnel-token"
}

resource "aws_secretsmanager_secret" "tunnel_token" {
  region      = var.aws_region
  name        = local.tunnel_secret_name
  description = "Cloudflare Tunnel token for the ${var.region} node group (cloudflared on every node)"
  # Deleted at once on destroy, so a re-created region can take the same name.
  recovery_window_in_days = 0
  tags                    = local.tags
}

resource "aws_secretsmanager_secret_version" "tunnel_token" {
  region        = var.aws_region
  secret_id     = aws_secretsmanager_secret.tunnel_token.id
  secret_string = var.tunnel_token
}

resource "aws_secretsmanager_secret" "node" {
  for_each                = local.nodes
  region                  = var.aws_region
  name                    = each.value.secret_name
  description             = "Switchyard node secret of ${each.key}: JSON {nodeSecret, previousNodeSecret?}, written by node registration"
  recovery_window_in_days = 0
  tags                    = merge(local.tags, { "switchyard:node-id" = each.key })
}
