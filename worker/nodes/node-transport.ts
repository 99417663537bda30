/**
 * How the edge reaches a node agent. In production a region's nodes sit on a private network
 * reached through a Workers VPC binding named `VPC_<REGION>`; without one (local dev, nodes behind
 * a Cloudflare Tunnel hostname) plain fetch is used. Routing and signing never see the difference.
 */
import type { Env } from "../env";

export type NodeFetch = (url: string, init: RequestInit) => Promise<Response>;

export function vpcBindingName(region: string): `VPC_${string}` {
  return `VPC_${region.toUpperCase().replace(/[^A-Z0-9]/g, "_")}`;
}

export function nodeFetch(env: Env, region: string): NodeFetch {
  const binding = env[vpcBindingName(region)];
  if (binding && typeof binding.fetch === "function") return (url, init) => binding.fetch(url, init);
  return (url, init) => fetch(url, init);
}
