/**
 * The agent's `kvCache` configuration: defaults, sizes with units, environment overrides, errors
 * that name the field; and the heartbeat's new optional fields, which older parsers must accept.
 */
import { describe, expect, it } from "vitest";
import { applyEnvOverrides, parseAgentConfig } from "../../../dataplane/agent/config";
import { agentKvCacheConfigSchema } from "../../../dataplane/kvcache/agent-tiers";
import { ConfigError } from "../../../dataplane/lib/config-error";
import { cacheServerListSchema, heartbeatSchema } from "../../../protocol/heartbeat";
import { SECRET } from "./llamacpp-tiers-support";

function minimal(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    nodeId: "gpu-1",
    region: "eu-west",
    edge: { url: "https://edge.example.com", nodeSecret: SECRET },
    engines: [
      { kind: "llamacpp", model: "tiny" },
      { kind: "sim", model: "emulated" },
    ],
    ...over,
  };
}

function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error("expected a ConfigError");
}

describe("kvCache configuration", () => {
  it("is absent by default: no tiers", () => {
    expect(parseAgentConfig(minimal(), "agent.json").kvCache).toBeUndefined();
  });

  it("fills in defaults around the L1 budget", () => {
    const cfg = parseAgentConfig(minimal({ kvCache: { l1: { bytes: "4GiB" } } }), "agent.json");
    expect(cfg.kvCache).toEqual({
      chunkTokens: 256,
      l1: { bytes: 4 * 2 ** 30, policy: "s3fifo" },
      l2Ingestion: "all",
      l2MaxWritesInFlight: 8,
      l2MaxQueuedBytes: 256 * 2 ** 20,
      modelIdentity: {},
      windowMs: 60_000,
    });
  });

  it("takes L2 in the L2 client's own schema, and model identities by engine model", () => {
    const cfg = parseAgentConfig(
      minimal({
        kvCache: {
          chunkTokens: 128,
          l1: { bytes: 1_000_000, policy: "lru" },
          l2: { servers: ["10.0.0.7:7400", { id: "10.0.0.8:7400", weight: 2 }], replicas: 2 },
          l2Ingestion: "evicted",
          modelIdentity: { tiny: { name: "meta-llama/Llama-3.2-1B", revision: "4e20de3" }, emulated: "file" },
        },
      }),
      "agent.json",
    );
    expect(cfg.kvCache?.l2).toMatchObject({ servers: ["10.0.0.7:7400", { id: "10.0.0.8:7400", weight: 2 }], replicas: 2, timeoutBaseMs: 250 });
    expect(cfg.kvCache?.modelIdentity.tiny).toEqual({ name: "meta-llama/Llama-3.2-1B", revision: "4e20de3" });
    // `{}` is an L2 whose membership comes from the edge.
    expect(parseAgentConfig(minimal({ kvCache: { l1: { bytes: 1024 }, l2: {} } }), "a").kvCache?.l2?.servers).toEqual([]);
  });

  it("names the field in every error", () => {
    const bad = (kvCache: unknown) => configError(() => parseAgentConfig(minimal({ kvCache }), "agent.json"));
    expect(bad({})).toContain("kvCache.l1");
    expect(bad({ l1: { bytes: "lots" } })).toMatch(/kvCache\.l1\.bytes: .*'lots' is not a size/);
    expect(bad({ l1: { bytes: 0 } })).toContain("kvCache.l1.bytes");
    expect(bad({ l1: { bytes: 1024, policy: "fifo" } })).toContain("kvCache.l1.policy");
    expect(bad({ l1: { bytes: 1024 }, chunkTokens: 10 })).toContain("kvCache.chunkTokens");
    expect(bad({ l1: { bytes: 1024 }, l2: { servers: ["nohost"] } })).toMatch(/kvCache\.l2\.servers\[0\]/);
    expect(bad({ l1: { bytes: 1024 }, l2: { replicas: 9 } })).toContain("kvCache.l2.replicas");
    expect(bad({ l1: { bytes: 1024 }, l2: { retries: 3 } })).toContain("kvCache.l2");
    expect(bad({ l1: { bytes: 1024 }, l2Ingestion: "sometimes" })).toContain("kvCache.l2Ingestion");
    expect(bad({ l1: { bytes: 1024 }, modelIdentity: { tiny: { name: "x" } } })).toContain("kvCache.modelIdentity.tiny");
    expect(bad({ l1: { bytes: 1024 }, modelIdentity: { other: "file" } })).toMatch(/kvCache\.modelIdentity\.other: no engine serves the model 'other'/);
    expect(bad({ l1: { bytes: 1024 }, sizeGiB: 3 })).toContain("kvCache");
  });

  it("environment variables override the file, and can turn the tiers on", () => {
    const env = {
      SWITCHYARD_KV_L1_BYTES: "512MiB",
      SWITCHYARD_KV_L1_POLICY: "lru",
      SWITCHYARD_KV_CHUNK_TOKENS: "512",
      SWITCHYARD_KV_L2_SERVERS: "10.0.0.7:7400, 10.0.0.8:7400",
      SWITCHYARD_KV_L2_REPLICAS: "2",
    };
    const cfg = parseAgentConfig(minimal(), "agent.json", env);
    expect(cfg.kvCache?.l1).toEqual({ bytes: 512 * 2 ** 20, policy: "lru" });
    expect(cfg.kvCache?.chunkTokens).toBe(512);
    expect(cfg.kvCache?.l2?.servers).toEqual(["10.0.0.7:7400", "10.0.0.8:7400"]);
    expect(cfg.kvCache?.l2?.replicas).toBe(2);
    // A number of bytes needs no unit; a bad value is still named.
    expect(parseAgentConfig(minimal({ kvCache: { l1: { bytes: "1GiB" } } }), "a", { SWITCHYARD_KV_L1_BYTES: "1048576" }).kvCache?.l1.bytes).toBe(1_048_576);
    expect(configError(() => parseAgentConfig(minimal(), "a", { SWITCHYARD_KV_L1_BYTES: "1048576", SWITCHYARD_KV_CHUNK_TOKENS: "many" }))).toContain("kvCache.chunkTokens");
    // The file is not modified.
    const raw = minimal();
    applyEnvOverrides(raw, env);
    expect(raw.kvCache).toBeUndefined();
  });

  it("the schema alone parses what the agent passes to AgentKvTiers", () => {
    expect(agentKvCacheConfigSchema.parse({ l1: { bytes: "2GB" } }).l1.bytes).toBe(2e9);
  });
});

