/**
 * What a GPU node boots with, rendered offline from infra/modules/node-bootstrap and checked by the
 * code that will read it: the agent config (agent.json plus the environment fetch-secrets.sh writes)
 * through the agent's own parser, the cache server's flags through the CLI's own command, and the
 * cloud-init document's shape (units for every service the bootstrap starts, no secrets, size).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { parseAgentConfig } from "../../dataplane/agent/config";
import { agentCommandAccepts, bootedAgentConfig, cacheServerFromUnit, execStart, fileAt, parseCloudInit, unitDirectives, USER_DATA_LIMIT_BYTES, type CloudConfig } from "./support/node-checks";
import { instantiate, type Value } from "./support/terraform";
import { REPO } from "./support/wrangler";

const NODE_BOOTSTRAP = resolve(REPO, "infra/modules/node-bootstrap");

const BASE: Record<string, Value> = {
  node_id: "eu-west-0",
  region: "eu-west",
  edge_url: "https://llm.example.com",
  switchyard_source: { git_url: "https://github.com/example/switchyard.git", git_ref: "v1.2.3" },
  secret_commands: {
    node_secret: "aws --region eu-west-1 secretsmanager get-secret-value --query SecretString --output text --secret-id 'switchyard/eu-west/nodes/eu-west-0'",
    tunnel_token: "aws --region eu-west-1 secretsmanager get-secret-value --query SecretString --output text --secret-id 'switchyard/eu-west/tunnel-token'",
  },
  private_ip_command: "echo 10.40.1.17",
};

async function render(inputs: Record<string, Value>): Promise<{ text: string; cfg: CloudConfig; services: string[] }> {
  const inst = await instantiate(NODE_BOOTSTRAP, { ...BASE, ...inputs });
  await inst.validateAll();
  const text = (await inst.output("cloud_init")) as string;
  return { text, cfg: parseCloudInit(text), services: (await inst.output("services")) as string[] };
}

/**
 * fetch-secrets.sh as rendered, run with bash: its tmpfs directory moved to a temp dir and this
 * process's node standing in for /usr/local/bin/node; nothing else changed.
 */
function runFetchSecrets(cfg: CloudConfig): ((service: string) => void) & { dir: string } {
  const dir = mkdtempSync(join(tmpdir(), "switchyard-fetch-secrets-"));
  const script = join(dir, "fetch-secrets.sh");
  writeFileSync(script, fileAt(cfg, "/usr/local/lib/switchyard/fetch-secrets.sh").content.replaceAll("/run/switchyard", join(dir, "run")).replaceAll("/usr/local/bin/node", process.execPath));
  const run = (service: string) => {
    try {
      execFileSync("bash", [script, service], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 20_000 });
    } catch (err) {
      throw new Error(`fetch-secrets.sh ${service} failed: ${(err as { stderr?: string }).stderr ?? String(err)}`);
    }
  };
  return Object.assign(run, { dir: join(dir, "run") });
}

function readEnvFile(path: string): Record<string, string> {
  return Object.fromEntries(
    readFileSync(path, "utf8")
      .split("\n")
      .filter((l) => l.length > 0)
      .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  );
}

