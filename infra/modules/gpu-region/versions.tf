terraform {
  required_version = ">= 1.6.0"

  required_providers {
    # 6.x: every regional resource takes a `region` argument, so one provider serves every region
    # and the module can be instantiated with for_each.
    aws = {
      source  = "hashicorp/aws"
      version = ">= 6.0.0, < 7.0.0"
    }
  }
}
