/**
 * Launch mode's command line: the exact `vllm serve` flags for a given config and vLLM version
 * (native CPU offloading per reference/kvcache.md §1.3, KV events consistent with the agent's
 * subscription, prefix caching, the served name), and the config rules that keep it coherent.
 */
import { describe, expect, it } from "vitest";
import { parseAgentConfig } from "../../../dataplane/agent/config";
import { openAIEngineConfigSchema, type OpenAIEngineConfig } from "../../../dataplane/engines/openai/config";
import { kvEventsPublishEndpoint, offloadArgs, parseVllmVersion, vllmCommandLine } from "../../../dataplane/engines/openai/launch";

const GiB = 2 ** 30;

function engine(extra: Record<string, unknown> = {}, launch: Record<string, unknown> = {}): OpenAIEngineConfig {
  return openAIEngineConfigSchema.parse({ kind: "openai", model: "llama-3-8b", url: "http://127.0.0.1:8000", ...extra, launch: { model: "meta-llama/Meta-Llama-3-8B-Instruct", ...launch } });
}

function commandLine(config: OpenAIEngineConfig, version?: string) {
  return vllmCommandLine({ ...config, launch: config.launch! }, version);
}

describe("vllm serve command line", () => {
  it("vLLM ≥ 0.14 with 64 GiB of CPU offloading and KV events: the exact argv", () => {
    const config = engine({ kvEvents: { endpoint: "tcp://127.0.0.1:5557", topic: "kv-events" } }, { cpuOffloadGiB: 64 });
    expect(commandLine(config, "0.14.1")).toEqual({
      file: "vllm",
      args: [
        "serve", "meta-llama/Meta-Llama-3-8B-Instruct",
        "--host", "127.0.0.1",
        "--port", "8000",
        "--served-model-name", "llama-3-8b",
        "--enable-prefix-caching",
        "--kv-events-config", '{"enable_kv_cache_events":true,"publisher":"zmq","endpoint":"tcp://*:5557","topic":"kv-events"}',
        "--kv-offloading-size", "64",
        "--kv-offloading-backend", "native",
      ],
    });
  });

  it("schedulingPolicy priority starts vLLM with --scheduling-policy priority; fcfs adds nothing", () => {
    const { args } = commandLine(engine({ schedulingPolicy: "priority" }));
    expect(args.slice(args.indexOf("--scheduling-policy"), args.indexOf("--scheduling-policy") + 2)).toEqual(["--scheduling-policy", "priority"]);
    expect(commandLine(engine()).args).not.toContain("--scheduling-policy");
    expect(commandLine(engine({ schedulingPolicy: "fcfs" })).args).not.toContain("--scheduling-policy");
  });

  it("vLLM 0.12–0.13: the explicit OffloadingConnector config with cpu_bytes_to_use", () => {
    const { args } = commandLine(engine({}, { cpuOffloadBytes: 10_000_000_000 }), "0.13.0");
    const i = args.indexOf("--kv-transfer-config");
    expect(i).toBeGreaterThan(0);
    expect(JSON.parse(args[i + 1]!)).toEqual({ kv_connector: "OffloadingConnector", kv_role: "kv_both", kv_connector_extra_config: { cpu_bytes_to_use: 10_000_000_000 } });
    expect(args).not.toContain("--kv-offloading-size");
  });

  it("an offload block size selects the explicit form on any supported version", () => {
    const { args } = commandLine(engine({}, { cpuOffloadGiB: 0.5, offloadBlockSize: 64 }), "0.15.0");
    expect(JSON.parse(args[args.indexOf("--kv-transfer-config") + 1]!).kv_connector_extra_config).toEqual({ cpu_bytes_to_use: GiB / 2, block_size: 64 });
  });

  it("GiB are printed without float noise; bytes that are not whole GiB become a fraction", () => {
    expect(offloadArgs(Math.floor(1.25 * GiB), "0.14.0")).toEqual(["--kv-offloading-size", "1.25", "--kv-offloading-backend", "native"]);
    expect(offloadArgs(1_000_000_000, "0.14.0")[1]).toBe("0.931323");
  });

  it("no offloading: no offloading flags and no version needed", () => {
    const { args } = commandLine(engine(), undefined);
    expect(args.some((a) => a.startsWith("--kv-offloading") || a === "--kv-transfer-config")).toBe(false);
    expect(offloadArgs(0, undefined)).toEqual([]);
  });

  it("refuses offloading on vLLM ≤ 0.11 (sized in blocks) and without a version", () => {
    expect(() => offloadArgs(GiB, "0.11.0")).toThrow(/num_cpu_blocks/);
    expect(() => offloadArgs(GiB, undefined)).toThrow(/version/);
  });

  it("a command prefix, the served name, the hash algorithm and extra args go where vLLM expects them", () => {
    const config = engine(
      { url: "http://[::1]:8100", servedModelName: "meta-llama/Meta-Llama-3-8B-Instruct" },
      { command: ["uv", "run", "vllm"], prefixCachingHashAlgo: "sha256_cbor", args: ["--tensor-parallel-size", "2"] },
    );
    const { file, args } = commandLine(config, "0.14.0");
    expect(file).toBe("uv");
    expect(args.slice(0, 4)).toEqual(["run", "vllm", "serve", "meta-llama/Meta-Llama-3-8B-Instruct"]);
    expect(args.slice(args.indexOf("--host"), args.indexOf("--host") + 4)).toEqual(["--host", "::1", "--port", "8100"]);
    expect(args[args.indexOf("--served-model-name") + 1]).toBe("meta-llama/Meta-Llama-3-8B-Instruct");
    expect(args[args.indexOf("--prefix-caching-hash-algo") + 1]).toBe("sha256_cbor");
    expect(args.slice(-2)).toEqual(["--tensor-parallel-size", "2"]);
  });

  it("the API key is not on the command line (it goes in VLLM_API_KEY)", () => {
    const { args } = commandLine(engine({ apiKey: "secret-key-1" }), undefined);
    expect(args.join(" ")).not.toContain("secret-key-1");
    expect(args).not.toContain("--api-key");
  });

  it("version strings as vLLM prints them", () => {
    expect(parseVllmVersion("0.14.1\n")).toEqual([0, 14, 1]);
    expect(parseVllmVersion("0.11.0rc2")).toEqual([0, 11, 0]);
    expect(parseVllmVersion("INFO ... vllm 0.10.2+cu128")).toEqual([0, 10, 2]);
    expect(parseVllmVersion("no version")).toBeUndefined();
    expect(kvEventsPublishEndpoint("tcp://127.0.0.1:5557")).toBe("tcp://*:5557");
  });
});

