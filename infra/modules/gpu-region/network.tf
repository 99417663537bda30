# The region's private network: nodes live in private subnets without public addresses and reach
# out (heartbeats to the edge, the tunnel, package and model downloads) through one NAT gateway.
# Nothing on the internet can open a connection to them; the edge comes in through the tunnel.

data "aws_availability_zones" "available" {
  region = var.aws_region
  state  = "available"
}

locals {
  name = "${var.name_prefix}-${var.region}"
  azs  = slice(sort(data.aws_availability_zones.available.names), 0, var.availability_zones)
  tags = merge(var.tags, { "switchyard:region" = var.region, "switchyard:managed-by" = "terraform" })
}

resource "aws_vpc" "region" {
  region               = var.aws_region
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true
  tags                 = merge(local.tags, { Name = local.name })
}

resource "aws_subnet" "private" {
  count             = length(local.azs)
  region            = var.aws_region
  vpc_id            = aws_vpc.region.id
  availability_zone = local.azs[count.index]
  cidr_block        = cidrsubnet(var.vpc_cidr, 2, count.index)
  tags              = merge(local.tags, { Name = "${local.name}-private-${local.azs[count.index]}" })
}

resource "aws_subnet" "public" {
  count             = 1
  region            = var.aws_region
  vpc_id            = aws_vpc.region.id
  availability_zone = local.azs[0]
  cidr_block        = cidrsubnet(var.vpc_cidr, 8, 255)
  tags              = merge(local.tags, { Name = "${local.name}-public-${local.azs[0]}" })
}

resource "aws_internet_gateway" "region" {
  region = var.aws_region
  vpc_id = aws_vpc.region.id
  tags   = merge(local.tags, { Name = local.name })
}

resource "aws_eip" "nat" {
  region = var.aws_region
  domain = "vpc"
  tags   = merge(local.tags, { Name = "${local.name}-nat" })
}

resource "aws_nat_gateway" "region" {
  region        = var.aws_region
  allocation_id = aws_eip.nat.id
  subnet_id     = aws_subnet.public[0].id
  tags          = merge(local.tags, { Name = local.name })

  depends_on = [aws_internet_gateway.region]
}

resource "aws_route_table" "public" {
  region = var.aws_region
  vpc_id = aws_vpc.region.id
  tags   = merge(local.tags, { Name = "${local.name}-public" })
}

resource "aws_route" "public_internet" {
  region                 = var.aws_region
  route_table_id         = aws_route_table.public.id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.region.id
}

resource "aws_route_table_association" "public" {
  count          = length(aws_subnet.public)
  region         = var.aws_region
  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public.id
}

resource "aws_route_table" "private" {
  region = var.aws_region
  vpc_id = aws_vpc.region.id
  tags   = merge(local.tags, { Name = "${local.name}-private" })
}

resource "aws_route" "private_nat" {
  region                 = var.aws_region
  route_table_id         = aws_route_table.private.id
  destination_cidr_block = "0.0.0.0/0"
  nat_gateway_id         = aws_nat_gateway.region.id
}

resource "aws_route_table_association" "private" {
  count          = length(aws_subnet.private)
  region         = var.aws_region
  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private.id
}
