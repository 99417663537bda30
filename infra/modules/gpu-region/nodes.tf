# GPU nodes. Each node is a stable identity at the edge (registered id, its own secret), so each
# gets its own launch template and an autoscaling group of exactly one: the group replaces a failed
# or terminated instance under the same identity. Growing the region is node_count + 1 (a new
# identity is registered); there is no scaling policy because GPU capacity is planned, not elastic.

locals {
  node_ids = [for i in range(var.node_count) : "${var.region}-${i}"]
  nodes = {
    for id in local.node_ids : id => {
      secret_name = "${local.secret_prefix}/nodes/${id}"
    }
  }

  aws_cli = "aws --region ${var.aws_region} secretsmanager get-secret-value --query SecretString --output text --secret-id"
  # IMDSv2 (tokens required on these instances).
  private_ip_command = "t=$(curl -fsS -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://169.254.169.254/latest/api/token) && curl -fsS -H \"X-aws-ec2-metadata-token: $t\" http://169.254.169.254/latest/meta-data/local-ipv4"

  ami_id = var.ami_id != null ? var.ami_id : data.aws_ssm_parameter.gpu_ami[0].insecure_value
}

data "aws_ssm_parameter" "gpu_ami" {
  count  = var.ami_id == null ? 1 : 0
  region = var.aws_region
  name   = "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-24.04/latest/ami-id"
}

module "bootstrap" {
  source   = "../node-bootstrap"
  for_each = local.nodes

  node_id           = each.key
  region            = var.region
  edge_url          = var.edge_url
  engine            = var.engine
  agent             = var.agent
  cache_server      = var.cache_server
  switchyard_source = var.switchyard_source
  secret_commands = {
    node_secret  = "${local.aws_cli} '${each.value.secret_name}'"
    tunnel_token = "${local.aws_cli} '${local.tunnel_secret_name}'"
    hf_token     = var.hf_token_secret_arn == null ? null : "${local.aws_cli} '${var.hf_token_secret_arn}'"
  }
  private_ip_command = local.private_ip_command
  # The secret commands need the AWS CLI; the default AMI has it, a plain Ubuntu one does not.
  setup_script = <<-EOT
    if ! command -v aws >/dev/null 2>&1; then
      apt-get update -q && apt-get install -y -q unzip
      curl -fsSL -o /tmp/awscliv2.zip "https://awscli.amazonaws.com/awscli-exe-linux-$(uname -m).zip"
      unzip -q -o /tmp/awscliv2.zip -d /tmp && /tmp/aws/install --update && rm -rf /tmp/aws /tmp/awscliv2.zip
    fi
  EOT
}

resource "aws_launch_template" "node" {
  for_each               = local.nodes
  region                 = var.aws_region
  name                   = "${local.name}-${each.key}"
  description            = "Switchyard node ${each.key}"
  image_id               = local.ami_id
  instance_type          = var.instance_type
  update_default_version = true
  user_data              = base64encode(module.bootstrap[each.key].cloud_init)
  vpc_security_group_ids = [aws_security_group.node.id]

  iam_instance_profile {
    arn = aws_iam_instance_profile.node[each.key].arn
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  block_device_mappings {
    device_name = "/dev/sda1"
    ebs {
      volume_size           = var.root_volume_gb
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(local.tags, { Name = "${local.name}-${each.key}", "switchyard:node-id" = each.key })
  }

  tag_specifications {
    resource_type = "volume"
    tags          = merge(local.tags, { Name = "${local.name}-${each.key}", "switchyard:node-id" = each.key })
  }

  tags = local.tags
}

resource "aws_autoscaling_group" "node" {
  for_each            = local.nodes
  region              = var.aws_region
  name                = "${local.name}-${each.key}"
  min_size            = 1
  max_size            = 1
  desired_capacity    = 1
  vpc_zone_identifier = aws_subnet.private[*].id
  health_check_type   = "EC2"
  # GPU capacity can be short: the group keeps trying after apply returns, and the node shows up in
  # `switchyard nodes list` once its agent sends heartbeats.
  wait_for_capacity_timeout = "0"

  launch_template {
    id      = aws_launch_template.node[each.key].id
    version = aws_launch_template.node[each.key].latest_version
  }

  # A new launch template version (user data, AMI, instance type) applies to the next instance the
  # group starts. Replacing running nodes at once would take the whole region down, since every
  # node's template changes together; roll them one by one instead (docs/deploy.md), or opt in.
  dynamic "instance_refresh" {
    for_each = var.roll_nodes_on_change ? [1] : []
    content {
      strategy = "Rolling"
      preferences {
        min_healthy_percentage = 0
      }
    }
  }

  tag {
    key                 = "switchyard:node-id"
    value               = each.key
    propagate_at_launch = false
  }

  dynamic "tag" {
    for_each = local.tags
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = false
    }
  }

  # An instance that boots finds its secret in place and the NAT route up.
  depends_on = [terraform_data.node_registration, aws_secretsmanager_secret_version.tunnel_token, aws_route.private_nat, aws_route_table_association.private]
}
