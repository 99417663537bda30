/**
 * Agent configuration: defaults, environment overrides, and errors that name the field and file.
 */
import { afterAll, describe, expect, it } from "vitest";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { applyEnvOverrides, loadAgentConfig, parseAgentConfig } from "../../../dataplane/agent/config";
import { ConfigError } from "../../../dataplane/lib/config-error";
import { tempDir } from "../../support/tmp";

const SECRET = "sy_ns_1_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SECRET_2 = "sy_ns_2_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

function minimal(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    nodeId: "gpu-1",
    region: "eu-west",
    edge: { url: "https://edge.example.com", nodeSecret: SECRET },
    engines: [{ kind: "openai", model: "llama", url: "http://127.0.0.1:8000" }],
    ...over,
  };
}

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error("expected a ConfigError");
}

const dir = tempDir("agent-config");
afterAll(() => dir.cleanup());

describe("parseAgentConfig", () => {
  it("fills in defaults", () => {
    const cfg = parseAgentConfig(minimal(), "test.json");
    expect(cfg.listen).toEqual({ host: "127.0.0.1", port: 8801 });
    expect(cfg.edge.heartbeatIntervalMs).toBe(2_000);
    expect(cfg.edge.previousNodeSecret).toBeUndefined();
    expect(cfg.queue).toEqual({ maxWaiting: 1024 });
    expect(cfg.signatureWindowMs).toBe(30_000);
    expect(cfg.logLevel).toBe("info");
    expect(cfg.advertiseUrl).toBeUndefined();
    expect(cfg.engines[0]).toMatchObject({ kind: "openai", maxConcurrency: 256, connections: 64, metricsPath: "/metrics", healthPath: "/health", pollIntervalMs: 1_000 });
  });

  it("fills nested defaults when the object is given partially", () => {
    const cfg = parseAgentConfig(minimal({ listen: { host: "0.0.0.0" }, queue: {} }), "test.json");
    expect(cfg.listen).toEqual({ host: "0.0.0.0", port: 8801 });
    expect(cfg.queue.maxWaiting).toBe(1024);
  });

  it("environment overrides win over the file", () => {
    const env = {
      SWITCHYARD_NODE_ID: "gpu-9",
      SWITCHYARD_REGION: "us-east",
      SWITCHYARD_EDGE_URL: "http://127.0.0.1:8787",
      SWITCHYARD_NODE_SECRET: SECRET_2,
      SWITCHYARD_PREVIOUS_NODE_SECRET: SECRET,
      SWITCHYARD_LISTEN_HOST: "0.0.0.0",
      SWITCHYARD_LISTEN_PORT: "9100",
      SWITCHYARD_ADVERTISE_URL: "https://gpu-9.example.com",
    };
    const cfg = parseAgentConfig(minimal({ listen: { host: "127.0.0.1", port: 1 } }), "test.json", env);
    expect(cfg.nodeId).toBe("gpu-9");
    expect(cfg.region).toBe("us-east");
    expect(cfg.edge.url).toBe("http://127.0.0.1:8787");
    expect(cfg.edge.nodeSecret).toBe(SECRET_2);
    expect(cfg.edge.previousNodeSecret).toBe(SECRET);
    expect(cfg.listen).toEqual({ host: "0.0.0.0", port: 9100 });
    expect(cfg.advertiseUrl).toBe("https://gpu-9.example.com");
  });

  it("an empty environment variable does not override", () => {
    const cfg = parseAgentConfig(minimal(), "test.json", { SWITCHYARD_NODE_SECRET: "", SWITCHYARD_NODE_ID: "" });
    expect(cfg.nodeId).toBe("gpu-1");
    expect(cfg.edge.nodeSecret).toBe(SECRET);
  });

  it("an override can supply a field the file lacks (secret from a secret store)", () => {
    const raw = minimal();
    (raw.edge as Record<string, unknown>).nodeSecret = undefined;
    const cfg = parseAgentConfig(raw, "test.json", { SWITCHYARD_NODE_SECRET: SECRET_2, SWITCHYARD_LISTEN_PORT: "0" });
    expect(cfg.edge.nodeSecret).toBe(SECRET_2);
    expect(cfg.listen).toEqual({ host: "127.0.0.1", port: 0 });
  });

  it("does not modify the object it was given", () => {
    const raw = minimal();
    const copy = structuredClone(raw);
    applyEnvOverrides(raw, { SWITCHYARD_NODE_SECRET: SECRET_2, SWITCHYARD_LISTEN_PORT: "1" });
    expect(raw).toEqual(copy);
  });

  it.each<[string, Record<string, unknown>, Record<string, string>, string]>([
    ["missing secret", minimal({ edge: { url: "https://edge.example.com" } }), {}, "edge.nodeSecret"],
    ["malformed secret", minimal({ edge: { url: "https://edge.example.com", nodeSecret: "hunter2" } }), {}, "edge.nodeSecret"],
    ["malformed secret from env", minimal(), { SWITCHYARD_NODE_SECRET: "sy_ns_x_short" }, "edge.nodeSecret"],
    ["malformed previous secret", minimal({ edge: { url: "https://edge.example.com", nodeSecret: SECRET, previousNodeSecret: "old" } }), {}, "edge.previousNodeSecret"],
    ["edge url not http", minimal({ edge: { url: "ftp://edge", nodeSecret: SECRET } }), {}, "edge.url"],
    ["engine url invalid", minimal({ engines: [{ kind: "openai", model: "llama", url: "not a url" }] }), {}, "engines[0].url"],
    ["unknown engine kind", minimal({ engines: [{ kind: "tgi", model: "llama", url: "http://x" }] }), {}, "engines[0].kind"],
    [
      "duplicate model",
      minimal({ engines: [{ kind: "openai", model: "llama", url: "http://127.0.0.1:1" }, { kind: "openai", model: "llama", url: "http://127.0.0.1:2" }] }),
      {},
      "engines[1].model",
    ],
    ["no engines", minimal({ engines: [] }), {}, "engines"],
    ["bad node id", minimal({ nodeId: "GPU One" }), {}, "nodeId"],
    ["port from env not a number", minimal(), { SWITCHYARD_LISTEN_PORT: "http" }, "listen.port"],
    ["port out of range", minimal({ listen: { port: 70_000 } }), {}, "listen.port"],
    ["unknown top-level field", minimal({ nodeSecret: SECRET }), {}, "(root)"],
    ["unknown engine field", minimal({ engines: [{ kind: "openai", model: "llama", url: "http://127.0.0.1:1", maxConcurency: 3 }] }), {}, "engines[0]"],
    ["heartbeat too fast", minimal({ edge: { url: "https://edge.example.com", nodeSecret: SECRET, heartbeatIntervalMs: 10 } }), {}, "edge.heartbeatIntervalMs"],
    ["negative maxWaiting", minimal({ queue: { maxWaiting: -1 } }), {}, "queue.maxWaiting"],
    ["cache server without a port", minimal({ advertiseCacheServer: "10.0.0.7" }), {}, "advertiseCacheServer"],
    ["cache server from env as a URL", minimal(), { SWITCHYARD_ADVERTISE_CACHE_SERVER: "tcp://10.0.0.7:7400" }, "advertiseCacheServer"],
  ])("%s → ConfigError naming %s", (_name, raw, env, field) => {
    const err = configError(() => parseAgentConfig(raw, "/etc/switchyard/agent.json", env));
    expect(err.message).toContain("/etc/switchyard/agent.json");
    expect(err.message).toMatch(new RegExp(`^  ${field.replace(/[[\].()]/g, "\\$&")}: `, "m"));
  });

  it("takes the advertised cache server from the file or the environment", () => {
    expect(parseAgentConfig(minimal({ advertiseCacheServer: "[fd00::7]:7400" }), "x.json").advertiseCacheServer).toBe("[fd00::7]:7400");
    expect(parseAgentConfig(minimal(), "x.json", { SWITCHYARD_ADVERTISE_CACHE_SERVER: "10.0.0.7:7400" }).advertiseCacheServer).toBe("10.0.0.7:7400");
    expect(parseAgentConfig(minimal(), "x.json").advertiseCacheServer).toBeUndefined();
  });

  it("refuses a previous secret with the current secret's version (it would shadow the current one)", () => {
    const sameVersion = "sy_ns_1_cccccccccccccccccccccccccccccc";
    const err = configError(() => parseAgentConfig(minimal({ edge: { url: "https://edge.example.com", nodeSecret: SECRET, previousNodeSecret: sameVersion } }), "x.json"));
    expect(err.message).toMatch(/^  edge\.previousNodeSecret: /m);
    expect(err.message).not.toContain(sameVersion);
    // Leading zeros do not make it another version as far as the agent's lookup goes.
    expect(() => parseAgentConfig(minimal({ edge: { url: "https://edge.example.com", nodeSecret: SECRET, previousNodeSecret: "sy_ns_01_cccccccccccccccccccccccccccccc" } }), "x.json")).toThrow(ConfigError);
    expect(() => parseAgentConfig(minimal({ edge: { url: "https://edge.example.com", nodeSecret: SECRET_2, previousNodeSecret: SECRET } }), "x.json")).not.toThrow();
    // The same secret twice is harmless.
    expect(() => parseAgentConfig(minimal({ edge: { url: "https://edge.example.com", nodeSecret: SECRET, previousNodeSecret: SECRET } }), "x.json")).not.toThrow();
  });

  it("never echoes a secret in an error", () => {
    const err = configError(() => parseAgentConfig(minimal({ nodeId: "BAD ID", edge: { url: "nope", nodeSecret: SECRET } }), "x.json"));
    expect(err.message).not.toContain(SECRET);
    const bad = "sy_ns_1_tooshort";
    expect(configError(() => parseAgentConfig(minimal(), "x.json", { SWITCHYARD_NODE_SECRET: bad })).message).not.toContain(bad);
  });

  it("refuses a non-object document", () => {
    for (const raw of [null, [], "x", 3]) expect(configError(() => parseAgentConfig(raw, "a.json")).message).toContain("a.json");
  });
});

