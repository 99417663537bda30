/**
 * The engine emulator inside a real agent with KV tiers: blocks its (small) emulated GPU cache
 * evicts go to the agent's L1, and a prompt whose prefix was evicted is loaded from L1 at the
 * calibrated host→GPU cost instead of recomputed. Namespaces keep their blocks apart.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomUUID } from "node:crypto";
import { startAgent, type RunningAgent } from "../../../dataplane/agent/agent";
import { parseAgentConfig } from "../../../dataplane/agent/config";
import type { EngineAdapter } from "../../../dataplane/engines/engine";
import type { SimEngine } from "../../../dataplane/engines/sim/adapter";
import { validateGenerationRequest } from "../../../protocol/openai-request";
import { fakeEdge, SECRET } from "./llamacpp-tiers-support";

const MODEL = "sim-kv";
const BLOCK = 16;
const BYTES_PER_TOKEN = 2 * 1 * 2 * 8 * 2; // K and V × layers × kvHeads × headDim × dtype bytes
let edge: Awaited<ReturnType<typeof fakeEdge>>;
let agent: RunningAgent;

beforeAll(async () => {
  edge = await fakeEdge();
  agent = await startAgent(
    parseAgentConfig(
      {
        nodeId: "sim-node",
        region: "local",
        listen: { port: 0 },
        edge: { url: edge.url, nodeSecret: SECRET, heartbeatIntervalMs: 200 },
        logLevel: "error",
        engines: [
          {
            kind: "sim",
            model: MODEL,
            timeScale: 100,
            kvCapacityTokens: 20 * BLOCK, // 20 blocks: a second prompt evicts the first one's
            blockSize: BLOCK,
            modelShape: { layers: 1, kvHeads: 2, headDim: 8, dtypeBytes: 2 },
            eos: { kind: "never" },
          },
        ],
        kvCache: { l1: { bytes: 1_000_000, policy: "lru" } },
      },
      "test",
    ),
  );
});

afterAll(async () => {
  await agent?.stop({ leaving: false });
  await edge?.close();
});

const engine = (): EngineAdapter => agent.engines.get(MODEL)?.engine as EngineAdapter;
const ids = (n: number, salt: number) => Array.from({ length: n }, (_, i) => 1000 + ((i * 31 + salt * 977) % 50_000));

async function run(prompt: number[], namespace: string): Promise<{ cached: number; promptTokens: number }> {
  const body = { model: MODEL, prompt, max_tokens: 2, ignore_eos: true };
  const res = await engine().handle({
    requestId: randomUUID(),
    endpoint: "completions",
    body: validateGenerationRequest("completions", body),
    rawBody: new TextEncoder().encode(JSON.stringify(body)),
    cacheNamespace: namespace,
    signal: new AbortController().signal,
  });
  expect(res.status).toBe(200);
  const json = (await res.json()) as { usage: { prompt_tokens: number; prompt_tokens_details: { cached_tokens: number } } };
  return { cached: json.usage.prompt_tokens_details.cached_tokens, promptTokens: json.usage.prompt_tokens };
}

describe("the sim engine's lower tier is the agent's L1", () => {
  const A = ids(12 * BLOCK + 5, 1); // 12 full blocks

  it("offloads blocks the emulated GPU evicts into L1, at their emulated size", async () => {
    await run(A, "t:a");
    expect(agent.kvTiers?.l1.stats().entries).toBe(0); // nothing evicted yet
    await run(ids(12 * BLOCK + 5, 2), "t:a"); // needs the room A's cached blocks hold
    const l1 = agent.kvTiers?.l1.stats();
    expect(l1?.entries).toBeGreaterThan(0);
    // Values are as large as the emulated KV of a block.
    expect(l1?.bytesUsed).toBe((l1?.entries ?? 0) * BLOCK * BYTES_PER_TOKEN);
  });

  it("loads an evicted prefix from L1 instead of recomputing it", async () => {
    const core = (engine() as SimEngine).core;
    const before = core.metrics.externalPrefixCacheHits;
    const hitsBefore = agent.kvTiers?.l1.stats().hits ?? 0;
    const again = await run(A, "t:a");
    const loaded = (agent.kvTiers?.l1.stats().hits ?? 0) - hitsBefore;
    expect(loaded).toBeGreaterThan(0);
    expect(core.metrics.externalPrefixCacheHits - before).toBe(loaded * BLOCK);
    expect(again.cached).toBeGreaterThanOrEqual(loaded * BLOCK);
    const counters = agent.kvTiers?.forEngine(MODEL).counters();
    expect(counters?.l1Tokens).toBe(core.metrics.externalPrefixCacheHits);
  });

  it("another namespace's prompt with the same tokens finds nothing", async () => {
    await run(ids(12 * BLOCK + 5, 3), "t:a"); // push A out of the GPU again
    const hitsBefore = agent.kvTiers?.l1.stats().hits ?? 0;
    const other = await run(A, "t:b");
    expect(other.cached).toBe(0);
    expect(agent.kvTiers?.l1.stats().hits).toBe(hitsBefore);
  });

  it("the heartbeat reports L1 and the engine's tier hit rate", async () => {
    const seen = () => edge.beats.filter((b) => b.kvCache && b.engines[0]?.kvTierHitRate !== undefined);
    for (let i = 0; i < 100 && seen().length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    const beat = seen().at(-1);
    expect(beat?.kvCache?.tiers.map((t) => t.tier)).toEqual(["l1"]);
    expect(beat?.kvCache?.tiers[0]?.capacityBytes).toBe(1_000_000);
    expect(beat?.engines[0]?.kvTierHitRate).toBeGreaterThan(0);
    expect(beat?.engines[0]?.kvTierHitRate).toBeLessThanOrEqual(1);
  });
});
