/**
 * The offline evaluator (support/terraform.ts) against real Terraform, where a terraform binary is
 * on PATH: node-bootstrap needs no provider, so `terraform apply` renders its outputs without any
 * download, and they must equal the evaluator's byte for byte. This is what makes the other infra
 * tests trustworthy; without terraform the comparison is skipped (the other tests still run).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { instantiate, type Value } from "./support/terraform";
import { REPO } from "./support/wrangler";

const hasTerraform = spawnSync("terraform", ["version"], { stdio: "ignore" }).status === 0;

const BASE = {
  node_id: "us-east-1",
  region: "us-east",
  edge_url: "https://llm.example.com",
  switchyard_source: { git_url: "https://github.com/example/switchyard.git", git_ref: "0123abcd" },
  secret_commands: { node_secret: "cat /etc/switchyard/node-secret.json", tunnel_token: "cat /etc/switchyard/tunnel-token" },
  private_ip_command: "t=$(curl -fsS http://169.254.169.254/x) && echo \"$t\"",
};

// Variants that exercise the parts where Terraform's semantics are easy to get wrong: optional()
// defaults, null-dropping for-expressions, conditionals whose results get one type, templates.
const VARIANTS: Record<string, Record<string, Value>> = {
  vllm: { engine: { model: "llama-3.1-8b", hf_model: "meta-llama/Llama-3.1-8B-Instruct", extra_args: ["--max-model-len", "8192"], max_concurrency: 128 }, setup_script: 'echo "$(uname -m)" > /tmp/arch\n' },
  vllm_plain: { engine: { model: "m", kv_events: false }, cache_server: { enabled: false }, agent: { port: 9000, log_level: "debug" } },
  llamacpp_cpu: { engine: { kind: "llamacpp", model: "tiny", gpu: "off" } },
  llamacpp_gpu: { engine: { kind: "llamacpp", model: "llama", gguf_url: "https://example.com/a.gguf", context_size: 8192 }, secret_commands: { node_secret: "cat /x", hf_token: "cat /hf" } },
  openai: { engine: { kind: "openai", model: "qwen", url: "http://127.0.0.1:30000" } },
  sim: { engine: { kind: "sim", model: "llama-3-8b", time_scale: 25 }, cache_server: { capacity: "2GiB", policy: "lru" } },
};

/** Terraform's JSON syntax reads strings as templates: escape "${" so inputs stay literal. */
function literal(v: unknown): unknown {
  if (typeof v === "string") return v.replaceAll("${", "$${").replaceAll("%{", "%%{");
  if (Array.isArray(v)) return v.map(literal);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, literal(x)]));
  return v;
}

describe.skipIf(!hasTerraform)("offline evaluator vs terraform", () => {
  it("finds infra/ formatted as terraform fmt writes it", () => {
    const r = spawnSync("terraform", ["fmt", "-check", "-recursive", "-list=true", resolve(REPO, "infra")], { encoding: "utf8", env: { ...process.env, TF_CLI_CONFIG_FILE: "/dev/null" } });
    expect(r.status, `not formatted:\n${r.stdout}`).toBe(0);
  });

  it("renders node-bootstrap exactly as terraform does", async () => {
    const dir = mkdtempSync(join(tmpdir(), "switchyard-tf-crosscheck-"));
    // A relative module source: terraform uses it in place instead of copying a snapshot.
    symlinkSync(resolve(REPO, "infra/modules"), join(dir, "modules"));
    const config = {
      module: Object.fromEntries(Object.entries(VARIANTS).map(([name, inputs]) => [name, { source: "./modules/node-bootstrap", ...(literal({ ...BASE, ...inputs }) as object) }])),
      output: Object.fromEntries(Object.keys(VARIANTS).map((name) => [name, { value: { cloud_init: `\${module.${name}.cloud_init}`, agent_config: `\${module.${name}.agent_config}`, services: `\${module.${name}.services}` } }])),
    };
    writeFileSync(join(dir, "main.tf.json"), JSON.stringify(config, null, 2));
    const env = { ...process.env, TF_IN_AUTOMATION: "1", CHECKPOINT_DISABLE: "1", TF_CLI_CONFIG_FILE: "/dev/null" };
    const tf = (...args: string[]) => {
      const r = spawnSync("terraform", args, { cwd: dir, env, encoding: "utf8", timeout: 50_000 });
      expect(r.status, `terraform ${args.join(" ")}:\n${r.stdout}\n${r.stderr}`).toBe(0);
      return r.stdout;
    };
    tf("init", "-input=false", "-no-color");
    tf("apply", "-auto-approve", "-input=false", "-no-color");
    const outputs = JSON.parse(tf("output", "-json")) as Record<string, { value: { cloud_init: string; agent_config: unknown; services: string[] } }>;

    for (const [name, inputs] of Object.entries(VARIANTS)) {
      const inst = await instantiate(resolve(REPO, "infra/modules/node-bootstrap"), { ...BASE, ...inputs });
      const real = outputs[name]?.value;
      expect(await inst.output("agent_config"), `${name}: agent_config`).toEqual(real?.agent_config);
      expect(await inst.output("services"), `${name}: services`).toEqual(real?.services);
      expect(await inst.output("cloud_init"), `${name}: cloud_init`).toBe(real?.cloud_init);
    }
  }, 60_000);
});
