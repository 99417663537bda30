/**
 * The engine emulator in two real agents that share a cache server: blocks one agent's GPU evicts
 * reach L2 through its L1, and the other agent — its own GPU and L1 empty — loads that prefix from
 * L2 (brought into its L1 before the request is queued) instead of recomputing it. The load counts
 * as L2's in the engine's tier accounting, and another tenant's namespace finds nothing.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startAgent, type RunningAgent } from "../../../dataplane/agent/agent";
import { parseAgentConfig } from "../../../dataplane/agent/config";
import type { EngineAdapter } from "../../../dataplane/engines/engine";
import type { SimEngine } from "../../../dataplane/engines/sim/adapter";
import type { CacheServer } from "../../../dataplane/kvcache/server/cache-server";
import { validateGenerationRequest } from "../../../protocol/openai-request";
import { fakeEdge, SECRET } from "./llamacpp-tiers-support";
import { addr, startServer } from "./l2-test-support";

const MODEL = "sim-kv";
const BLOCK = 16;
let edge: Awaited<ReturnType<typeof fakeEdge>>;
let server: CacheServer;
const agents: RunningAgent[] = [];

async function agentWithL2(nodeId: string): Promise<RunningAgent> {
  const agent = await startAgent(
    parseAgentConfig(
      {
        nodeId,
        region: "local",
        listen: { port: 0 },
        edge: { url: edge.url, nodeSecret: SECRET, heartbeatIntervalMs: 200 },
        logLevel: "error",
        engines: [
          {
            kind: "sim",
            model: MODEL,
            timeScale: 100,
            kvCapacityTokens: 20 * BLOCK, // 20 blocks: two more prompts push the first one out
            blockSize: BLOCK,
            modelShape: { layers: 1, kvHeads: 2, headDim: 8, dtypeBytes: 2 },
            eos: { kind: "never" },
          },
        ],
        kvCache: { l1: { bytes: 1_000_000, policy: "lru" }, l2: { servers: [addr(server)] } },
      },
      "test",
    ),
  );
  agents.push(agent);
  return agent;
}

beforeAll(async () => {
  edge = await fakeEdge();
  server = await startServer();
});

afterAll(async () => {
  for (const a of agents) await a.stop({ leaving: false });
  await server?.close();
  await edge?.close();
});

const ids = (n: number, salt: number) => Array.from({ length: n }, (_, i) => 1000 + ((i * 31 + salt * 977) % 50_000));

async function run(agent: RunningAgent, prompt: number[], namespace: string): Promise<number> {
  const body = { model: MODEL, prompt, max_tokens: 2, ignore_eos: true };
  const res = await (agent.engines.get(MODEL)?.engine as EngineAdapter).handle({
    requestId: randomUUID(),
    endpoint: "completions",
    body: validateGenerationRequest("completions", body),
    rawBody: new TextEncoder().encode(JSON.stringify(body)),
    cacheNamespace: namespace,
    signal: new AbortController().signal,
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { usage: { prompt_tokens_details: { cached_tokens: number } } }).usage.prompt_tokens_details.cached_tokens;
}

describe("the sim engine loads from L2 what another agent's GPU evicted", () => {
  const P = ids(12 * BLOCK + 5, 1); // 12 full blocks; the last prompt token is always computed

  it("loads a prefix computed by another agent from the shared cache server", async () => {
    const a = await agentWithL2("sim-a");
    const b = await agentWithL2("sim-b");
    expect(await run(a, P, "t:x")).toBe(0);
    // Two more prompts on A push every block of P out of A's GPU into A's L1, written through to L2.
    await run(a, ids(12 * BLOCK + 5, 2), "t:x");
    await run(a, ids(12 * BLOCK + 5, 3), "t:x");
    await a.kvTiers?.flushWrites();
    expect(server.stats().objects).toBeGreaterThanOrEqual(12);

    const core = (b.engines.get(MODEL)?.engine as SimEngine).core;
    expect(b.kvTiers?.l1.stats().entries).toBe(0);
    const cached = await run(b, P, "t:x");
    expect(cached).toBe(12 * BLOCK);
    expect(b.kvTiers?.l2?.stats().hits).toBe(12);
    expect(core.metrics.externalPrefixCacheHits).toBe(12 * BLOCK);
    // What L2 supplied is accounted as L2's, not L1's, though it went through L1.
    expect(b.kvTiers?.forEngine(MODEL).counters()).toMatchObject({ l1Tokens: 0, l2Tokens: 12 * BLOCK });
  });

  it("finds nothing for the same tokens in another tenant's namespace", async () => {
    const b = agents[1] as RunningAgent;
    const hits = b.kvTiers?.l2?.stats().hits;
    expect(await run(b, P, "t:y")).toBe(0);
    expect(b.kvTiers?.l2?.stats().hits).toBe(hits);
  });
});
