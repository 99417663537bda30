# Cloud-agnostic: this module only renders text (the agent config, systemd units, cloud-init), so a
# node group on another cloud reuses it unchanged and tests can evaluate it without any provider.
terraform {
  required_version = ">= 1.6.0"
}