describe("infra/modules/node-bootstrap", () => {
  it("renders a vLLM node whose agent config the agent accepts", async () => {
    const { cfg } = await render({ engine: { model: "llama-3.1-8b", hf_model: "meta-llama/Llama-3.1-8B-Instruct" } });
    const { config, env } = bootedAgentConfig(cfg);
    expect(config.nodeId).toBe("eu-west-0");
    expect(config.region).toBe("eu-west");
    expect(config.edge.url).toBe("https://llm.example.com");
    expect(config.edge.nodeSecret).toBe(env.SWITCHYARD_NODE_SECRET);
    expect(config.edge.previousNodeSecret).toBe(env.SWITCHYARD_PREVIOUS_NODE_SECRET);
    // The edge reaches the agent at the address it advertises, on the port it listens on.
    expect(config.advertiseUrl).toBe(`http://10.40.1.17:${config.listen.port}`);
    expect(config.listen.host).toBe("0.0.0.0");
    expect(config.engines).toEqual([
      expect.objectContaining({
        kind: "openai",
        model: "llama-3.1-8b",
        url: "http://127.0.0.1:8000",
        servedModelName: "meta-llama/Llama-3.1-8B-Instruct",
        cacheSalt: true,
        kvEvents: { endpoint: "tcp://127.0.0.1:5557", topic: "" },
      }),
    ]);
  });

  it("runs vLLM on loopback only, serving the model the agent asks for, with KV events where the agent listens", async () => {
    const { cfg } = await render({ engine: { model: "llama-3.1-8b", hf_model: "meta-llama/Llama-3.1-8B-Instruct", extra_args: ["--max-model-len", "16384"] } });
    const { config } = bootedAgentConfig(cfg);
    const engine = config.engines[0];
    if (engine?.kind !== "openai") throw new Error("expected an openai engine");
    const argv = execStart(fileAt(cfg, "/etc/systemd/system/switchyard-engine.service").content);
    const arg = (flag: string) => argv[argv.indexOf(flag) + 1];
    const published = argv.flatMap((a, i) => (argv[i - 1] === "--publish" ? [a] : []));
    expect(published.every((p) => p.startsWith("127.0.0.1:")), `published ports: ${published.join(", ")}`).toBe(true);
    expect(published).toContain(`127.0.0.1:${new URL(engine.url).port}:${new URL(engine.url).port}`);
    expect(arg("--served-model-name")).toBe(engine.servedModelName);
    expect(arg("--port")).toBe(new URL(engine.url).port);
    const kv = JSON.parse(arg("--kv-events-config") as string) as { endpoint: string; publisher: string; enable_kv_cache_events: boolean };
    expect(kv).toMatchObject({ publisher: "zmq", enable_kv_cache_events: true });
    expect(kv.endpoint.split(":").at(-1)).toBe(engine.kvEvents?.endpoint.split(":").at(-1));
    expect(argv.slice(-2)).toEqual(["--max-model-len", "16384"]);
  });

  it("leaves KV events out on both sides when they are off", async () => {
    const { cfg } = await render({ engine: { model: "m", kv_events: false } });
    const engine = bootedAgentConfig(cfg).config.engines[0];
    expect(engine?.kind === "openai" && engine.kvEvents).toBeUndefined();
    expect(execStart(fileAt(cfg, "/etc/systemd/system/switchyard-engine.service").content)).not.toContain("--kv-events-config");
  });

  it.each([
    ["llama.cpp on the GPU with downloaded weights", { kind: "llamacpp", model: "llama-3.1-8b", gguf_url: "https://example.com/m.gguf", sequences: 8 }, { kind: "llamacpp", gpu: "cuda", modelPath: "/var/lib/switchyard/models/model.gguf", sequences: 8 }],
    ["llama.cpp on the CPU with generated weights", { kind: "llamacpp", model: "tiny", gpu: "off" }, { kind: "llamacpp", gpu: false, generatedModelDir: "/var/lib/switchyard/models" }],
    ["an OpenAI-compatible server of your own", { kind: "openai", model: "qwen", url: "http://127.0.0.1:30000" }, { kind: "openai", url: "http://127.0.0.1:30000" }],
    ["the emulator", { kind: "sim", model: "llama-3-8b", time_scale: 10 }, { kind: "sim", timeScale: 10 }],
  ] as const)("renders %s", async (_name, engine, expected) => {
    const { cfg, services } = await render({ engine: engine as unknown as Value });
    const { config } = bootedAgentConfig(cfg);
    expect(config.engines).toEqual([expect.objectContaining({ model: engine.model, ...expected })]);
    // Only vLLM has an engine unit; the others run inside the agent or elsewhere.
    expect(services.includes("switchyard-engine")).toBe(false);
    expect(cfg.write_files.map((f) => f.path)).not.toContain("/etc/systemd/system/switchyard-engine.service");
  });

  it("runs the cache server with flags the CLI accepts and a config the cache server accepts", async () => {
    const { cfg } = await render({ engine: { model: "m" }, cache_server: { capacity: "64GiB", policy: "lru", port: 7500, shards: 8 } });
    const server = await cacheServerFromUnit(fileAt(cfg, "/etc/systemd/system/switchyard-cache-server.service").content);
    expect(server).toMatchObject({ host: "0.0.0.0", port: 7500, capacityBytes: 64 * 2 ** 30, policy: "lru", metricsHost: "127.0.0.1", metricsPort: 9400, shards: 8 });
    // One thread unless asked for more.
    const plain = await render({ engine: { model: "m" } });
    expect(await cacheServerFromUnit(fileAt(plain.cfg, "/etc/systemd/system/switchyard-cache-server.service").content)).toMatchObject({ shards: 1 });
  });

  it("starts the agent through the CLI's own agent command", async () => {
    const { cfg } = await render({ engine: { model: "m" } });
    const argv = execStart(fileAt(cfg, "/etc/systemd/system/switchyard-agent.service").content);
    expect(argv.slice(0, 2)).toEqual(["/usr/local/bin/node", "/opt/switchyard/bin/switchyard.mjs"]);
    expect(await agentCommandAccepts(argv.slice(2))).toEqual({ config: "/etc/switchyard/agent.json" });
  });

  it("writes a unit for every service the bootstrap starts, and fetches each unit's secrets before it starts", async () => {
    const { cfg, services } = await render({ engine: { model: "m" } });
    expect(services).toEqual(["cloudflared", "switchyard-engine", "switchyard-cache-server", "switchyard-agent"]);
    const bootstrap = fileAt(cfg, "/usr/local/lib/switchyard/bootstrap.sh").content;
    expect(bootstrap).toContain(`for unit in ${services.join(" ")}; do`);
    expect(cfg.runcmd).toEqual([["/usr/local/lib/switchyard/bootstrap.sh"]]);
    for (const s of services) {
      const unit = unitDirectives(fileAt(cfg, `/etc/systemd/system/${s}.service`).content);
      for (const pre of unit.get("ExecStartPre") ?? []) {
        const script = /^[-+]*(\S+)/.exec(pre)?.[1] as string;
        if (script.startsWith("/usr/local/lib/switchyard/")) expect(cfg.write_files.map((f) => f.path), `${s} runs ${script}`).toContain(script);
      }
    }
    expect(fileAt(cfg, "/usr/local/lib/switchyard/bootstrap.sh").permissions).toBe("0755");
    expect(fileAt(cfg, "/usr/local/lib/switchyard/fetch-secrets.sh").permissions).toBe("0755");
  });

  it("installs Switchyard at the configured ref and the pinned Node.js", async () => {
    const { cfg } = await render({ engine: { model: "m" } });
    const bootstrap = fileAt(cfg, "/usr/local/lib/switchyard/bootstrap.sh").content;
    expect(bootstrap).toContain(`remote add origin "https://github.com/example/switchyard.git"`);
    expect(bootstrap).toContain(`fetch -q --depth 1 origin "v1.2.3"`);
    expect(bootstrap).toContain(`node_version="22.12.0"`);
    // Shell variables survive templating as shell variables, and the result is valid bash.
    expect(bootstrap).toContain("$node_arch");
    expect(bootstrap).not.toMatch(/\$\$\{/);
    for (const path of ["/usr/local/lib/switchyard/bootstrap.sh", "/usr/local/lib/switchyard/fetch-secrets.sh"]) {
      const file = join(mkdtempSync(join(tmpdir(), "switchyard-sh-")), "script.sh");
      writeFileSync(file, fileAt(cfg, path).content);
      execFileSync("bash", ["-n", file]);
    }
  });

  it("writes, from the secret store's answer, the environment the agent then accepts (fetch-secrets.sh run for real)", async () => {
    const current = `sy_ns_2_${"A".repeat(43)}`;
    const previous = `sy_ns_1_${"B".repeat(43)}`;
    const stored = JSON.stringify({ nodeSecret: current, previousNodeSecret: previous });
    const { cfg } = await render({
      engine: { model: "m" },
      secret_commands: { node_secret: `printf '%s' '${stored}'`, tunnel_token: "echo eyJ0dW5uZWwiOjF9", hf_token: "echo hf_abc" },
      private_ip_command: "echo 10.40.1.17",
    });
    const run = runFetchSecrets(cfg);
    run("agent");
    const env = readEnvFile(join(run.dir, "agent.env"));
    expect(env).toEqual({
      SWITCHYARD_NODE_SECRET: current,
      SWITCHYARD_PREVIOUS_NODE_SECRET: previous,
      SWITCHYARD_ADVERTISE_URL: "http://10.40.1.17:8801",
      SWITCHYARD_ADVERTISE_CACHE_SERVER: "10.40.1.17:7400",
    });
    const raw = JSON.parse(fileAt(cfg, "/etc/switchyard/agent.json").content) as Record<string, unknown>;
    const parsed = parseAgentConfig(raw, "agent.json", env);
    expect(parsed.edge).toMatchObject({ nodeSecret: current, previousNodeSecret: previous });
    expect(parsed.advertiseCacheServer).toBe("10.40.1.17:7400");
    run("tunnel");
    expect(readEnvFile(join(run.dir, "cloudflared.env"))).toEqual({ TUNNEL_TOKEN: "eyJ0dW5uZWwiOjF9" });
    run("engine");
    expect(readEnvFile(join(run.dir, "engine.env"))).toEqual({ HF_TOKEN: "hf_abc" });
    expect(statSync(join(run.dir, "agent.env")).mode & 0o077).toBe(0);
  });

  it("advertises no cache server when the node runs none", async () => {
    const stored = JSON.stringify({ nodeSecret: `sy_ns_2_${"A".repeat(43)}` });
    const { cfg } = await render({ engine: { model: "m" }, cache_server: { enabled: false }, secret_commands: { node_secret: `printf '%s' '${stored}'` }, private_ip_command: "echo 10.40.1.17" });
    const run = runFetchSecrets(cfg);
    run("agent");
    expect(readEnvFile(join(run.dir, "agent.env")).SWITCHYARD_ADVERTISE_CACHE_SERVER).toBeUndefined();
  });

  it("refuses a malformed node secret instead of starting the agent with it", async () => {
    const { cfg } = await render({ engine: { model: "m" }, secret_commands: { node_secret: `printf '%s' '{"nodeSecret":"not-a-secret"}'` }, private_ip_command: "echo 10.0.0.1" });
    const run = runFetchSecrets(cfg);
    expect(() => run("agent")).toThrow(/nodeSecret missing or malformed/);
  });

  it("keeps secrets out of the user data and fits EC2's 16 KiB limit", async () => {
    const { text } = await render({ engine: { model: "llama-3.1-8b", hf_model: "meta-llama/Llama-3.1-8B-Instruct" } });
    expect(text).not.toMatch(/sy_ns_\d+_[A-Za-z0-9_-]{20,}/);
    expect(text).not.toMatch(/TUNNEL_TOKEN=ey/);
    expect(Buffer.byteLength(text)).toBeLessThan(USER_DATA_LIMIT_BYTES);
  });

  it("runs no cloudflared without a tunnel token command", async () => {
    const { cfg, services } = await render({ engine: { model: "m" }, secret_commands: { node_secret: "cat /etc/node-secret" } });
    expect(services).not.toContain("cloudflared");
    expect(cfg.write_files.map((f) => f.path)).not.toContain("/etc/systemd/system/cloudflared.service");
    expect(fileAt(cfg, "/usr/local/lib/switchyard/bootstrap.sh").content).toContain(`if [ "false" = true ] && ! need cloudflared`);
  });

  it("refuses inputs the agent would refuse", async () => {
    await expect(render({ engine: { model: "m", kind: "tensorrt" } })).rejects.toThrow(/engine.kind must be one of/);
    await expect(render({ node_id: "Node_1", engine: { model: "m" } })).rejects.toThrow(/node_id must be a lowercase slug/);
    await expect(render({ engine: { model: "m", kind: "openai" } })).rejects.toThrow(/engine.url/);
    await expect(render({ engine: { model: "m", extra_args: ["--chat-template", "it's"] } })).rejects.toThrow(/extra_args/);
    await expect(render({ engine: { model: "m", hf_modle: "typo" } })).rejects.toThrow(/hf_modle/);
    await expect(render({ engine: { model: "m" }, cache_server: { shards: 0 } })).rejects.toThrow(/cache_server.shards must be a whole number from 1 to 64/);
    await expect(render({ engine: { model: "m" }, cache_server: { shards: 65 } })).rejects.toThrow(/cache_server.shards/);
  });

  it("fails the agent's own check when the rendered config is wrong (the check above can fail)", async () => {
    const { cfg } = await render({ engine: { model: "m" }, agent: { heartbeat_interval_ms: 50 } });
    expect(() => bootedAgentConfig(cfg)).toThrow(/heartbeatIntervalMs/);
  });
});