describe("launch config", () => {
  const agent = (engineConfig: Record<string, unknown>) =>
    parseAgentConfig({ nodeId: "gpu-1", region: "eu", edge: { url: "http://127.0.0.1:8787", nodeSecret: `sy_ns_1_${"a".repeat(24)}` }, engines: [engineConfig] }, "test");

  it("is accepted in the agent config with its defaults", () => {
    const cfg = agent({ kind: "openai", model: "llama-3-8b", url: "http://127.0.0.1:8000", launch: { model: "meta-llama/Meta-Llama-3-8B-Instruct", cpuOffloadGiB: 64 } });
    const e = cfg.engines[0]!;
    expect(e.kind).toBe("openai");
    if (e.kind !== "openai") return;
    expect(e.launch).toMatchObject({ command: "vllm", cpuOffloadGiB: 64, args: [], env: {}, startupTimeoutMs: 1_200_000, restartDelayMs: 1_000, maxRestartDelayMs: 60_000, stopTimeoutMs: 30_000, output: "inherit" });
  });

  it("names the field when launch mode cannot work", () => {
    const bad = (engineExtra: Record<string, unknown>, launch: Record<string, unknown> = {}) => () =>
      agent({ kind: "openai", model: "m", url: "http://127.0.0.1:8000", ...engineExtra, launch: { model: "x", ...launch } });
    expect(bad({ url: "http://127.0.0.1:8000/v1" })).toThrow(/engines\[0\]\.url.*no path/s);
    expect(bad({ url: "http://127.0.0.1" })).toThrow(/engines\[0\]\.url.*port/s);
    expect(bad({ kvEvents: { endpoint: "tcp://10.9.9.9:5557" } })).toThrow(/kvEvents\.endpoint.*this machine/s);
    expect(bad({}, { cpuOffloadGiB: 1, cpuOffloadBytes: 5 })).toThrow(/cpuOffloadBytes.*at most one/s);
    expect(bad({}, { env: { "BAD NAME": "1" } })).toThrow(/env/);
    // The policy has one home: a flag in args would disagree with the priorities the agent sends.
    expect(bad({}, { args: ["--scheduling-policy", "priority"] })).toThrow(/launch\.args.*schedulingPolicy/s);
    expect(bad({ schedulingPolicy: "priority" }, { args: ["--scheduling-policy=fcfs"] })).toThrow(/launch\.args.*schedulingPolicy/s);
    expect(bad({ schedulingPolicy: "lottery" })).toThrow(/schedulingPolicy/);
    // Without launch, a path and a remote events endpoint stay fine.
    expect(() => agent({ kind: "openai", model: "m", url: "http://10.0.0.5:8000/v1", kvEvents: { endpoint: "tcp://10.0.0.5:5557" } })).not.toThrow();
  });
});
