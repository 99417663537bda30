terraform {
  required_version = ">= 1.6.0"

  required_providers {
    # 5.19.1 has the vpc_network binding type on cloudflare_worker_version (Workers VPC).
    cloudflare = {
      source  = "cloudflare/cloudflare"
      version = ">= 5.19.1, < 6.0.0"
    }
    random = {
      source  = "hashicorp/random"
      version = ">= 3.6.0, < 4.0.0"
    }
  }
}
