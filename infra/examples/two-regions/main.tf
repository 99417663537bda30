# The edge and two GPU regions wired together: the edge module creates one Cloudflare Tunnel per
# region and binds it to the Worker as VPC_EU_WEST / VPC_US_EAST; each region's nodes run that
# tunnel's cloudflared, register with the edge and send heartbeats to it.

locals {
  regions = {
    eu-west = {
      aws_region = "eu-west-1"
      vpc_cidr   = "10.40.0.0/16"
      location   = { latitude = 53.35, longitude = -6.26 } # Dublin
    }
    us-east = {
      aws_region = "us-east-1"
      vpc_cidr   = "10.41.0.0/16"
      location   = { latitude = 38.9, longitude = -77.4 } # Northern Virginia
    }
  }
  bundle_dir = var.bundle_dir != null ? var.bundle_dir : "${path.root}/build/worker"
}

module "edge" {
  source = "../../modules/edge"

  account_id             = var.cloudflare_account_id
  zone_id                = var.cloudflare_zone_id
  hostname               = var.hostname
  admin_token            = var.admin_token
  bundle_dir             = local.bundle_dir
  regions                = toset(keys(local.regions))
  default_region         = "eu-west"
  deployed_migration_tag = var.deployed_migration_tag
}

module "gpu_region" {
  source   = "../../modules/gpu-region"
  for_each = local.regions

  region        = each.key
  aws_region    = each.value.aws_region
  vpc_cidr      = each.value.vpc_cidr
  location      = each.value.location
  edge_url      = module.edge.url
  tunnel_token  = module.edge.tunnels[each.key].token
  node_count    = var.nodes_per_region
  instance_type = var.instance_type
  engine = {
    kind     = var.engine_kind
    model    = var.model.name
    hf_model = var.model.hf_model
  }
  cache_server = {
    # A quarter of a g6e.xlarge's 32 GiB; vLLM and the agent need the rest.
    capacity = "8GiB"
    # Two threads of its 4 vCPUs (ports 7400-7401); vLLM's front end and the agent use the others.
    shards = 2
  }
  switchyard_source   = var.switchyard_source
  hf_token_secret_arn = lookup(var.hf_token_secret_arns, each.key, null)
}
