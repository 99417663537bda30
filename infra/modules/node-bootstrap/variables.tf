variable "node_id" {
  description = "Node id as registered at the edge (lowercase slug, at most 63 characters)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9._-]{0,62}$", var.node_id))
    error_message = "node_id must be a lowercase slug (a-z, 0-9, '.', '_', '-'; at most 63)."
  }
}

variable "region" {
  description = "Region slug the node belongs to at the edge (the edge reaches it through the VPC_<REGION> binding)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9._-]{0,62}$", var.region))
    error_message = "region must be a lowercase slug (a-z, 0-9, '.', '_', '-'; at most 63)."
  }
}

variable "edge_url" {
  description = "Base URL of the edge Worker (https://...), where the agent sends heartbeats."
  type        = string

  validation {
    condition     = can(regex("^https?://[^/?#]+$", var.edge_url))
    error_message = "edge_url must be an http(s) origin without a path, e.g. https://llm.example.com."
  }
}

variable "engine" {
  description = <<-EOT
    The inference engine on the node. kind: "vllm" (default; a vLLM container on loopback behind the
    agent's openai adapter), "llamacpp" (llama.cpp embedded in the agent), "openai" (an
    OpenAI-compatible server you run yourself at `url`) or "sim" (the calibrated emulator: no GPU,
    for smoke tests). model is the name clients and the edge use.
  EOT
  type = object({
    kind  = optional(string, "vllm")
    model = string
    # vllm
    hf_model          = optional(string) # weights to serve; defaults to model
    served_model_name = optional(string) # vLLM --served-model-name; defaults to hf_model
    image             = optional(string, "vllm/vllm-openai:v0.11.0")
    extra_args        = optional(list(string), [])
    port              = optional(number, 8000)
    kv_events         = optional(bool, true)
    max_concurrency   = optional(number)
    # openai
    url = optional(string)
    # llamacpp
    gguf_url     = optional(string) # downloaded at first boot; without it a random-weight model is generated
    context_size = optional(number, 4096)
    sequences    = optional(number, 4)
    threads      = optional(number, 1)
    gpu          = optional(string, "cuda")
    # sim
    time_scale = optional(number, 1)
  })

  validation {
    condition     = contains(["vllm", "llamacpp", "openai", "sim"], var.engine.kind)
    error_message = "engine.kind must be one of vllm, llamacpp, openai, sim."
  }
  validation {
    condition     = var.engine.kind != "openai" || can(regex("^https?://", coalesce(var.engine.url, "-")))
    error_message = "engine.url (http(s)://host:port) is required when engine.kind is openai."
  }
  validation {
    # Each argument becomes one single-quoted word on a systemd ExecStart line.
    condition     = alltrue([for a in var.engine.extra_args : !can(regex("['%$\\\\\n]", a))])
    error_message = "engine.extra_args must not contain quotes, '%', '$', backslashes or newlines."
  }
  validation {
    condition     = contains(["cuda", "vulkan", "auto", "off"], var.engine.gpu)
    error_message = "engine.gpu must be one of cuda, vulkan, auto, off."
  }
}

variable "agent" {
  description = "Node agent settings: listen port, first heartbeat interval (ms), queue depth per engine, log level."
  type = object({
    port                  = optional(number, 8801)
    heartbeat_interval_ms = optional(number, 2000)
    max_waiting           = optional(number, 1024)
    log_level             = optional(string, "info")
  })
  default = {}
}

variable "cache_server" {
  description = "The L2 KV cache server on the node (switchyard cache-server): port, memory for values, eviction policy, limits, shards."
  type = object({
    enabled         = optional(bool, true)
    port            = optional(number, 7400)
    capacity        = optional(string, "8GiB")
    policy          = optional(string, "s3fifo")
    metrics_port    = optional(number, 9400)
    max_value       = optional(string, "128MiB")
    max_connections = optional(number, 1024)
    # Worker threads, each with capacity / shards of the values on its own port: port, port + 1, …
    # (open the whole range between nodes; clients are given only `port`).
    shards = optional(number, 1)
  })
  default = {}

  validation {
    condition     = contains(["lru", "s3fifo"], var.cache_server.policy)
    error_message = "cache_server.policy must be lru or s3fifo."
  }

  validation {
    condition     = var.cache_server.shards >= 1 && var.cache_server.shards <= 64 && floor(var.cache_server.shards) == var.cache_server.shards
    error_message = "cache_server.shards must be a whole number from 1 to 64."
  }
}

variable "switchyard_source" {
  description = "Where the node fetches Switchyard (agent, cache server): a git URL and a branch, tag or commit."
  type = object({
    git_url = string
    git_ref = string
  })
}

variable "node_version" {
  description = "Node.js release installed from nodejs.org (checked against its SHASUMS256.txt). Switchyard runs on 20.18+, 22 and 24."
  type        = string
  default     = "22.12.0"
}

variable "cloudflared_version" {
  description = "cloudflared release (GitHub .deb) that connects the node to the region's Cloudflare Tunnel. Workers VPC needs 2025.7.0 or later."
  type        = string
  default     = "2025.7.0"
}

variable "secret_commands" {
  description = <<-EOT
    Shell commands that print a secret on stdout, run as root at each service start (so a rotation
    needs only a restart). node_secret prints JSON {"nodeSecret": "sy_ns_...", "previousNodeSecret"?: ...};
    tunnel_token prints the Cloudflare Tunnel token (null: no cloudflared on this node); hf_token
    prints a Hugging Face token for gated models (null: none).
  EOT
  type = object({
    node_secret  = string
    tunnel_token = optional(string)
    hf_token     = optional(string)
  })
}

variable "setup_script" {
  description = "Shell run as root early in first boot, before anything is installed: the cloud's own needs (e.g. the CLI its secret_commands use)."
  type        = string
  default     = ""
}

variable "private_ip_command" {
  description = "Shell command that prints the node's private IPv4 address (the agent advertises http://<ip>:<port> in heartbeats)."
  type        = string
}
