variable "cloudflare_account_id" {
  description = "Cloudflare account id."
  type        = string
}

variable "cloudflare_zone_id" {
  description = "Zone id of the zone that holds hostname."
  type        = string
}

variable "hostname" {
  description = "Where the edge serves the OpenAI-compatible API, e.g. llm.example.com."
  type        = string
}

variable "admin_token" {
  description = "The edge's ADMIN_TOKEN (at least 16 characters). Export the same value as SWITCHYARD_ADMIN_TOKEN: node registration during apply and the CLI use it."
  type        = string
  sensitive   = true
}

variable "aws_home_region" {
  description = "Region of the AWS provider's own calls (IAM is global; every regional resource names its region)."
  type        = string
  default     = "eu-west-1"
}

variable "switchyard_source" {
  description = "Git URL and ref (branch, tag or commit) that the nodes install Switchyard from."
  type = object({
    git_url = string
    git_ref = string
  })
}

variable "model" {
  description = "Model name at the edge, and the Hugging Face weights vLLM serves for it."
  type = object({
    name     = string
    hf_model = string
  })
  default = {
    name     = "llama-3.1-8b"
    hf_model = "meta-llama/Llama-3.1-8B-Instruct"
  }
}

variable "engine_kind" {
  description = "vllm (GPU nodes serving real weights) or sim (the calibrated emulator: CPU instances, no weights, no GPU quota) for a cheap first run of the whole path."
  type        = string
  default     = "vllm"

  validation {
    condition     = contains(["vllm", "sim"], var.engine_kind)
    error_message = "engine_kind must be vllm or sim."
  }
}

variable "hf_token_secret_arns" {
  description = "Per region (eu-west, us-east): ARN of a Secrets Manager secret in that region holding a Hugging Face token, for gated weights such as Llama. Leave a region out for none."
  type        = map(string)
  default     = {}
}

variable "nodes_per_region" {
  description = "GPU nodes in each region."
  type        = number
  default     = 2
}

variable "instance_type" {
  description = "GPU instance type of the nodes (one L40S 48 GB by default: enough for an 8B model in bf16)."
  type        = string
  default     = "g6e.xlarge"
}

variable "deployed_migration_tag" {
  description = "Durable Object migration tag the live Worker has (null before the first apply; then the edge's durable_object_migration_tag output)."
  type        = string
  default     = null
}

variable "bundle_dir" {
  description = "Where `npm run deploy -- --dry-run --outdir <dir>` wrote the Worker bundle. null: build/worker next to this file."
  type        = string
  default     = null
}
