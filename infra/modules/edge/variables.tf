variable "account_id" {
  description = "Cloudflare account id that owns the Worker, the D1 database and the tunnels."
  type        = string
}

variable "zone_id" {
  description = "Zone id of the zone that holds `hostname`."
  type        = string
}

variable "hostname" {
  description = "Custom domain the edge serves on, e.g. llm.example.com (a Workers custom domain: Cloudflare creates the DNS record and certificate)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$", var.hostname))
    error_message = "hostname must be a lowercase DNS name such as llm.example.com."
  }
}

variable "routes" {
  description = "Extra zone route patterns for the Worker (e.g. \"example.com/v1/*\"), in addition to the custom domain."
  type        = list(string)
  default     = []
}

variable "worker_name" {
  description = "Name of the Worker script."
  type        = string
  default     = "switchyard-edge"
}

variable "bundle_dir" {
  description = "Directory with the bundled Worker, as written by `npm run deploy -- --dry-run --outdir <dir>` (index.js, index.js.map). Build it before `terraform plan`: the plan hashes the files."
  type        = string
}

variable "upload_source_map" {
  description = "Upload index.js.map with the Worker, so exceptions in Workers Logs point at TypeScript lines."
  type        = bool
  default     = true
}

variable "admin_token" {
  description = "The ADMIN_TOKEN secret: bearer token of the /admin API (at least 16 characters). Export the same value as SWITCHYARD_ADMIN_TOKEN for the CLI and for node registration during apply."
  type        = string
  sensitive   = true

  validation {
    condition     = length(var.admin_token) >= 16 && !can(regex("\\s", var.admin_token))
    error_message = "admin_token must be at least 16 characters without whitespace (e.g. openssl rand -base64 32)."
  }
}

variable "node_secret_key" {
  description = "The NODE_SECRET_KEY secret, from which every node's signing secret is derived. null: generated here and kept only in Terraform state. Changing it invalidates every node secret at once."
  type        = string
  default     = null
  sensitive   = true
}

variable "regions" {
  description = "Regions that have GPU node groups (lowercase slugs). Each gets a Cloudflare Tunnel and a Workers VPC binding VPC_<REGION> through which the edge reaches that region's nodes privately."
  type        = set(string)
  default     = []

  validation {
    condition     = alltrue([for r in var.regions : can(regex("^[a-z0-9][a-z0-9._-]{0,62}$", r))])
    error_message = "regions must be lowercase slugs (a-z, 0-9, '.', '_', '-'; at most 63)."
  }
}

variable "default_region" {
  description = "DEFAULT_REGION var: the region ranked first for requests without Cloudflare location data."
  type        = string
  default     = "local"
}

variable "vars" {
  description = "Plain-text Worker vars that override wrangler.toml's [vars] defaults (e.g. MAX_BODY_BYTES, KEY_CACHE_TTL_MS, HEARTBEAT_INTERVAL_MS, UPSTREAM_HEADERS_TIMEOUT_MS)."
  type        = map(string)
  default     = {}
}

variable "d1" {
  description = "The D1 database: name (wrangler.toml's database_name), optional primary location hint (wnam, enam, weur, eeur, apac, oc) and read replication."
  type = object({
    name                  = optional(string, "switchyard")
    primary_location_hint = optional(string)
    read_replication      = optional(bool, false)
  })
  default = {}
}

variable "apply_d1_migrations" {
  description = "Apply migrations/*.sql to the D1 database during apply (runs `npm run deploy -- --migrations-only`; needs CLOUDFLARE_API_TOKEN in the environment and the repository's node_modules)."
  type        = bool
  default     = true
}

variable "repo_dir" {
  description = "Switchyard checkout that holds migrations/ and scripts/deploy.ts. null: the checkout this module lives in."
  type        = string
  default     = null
}

variable "deployed_migration_tag" {
  description = "The Durable Object migration tag the live Worker already has (null for a new Worker). The version uploads only the migrations after it; set it to the output durable_object_migration_tag once an apply has deployed."
  type        = string
  default     = null
}

variable "cpu_ms" {
  description = "CPU limit per request in milliseconds (null: the account default, 30 s on paid plans)."
  type        = number
  default     = null
}

variable "observability" {
  description = "Enable Workers Logs for the Worker (the edge logs JSON lines with request ids)."
  type        = bool
  default     = true
}

variable "workers_dev" {
  description = "Also serve on <worker>.<account>.workers.dev (handy before a custom domain exists; off in production)."
  type        = bool
  default     = false
}
