/**
 * infra/examples/two-regions as a user runs it (terraform.tfvars.example plus an admin token),
 * evaluated offline end to end: example → gpu-region (per region) → node-bootstrap (per node). Every
 * node's cloud-init renders an agent config the agent accepts, pointing at the edge the example
 * deploys, in a region the edge has a tunnel and a VPC binding for.
 */
import { resolve } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { bootedAgentConfig, cacheServerFromUnit, fileAt, parseCloudInit } from "./support/node-checks";
import { instantiate, loadTfvars, resourceBlocks, type ModuleInstance, Unknown } from "./support/terraform";
import { workerVpcBindingName } from "./support/worker-code";
import { REPO } from "./support/wrangler";

const EXAMPLE = resolve(REPO, "infra/examples/two-regions");

let example: ModuleInstance;
let regions: ReadonlyMap<string, ModuleInstance>;

beforeAll(async () => {
  const tfvars = await loadTfvars(resolve(EXAMPLE, "terraform.tfvars.example"));
  example = await instantiate(EXAMPLE, { ...tfvars, admin_token: "an-admin-token-of-32-characters!" });
  await example.validateAll();
  const calls = await example.moduleCall("gpu_region");
  if (!(calls instanceof Map)) throw new Error("gpu_region is called with for_each");
  regions = calls;
});

describe("infra/examples/two-regions", () => {
  it("deploys two regions, each with a tunnel and a VPC binding at the edge", async () => {
    expect([...regions.keys()]).toEqual(["eu-west", "us-east"]);
    const vpcBindingName = await workerVpcBindingName();
    const edge = await example.moduleCall("edge");
    if (edge instanceof Map || !("variable" in edge)) throw new Error("one edge");
    expect([...((await edge.variable("regions")) as string[])].sort()).toEqual([...regions.keys()]);
    expect(await edge.output("vpc_bindings")).toEqual(Object.fromEntries([...regions.keys()].map((r) => [r, vpcBindingName(r)])));
    for (const [name, region] of regions) expect(await region.variable("region")).toBe(name);
  });

  it("renders, for every node, an agent config the agent accepts, aimed at the example's edge", async () => {
    const edgeUrl = await example.output("edge_url");
    expect(edgeUrl).toBe("https://llm.example.com");
    const seen = new Set<string>();
    for (const [regionName, region] of regions) {
      const nodes = await region.moduleCall("bootstrap");
      if (!(nodes instanceof Map)) throw new Error("bootstrap is called per node");
      expect(nodes.size).toBe(2);
      expect([...nodes.keys()]).toEqual((await region.output("node_ids")) as string[]);
      for (const [nodeId, node] of nodes) {
        const { config } = bootedAgentConfig(parseCloudInit((await node.output("cloud_init")) as string));
        expect(config).toMatchObject({ nodeId, region: regionName, edge: { url: edgeUrl } });
        expect(config.engines).toEqual([expect.objectContaining({ kind: "openai", model: "llama-3.1-8b", servedModelName: "meta-llama/Llama-3.1-8B-Instruct" })]);
        expect(seen.has(nodeId), `node id ${nodeId} is used twice`).toBe(false);
        seen.add(nodeId);
      }
    }
  });

  it("runs the emulator instead of vLLM for a GPU-less first run", async () => {
    const tfvars = await loadTfvars(resolve(EXAMPLE, "terraform.tfvars.example"));
    const smoke = await instantiate(EXAMPLE, { ...tfvars, admin_token: "an-admin-token-of-32-characters!", engine_kind: "sim" });
    const region = ((await smoke.moduleCall("gpu_region")) as ReadonlyMap<string, ModuleInstance>).get("us-east") as ModuleInstance;
    const node = ((await region.moduleCall("bootstrap")) as ReadonlyMap<string, ModuleInstance>).get("us-east-0") as ModuleInstance;
    const { config } = bootedAgentConfig(parseCloudInit((await node.output("cloud_init")) as string));
    expect(config.engines).toEqual([expect.objectContaining({ kind: "sim", model: "llama-3.1-8b" })]);
    expect(await node.output("services")).not.toContain("switchyard-engine");
  });

  it("opens the agent and cache ports the nodes listen on (every shard's), to the region's own nodes only", async () => {
    for (const region of regions.values()) {
      const rule = async (name: string, attr: string) => region.resourceAttribute("aws_vpc_security_group_ingress_rule", name, attr);
      const nodes = (await region.moduleCall("bootstrap")) as ReadonlyMap<string, ModuleInstance>;
      for (const node of nodes.values()) {
        const cfg = parseCloudInit((await node.output("cloud_init")) as string);
        const { config } = bootedAgentConfig(cfg);
        expect(await rule("agent_from_peers", "from_port")).toBe(config.listen.port);
        const server = await cacheServerFromUnit(fileAt(cfg, "/etc/systemd/system/switchyard-cache-server.service").content);
        expect(await rule("cache_from_peers", "from_port")).toBe(server.port);
        // A sharded server listens on one port a shard: the rule opens them all.
        expect(server.shards).toBeGreaterThan(1);
        expect(await rule("cache_from_peers", "to_port")).toBe(server.port + server.shards - 1);
      }
      const ingress = resourceBlocks(region.source).filter((r) => r.type === "aws_vpc_security_group_ingress_rule");
      expect(ingress.map((r) => r.name).sort()).toEqual(["agent_from_peers", "cache_from_peers"]);
      for (const r of ingress) {
        for (const range of ["cidr_ipv4", "cidr_ipv6", "prefix_list_id"]) expect(r.body, `${r.name} must not admit ${range}`).not.toHaveProperty(range);
        const source = await rule(r.name, "referenced_security_group_id");
        expect(source).toBeInstanceOf(Unknown);
        expect((source as Unknown).address).toMatch(/\.aws_security_group\.node\.id$/);
      }
    }
  });

  it("has each node read its own secret in its own AWS region", async () => {
    for (const region of regions.values()) {
      const awsRegion = (await region.variable("aws_region")) as string;
      const secretNames = (await region.output("node_secret_names")) as Record<string, string>;
      const nodes = (await region.moduleCall("bootstrap")) as ReadonlyMap<string, ModuleInstance>;
      for (const [nodeId, node] of nodes) {
        const commands = (await node.variable("secret_commands")) as Record<string, string>;
        expect(commands.node_secret).toContain(`--region ${awsRegion} `);
        expect(commands.node_secret).toContain(`'${secretNames[nodeId]}'`);
        expect(commands.tunnel_token).toContain(`--region ${awsRegion} `);
        // ...with an AWS CLI, installed at first boot when the AMI lacks one.
        const bootstrap = fileAt(parseCloudInit((await node.output("cloud_init")) as string), "/usr/local/lib/switchyard/bootstrap.sh").content;
        expect(bootstrap).toMatch(/if ! command -v aws [\s\S]*awscli-exe-linux-\$\(uname -m\)\.zip/);
        expect(bootstrap.indexOf("command -v aws")).toBeLessThan(bootstrap.indexOf("npm ci"));
      }
    }
  });
});
