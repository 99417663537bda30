terraform {
  required_version = ">= 1.6.0"

  required_providers {
    cloudflare = {
      source  = "cloudflare/cloudflare"
      version = ">= 5.19.1, < 6.0.0"
    }
    aws = {
      source  = "hashicorp/aws"
      version = ">= 6.0.0, < 7.0.0"
    }
    random = {
      source  = "hashicorp/random"
      version = ">= 3.6.0, < 4.0.0"
    }
  }

  # Terraform state holds the edge's secrets (ADMIN_TOKEN, NODE_SECRET_KEY) and the tunnel tokens:
  # keep it in an encrypted remote backend with restricted access, e.g.
  # backend "s3" {
  #   bucket       = "my-terraform-state"
  #   key          = "switchyard/two-regions.tfstate"
  #   region       = "eu-west-1"
  #   encrypt      = true
  #   use_lockfile = true
  # }
}