describe("loadAgentConfig", () => {
  it("reads a file and applies the environment", () => {
    const path = join(dir.path, "ok.json");
    writeFileSync(path, JSON.stringify(minimal()));
    const cfg = loadAgentConfig(path, { SWITCHYARD_REGION: "ap-south" });
    expect(cfg.region).toBe("ap-south");
    expect(cfg.nodeId).toBe("gpu-1");
  });

  it("an unreadable file → ConfigError with the path", () => {
    const path = join(dir.path, "does-not-exist.json");
    const err = configError(() => loadAgentConfig(path, {}));
    expect(err.message).toContain(path);
    expect(err.message).toMatch(/cannot read/);
  });

  it("a directory → ConfigError with the path", () => {
    expect(configError(() => loadAgentConfig(dir.path, {})).message).toContain(dir.path);
  });

  it("bad JSON → ConfigError with the path", () => {
    const path = join(dir.path, "bad.json");
    writeFileSync(path, '{"nodeId": "gpu-1",');
    const err = configError(() => loadAgentConfig(path, {}));
    expect(err.message).toContain(path);
    expect(err.message).toMatch(/not valid JSON/);
  });

  it("a valid JSON file with a bad field names both the file and the field", () => {
    const path = join(dir.path, "field.json");
    writeFileSync(path, JSON.stringify(minimal({ engines: [{ kind: "openai", model: "llama", url: "nope" }] })));
    const err = configError(() => loadAgentConfig(path, {}));
    expect(err.message).toContain(path);
    expect(err.message).toContain("engines[0].url");
  });
});
