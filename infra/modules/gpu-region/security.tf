# Only the edge path gets in. The edge's requests arrive through the region's Cloudflare Tunnel,
# whose cloudflared replicas run on the nodes themselves: a replica on one node forwards to the
# agent on another, so the agent port admits this security group and nothing else. The L2 cache
# ports are the same (agents use every cache server of the region; a sharded server listens on
# port, port + 1, … one port a shard). There is no SSH: use SSM Session
# Manager. The engine (vLLM) listens on loopback only.

locals {
  agent_port  = try(var.agent.port, 8801)
  cache_port  = try(var.cache_server.port, 7400)
  cache_ports = try(var.cache_server.shards, 1)
}

resource "aws_security_group" "node" {
  region      = var.aws_region
  name        = "${local.name}-node"
  description = "Switchyard GPU nodes: agent and cache ports from peers only; egress for tunnel, edge and downloads"
  vpc_id      = aws_vpc.region.id
  tags        = merge(local.tags, { Name = "${local.name}-node" })
}

resource "aws_vpc_security_group_ingress_rule" "agent_from_peers" {
  region                       = var.aws_region
  security_group_id            = aws_security_group.node.id
  description                  = "node agent, from the region's cloudflared replicas (the edge path)"
  ip_protocol                  = "tcp"
  from_port                    = local.agent_port
  to_port                      = local.agent_port
  referenced_security_group_id = aws_security_group.node.id
}

resource "aws_vpc_security_group_ingress_rule" "cache_from_peers" {
  region                       = var.aws_region
  security_group_id            = aws_security_group.node.id
  description                  = "L2 KV cache server (one port a shard), from the region's agents"
  ip_protocol                  = "tcp"
  from_port                    = local.cache_port
  to_port                      = local.cache_port + local.cache_ports - 1
  referenced_security_group_id = aws_security_group.node.id
}

resource "aws_vpc_security_group_egress_rule" "to_peers" {
  region                       = var.aws_region
  security_group_id            = aws_security_group.node.id
  description                  = "agent and cache traffic between the region's nodes"
  ip_protocol                  = "-1"
  referenced_security_group_id = aws_security_group.node.id
}

resource "aws_vpc_security_group_egress_rule" "https" {
  region            = var.aws_region
  security_group_id = aws_security_group.node.id
  description       = "heartbeats to the edge, AWS APIs, container registry, Hugging Face, nodejs.org, GitHub"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_egress_rule" "http" {
  region            = var.aws_region
  security_group_id = aws_security_group.node.id
  description       = "Ubuntu package mirrors"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_egress_rule" "tunnel" {
  for_each          = toset(["tcp", "udp"])
  region            = var.aws_region
  security_group_id = aws_security_group.node.id
  description       = "Cloudflare Tunnel (cloudflared: QUIC over UDP, HTTP/2 over TCP)"
  ip_protocol       = each.value
  from_port         = 7844
  to_port           = 7844
  cidr_ipv4         = "0.0.0.0/0"
}
