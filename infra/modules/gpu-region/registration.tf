# Registration with the edge. `terraform apply` runs infra/scripts/edge-registration.ts on the
# operator's machine: it calls the edge's admin API (POST /admin/nodes returns the node's signing
# secret once) and pipes the secret straight into the node's Secrets Manager secret. The secret is
# never in Terraform state, a plan, a log or a command line. Needs, in the environment of
# `terraform apply` and `terraform destroy`: SWITCHYARD_ADMIN_TOKEN (the edge's ADMIN_TOKEN), AWS
# credentials for the aws CLI, and the repository's node_modules (npm ci).

locals {
  repo_dir = var.repo_dir != null ? var.repo_dir : abspath("${path.module}/../../..")
  models   = [var.engine.model]
}

# One per node identity. Creating it registers the node (or, when the edge knows it but its secret
# is gone from Secrets Manager, rotates the secret at once); destroying it removes the node.
resource "terraform_data" "node_registration" {
  for_each = local.nodes

  triggers_replace = {
    node_id   = each.key
    secret_id = aws_secretsmanager_secret.node[each.key].arn
  }
  input = {
    node_id    = each.key
    region     = var.region
    edge_url   = var.edge_url
    repo_dir   = local.repo_dir
    aws_region = var.aws_region
    secret_id  = aws_secretsmanager_secret.node[each.key].arn
  }

  provisioner "local-exec" {
    working_dir = self.input.repo_dir
    command     = "npx tsx infra/scripts/edge-registration.ts ensure-node --node '${self.input.node_id}' --region '${self.input.region}' ${join(" ", [for m in local.models : "--model '${m}'"])} --edge-url '${self.input.edge_url}' --secret-id '${self.input.secret_id}' --aws-region '${self.input.aws_region}'"
  }

  provisioner "local-exec" {
    when        = destroy
    working_dir = self.input.repo_dir
    command     = "npx tsx infra/scripts/edge-registration.ts remove-node --node '${self.input.node_id}' --edge-url '${self.input.edge_url}'"
  }
}

# Settings that change without a new identity (the models a node serves): re-running ensure-node
# updates the registration in place and keeps the secret.
resource "terraform_data" "node_settings" {
  for_each         = local.nodes
  triggers_replace = { models = local.models, registration = terraform_data.node_registration[each.key].id }

  provisioner "local-exec" {
    working_dir = local.repo_dir
    command     = "npx tsx infra/scripts/edge-registration.ts ensure-node --node '${each.key}' --region '${var.region}' ${join(" ", [for m in local.models : "--model '${m}'"])} --edge-url '${var.edge_url}' --secret-id '${aws_secretsmanager_secret.node[each.key].arn}' --aws-region '${var.aws_region}'"
  }
}

# The region's coordinates for nearest-region routing.
resource "terraform_data" "region_location" {
  count            = var.location == null ? 0 : 1
  triggers_replace = { region = var.region, location = var.location, edge_url = var.edge_url }

  provisioner "local-exec" {
    working_dir = local.repo_dir
    command     = "npx tsx infra/scripts/edge-registration.ts set-region --region '${var.region}' --latitude=${var.location.latitude} --longitude=${var.location.longitude} --edge-url '${var.edge_url}'"
  }
}
