variable "region" {
  description = "Switchyard region slug (as the edge knows it, e.g. eu-west). Nodes register with it; the edge reaches them through VPC_<REGION>."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9._-]{0,62}$", var.region))
    error_message = "region must be a lowercase slug (a-z, 0-9, '.', '_', '-'; at most 63)."
  }
}

variable "aws_region" {
  description = "AWS region of the node group, e.g. eu-west-1."
  type        = string
}

variable "location" {
  description = "Latitude and longitude of the region's data centre, registered at the edge for nearest-region routing (null: not ranked by distance)."
  type = object({
    latitude  = number
    longitude = number
  })
  default = null
}

variable "name_prefix" {
  description = "Prefix of AWS resource names and of the Secrets Manager secret names."
  type        = string
  default     = "switchyard"
}

variable "edge_url" {
  description = "The edge's base URL (the edge module's url output: it becomes known only once the Worker is live)."
  type        = string
}

variable "tunnel_token" {
  description = "Token of the region's Cloudflare Tunnel (the edge module's tunnels[region].token). Stored in Secrets Manager; nodes run cloudflared with it."
  type        = string
  sensitive   = true
}

variable "node_count" {
  description = "Number of GPU nodes. Each is a stable identity at the edge (id <region>-<index>, its own secret) kept alive by its own autoscaling group of size one."
  type        = number
  default     = 2

  validation {
    condition     = var.node_count >= 0 && var.node_count <= 64 && floor(var.node_count) == var.node_count
    error_message = "node_count must be a whole number from 0 to 64."
  }
}

variable "instance_type" {
  description = "EC2 instance type of the nodes (a GPU type for vLLM, e.g. g6e.xlarge, p5.48xlarge)."
  type        = string
  default     = "g6e.xlarge"
}

variable "roll_nodes_on_change" {
  description = "Replace running nodes as soon as their launch template changes (new user data, AMI, instance type). Off: changes apply to the next instance each group starts; roll nodes one at a time (docs/deploy.md), since all nodes' templates change together."
  type        = bool
  default     = false
}

variable "ami_id" {
  description = "AMI for the nodes. null: the latest AWS Deep Learning Base GPU AMI (Ubuntu 24.04; NVIDIA driver, Docker, NVIDIA Container Toolkit, AWS CLI, SSM agent)."
  type        = string
  default     = null
}

variable "root_volume_gb" {
  description = "Root EBS volume size in GiB (the engine image and model weights live there)."
  type        = number
  default     = 300
}

variable "vpc_cidr" {
  description = "CIDR of the region's VPC. Private subnets take the first three quarters, the NAT gateway's public subnets /24s at the top."
  type        = string
  default     = "10.40.0.0/16"
}

variable "availability_zones" {
  description = "How many availability zones to spread subnets over (a node is replaced in any of them)."
  type        = number
  default     = 3

  validation {
    condition     = var.availability_zones >= 1 && var.availability_zones <= 3
    error_message = "availability_zones must be 1, 2 or 3."
  }
}

variable "engine" {
  description = "The engine each node runs: the node-bootstrap module's engine object (kind vllm by default, llamacpp, openai or sim; model as the edge names it)."
  type        = any
}

variable "agent" {
  description = "Node agent settings (node-bootstrap's agent object: port, heartbeat_interval_ms, max_waiting, log_level)."
  type        = any
  default     = {}
}

variable "cache_server" {
  description = "L2 KV cache server settings (node-bootstrap's cache_server object)."
  type        = any
  default     = {}
}

variable "switchyard_source" {
  description = "Where nodes fetch Switchyard: git URL and a branch, tag or commit."
  type = object({
    git_url = string
    git_ref = string
  })
}

variable "hf_token_secret_arn" {
  description = "ARN of an existing Secrets Manager secret holding a Hugging Face token (gated models). null: none."
  type        = string
  default     = null
}

variable "repo_dir" {
  description = "Switchyard checkout where node registration runs (infra/scripts/register-node.ts). null: the checkout this module lives in."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags added to every AWS resource."
  type        = map(string)
  default     = {}
}
