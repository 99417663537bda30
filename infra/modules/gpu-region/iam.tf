# One role per node: a node can read its own secret and the region's tunnel token, nothing else,
# so a compromised node cannot sign as its neighbours. SSM gives operators a shell without SSH.

data "aws_partition" "current" {}

data "aws_iam_policy_document" "assume_ec2" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "node" {
  for_each           = local.nodes
  name               = "${var.name_prefix}-node-${each.key}"
  description        = "Switchyard node ${each.key} (${var.region})"
  assume_role_policy = data.aws_iam_policy_document.assume_ec2.json
  tags               = local.tags
}

resource "aws_iam_role_policy" "node_secrets" {
  for_each = local.nodes
  name     = "read-own-secrets"
  role     = aws_iam_role.node[each.key].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect   = "Allow"
      Action   = ["secretsmanager:GetSecretValue"]
      Resource = compact([aws_secretsmanager_secret.node[each.key].arn, aws_secretsmanager_secret.tunnel_token.arn, var.hf_token_secret_arn])
    }]
  })
}

resource "aws_iam_role_policy_attachment" "node_ssm" {
  for_each   = local.nodes
  role       = aws_iam_role.node[each.key].name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "node" {
  for_each = local.nodes
  name     = "${var.name_prefix}-node-${each.key}"
  role     = aws_iam_role.node[each.key].name
  tags     = local.tags
}