describe("heartbeat fields for the tiers", () => {
  const beat = {
    nodeId: "gpu-1",
    agentVersion: "0.1.0",
    sentAt: 1,
    engines: [{ model: "m", engine: "llamacpp", healthy: true, running: 0, waiting: 0, maxConcurrency: 1, kvUsage: 0, kvCapacityTokens: 10, kvTierHitRate: 0.5 }],
    kvCache: {
      chunkTokens: 256,
      windowMs: 60_000,
      tiers: [
        { tier: "l1", capacityBytes: 100, bytesUsed: 50, queries: 4, hits: 3, hitRate: 0.75, evictions: 0 },
        { tier: "l2", capacityBytes: 1000, bytesUsed: 0, queries: 0, hits: 0, servers: 2, serversUp: 1 },
      ],
    },
  };

  it("accepts beats with and without them", () => {
    expect(heartbeatSchema.parse(beat).kvCache?.tiers).toHaveLength(2);
    const { kvCache: _, ...old } = beat;
    expect(heartbeatSchema.parse(old).kvCache).toBeUndefined();
    expect(heartbeatSchema.safeParse({ ...beat, kvCache: { ...beat.kvCache, tiers: [{ ...beat.kvCache.tiers[0], hitRate: 2 }] } }).success).toBe(false);
  });

  it("validates the edge's cacheServers list", () => {
    expect(cacheServerListSchema.safeParse(["10.0.0.7:7400", { id: "10.0.0.8:7400", weight: 2 }]).success).toBe(true);
    expect(cacheServerListSchema.safeParse([{ id: "10.0.0.8:7400", weight: -1 }]).success).toBe(false);
    expect(cacheServerListSchema.safeParse("10.0.0.7:7400").success).toBe(false);
  });
});
