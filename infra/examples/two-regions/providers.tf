# Credentials come from the environment: CLOUDFLARE_API_TOKEN for Cloudflare, the usual AWS
# variables or profile for AWS. One AWS provider serves both regions: every regional resource in
# the gpu-region module names its region (AWS provider 6).
provider "cloudflare" {}

provider "aws" {
  region = var.aws_home_region
}
