/**
 * What Prometheus would see: two real node agents (real llama.cpp engines on the generated model,
 * one thread each) sharing one real cache server, driven over HTTP with signed requests, then
 * scraped at their `/metrics`. Every series docs/dashboard.md promises is there, and its value is
 * the one the traffic implies: requests and tokens as sent and as the responses reported them,
 * histogram counts per request, and the agents' view of L2 equal to the cache server's own.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startAgent, type RunningAgent } from "../../../dataplane/agent/agent";
import { parseAgentConfig } from "../../../dataplane/agent/config";
import type { LlamaCppEngine } from "../../../dataplane/engines/llamacpp/adapter";
import { parsePrometheusText, sumOf } from "../../../dataplane/engines/openai/prometheus-text";
import type { CacheServer } from "../../../dataplane/kvcache/server/cache-server";
import { signRequest } from "../../../protocol/signing";
import { parseSseEvent, SseFramer } from "../../../protocol/sse";
import { addr, startServer } from "../kvcache/l2-test-support";
import { fakeEdge, MODEL_DIR, SECRET, text } from "../kvcache/llamacpp-tiers-support";

const MODEL = "tiny-metrics";
const CHUNK = 256;
const MAX_TOKENS = 6;
let server: CacheServer;
let edge: Awaited<ReturnType<typeof fakeEdge>>;
let a: RunningAgent;
let b: RunningAgent;

async function agent(nodeId: string): Promise<RunningAgent> {
  return startAgent(
    parseAgentConfig(
      {
        nodeId,
        region: "local",
        listen: { port: 0 },
        edge: { url: edge.url, nodeSecret: SECRET, heartbeatIntervalMs: 200 },
        logLevel: "error",
        engines: [{ kind: "llamacpp", model: MODEL, generatedModelDir: MODEL_DIR, contextSize: 4096, sequences: 1, threads: 1 }],
        // A generous per-request timeout: on a loaded box a slow GET would be a miss, and this test is about counting.
        kvCache: { chunkTokens: CHUNK, l1: { bytes: "32MiB" }, l2: { servers: [addr(server)], statsRefreshMs: 0, timeoutBaseMs: 10_000 } },
      },
      "test",
    ),
  );
}

beforeAll(async () => {
  server = await startServer({ metricsPort: 0 });
  edge = await fakeEdge();
  [a, b] = await Promise.all([agent("node-a"), agent("node-b")]);
}, 120_000);

afterAll(async () => {
  await Promise.allSettled([a?.stop({ leaving: false }), b?.stop({ leaving: false })]);
  await server?.close();
  await edge?.close();
});

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  prompt_tokens_details?: { cached_tokens: number };
}

/** A request to an agent, signed as the edge signs it; returns the status and the usage the engine reported. */
async function send(to: RunningAgent, nodeId: string, path: string, body: Record<string, unknown>): Promise<{ status: number; usage: Usage | undefined }> {
  const bytes = new TextEncoder().encode(JSON.stringify(body));
  const headers = await signRequest({ nodeId, keyVersion: 1, secret: SECRET, method: "POST", path, body: bytes, tenant: "acme" });
  const res = await fetch(to.url + path, { method: "POST", headers: { "content-type": "application/json", "x-switchyard-tenant": "acme", ...headers }, body: bytes });
  const raw = await res.text();
  if (!body.stream || res.status !== 200) return { status: res.status, usage: res.status === 200 ? (JSON.parse(raw) as { usage: Usage }).usage : undefined };
  let usage: Usage | undefined;
  for (const block of new SseFramer().push(raw)) {
    const data = parseSseEvent(block).data;
    if (data && data !== "[DONE]") usage = (JSON.parse(data) as { usage?: Usage }).usage ?? usage;
  }
  return { status: res.status, usage };
}

const streamed = { stream: true, stream_options: { include_usage: true } };
const greedy = { max_tokens: MAX_TOKENS, temperature: 0, ignore_eos: true };

async function scrape(url: string) {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  return parsePrometheusText(await res.text());
}

describe("agent and cache server /metrics after real traffic", () => {
  const usages: Record<string, Usage[]> = { "node-a": [], "node-b": [] };
  const P = text(2000, "metrics-prefix"); // 2000 tokens + BOS: 7 full chunks of 256 before the last prompt token

  beforeAll(async () => {
    // Agent A: the long prompt (computed, written through to L2), two chats, one whole completion, one refusal.
    const sent = [
      await send(a, "node-a", "/v1/completions", { model: MODEL, prompt: P, ...greedy, ...streamed }),
      await send(a, "node-a", "/v1/chat/completions", { model: MODEL, messages: [{ role: "user", content: "first" }], ...greedy, ...streamed }),
      await send(a, "node-a", "/v1/chat/completions", { model: MODEL, messages: [{ role: "user", content: "second" }], ...greedy, ...streamed }),
      await send(a, "node-a", "/v1/completions", { model: MODEL, prompt: "a whole one", ...greedy }),
    ];
    for (const s of sent) {
      expect(s.status).toBe(200);
      usages["node-a"]?.push(s.usage as Usage);
    }
    expect((await send(a, "node-a", "/v1/completions", { model: "not-served", prompt: "x" })).status).toBe(404);
    await (a.engines.get(MODEL)?.engine as LlamaCppEngine).kvTiers?.idle();
    await a.kvTiers?.flushWrites();
    // Agent B: the same long prompt, restored from the cache server instead of computed.
    const warm = await send(b, "node-b", "/v1/completions", { model: MODEL, prompt: P, ...greedy, ...streamed });
    expect(warm.status).toBe(200);
    expect(warm.usage?.prompt_tokens_details?.cached_tokens).toBe(7 * CHUNK);
    usages["node-b"]?.push(warm.usage as Usage);
  }, 120_000);

  it("agents: requests by model, endpoint and status, one TTFT and duration per request, TPOT per stream", async () => {
    const m = await scrape(`${a.url}/metrics`);
    const model = { model: MODEL, node: "node-a" };
    expect(sumOf(m, "switchyard_agent_requests_total", { ...model, endpoint: "completions", status: "200" })).toBe(2);
    expect(sumOf(m, "switchyard_agent_requests_total", { ...model, endpoint: "chat", status: "200" })).toBe(2);
    expect(sumOf(m, "switchyard_agent_requests_total", { model: "", endpoint: "completions", status: "404" })).toBe(1);
    expect(sumOf(m, "switchyard_agent_ttft_seconds_count", model)).toBe(4);
    expect(sumOf(m, "switchyard_agent_ttft_seconds_bucket", { ...model, le: "+Inf" })).toBe(4);
    expect(sumOf(m, "switchyard_agent_request_duration_seconds_count", model)).toBe(4);
    // The three streams each had MAX_TOKENS tokens; the whole completion has no token timing.
    expect(sumOf(m, "switchyard_agent_tpot_seconds_count", model)).toBe(3);
    const tpotMean = (sumOf(m, "switchyard_agent_tpot_seconds_sum", model) as number) / 3;
    const durationMean = (sumOf(m, "switchyard_agent_request_duration_seconds_sum", model) as number) / 4;
    expect(tpotMean).toBeGreaterThan(0);
    expect(tpotMean).toBeLessThan(durationMean);
    // The TTFT of every request is within its duration.
    expect(sumOf(m, "switchyard_agent_ttft_seconds_sum", model)).toBeLessThanOrEqual(sumOf(m, "switchyard_agent_request_duration_seconds_sum", model) as number);
  });

  it("agents: tokens equal to the usage the responses reported", async () => {
    for (const [node, agentRun] of [["node-a", a], ["node-b", b]] as const) {
      const m = await scrape(`${agentRun.url}/metrics`);
      const u = usages[node] as Usage[];
      const total = (f: (x: Usage) => number) => u.reduce((s, x) => s + f(x), 0);
      expect(sumOf(m, "switchyard_agent_prompt_tokens_total", { model: MODEL })).toBe(total((x) => x.prompt_tokens));
      expect(sumOf(m, "switchyard_agent_generation_tokens_total", { model: MODEL })).toBe(u.length * MAX_TOKENS);
      expect(sumOf(m, "switchyard_agent_cached_prompt_tokens_total", { model: MODEL })).toBe(total((x) => x.prompt_tokens_details?.cached_tokens ?? 0));
    }
  });

  it("agents: queue, engine load and KV usage gauges", async () => {
    const m = await scrape(`${a.url}/metrics`);
    const labels = { model: MODEL, engine: "llamacpp", node: "node-a" };
    expect(sumOf(m, "switchyard_agent_queue_waiting", labels)).toBe(0);
    expect(sumOf(m, "switchyard_agent_queue_running", labels)).toBe(0);
    expect(sumOf(m, "switchyard_engine_running", labels)).toBe(0);
    expect(sumOf(m, "switchyard_engine_waiting", labels)).toBe(0);
    expect(sumOf(m, "switchyard_engine_healthy", labels)).toBe(1);
    expect(sumOf(m, "switchyard_engine_kv_capacity_tokens", labels)).toBe(4096);
    // The one sequence still holds the last prompt's KV for reuse.
    const usage = sumOf(m, "switchyard_engine_kv_usage_ratio", labels) as number;
    expect(usage).toBeGreaterThan(0);
    expect(usage).toBeLessThanOrEqual(1);
  });

  it("agents' tier series and the cache server's agree: what A wrote, B read", async () => {
    const ma = await scrape(`${a.url}/metrics`);
    const mb = await scrape(`${b.url}/metrics`);
    const ms = await scrape(`http://127.0.0.1:${server.metricsPort}/metrics`);
    const tier = (m: typeof ma, name: string, t: string) => sumOf(m, `switchyard_kv_tier_${name}`, { tier: t }) as number;
    // A computed 7 chunks: into its L1, and through to L2.
    expect(sumOf(ma, "switchyard_kv_tier_l2_writes_total", { result: "sent" })).toBe(7);
    expect(tier(ma, "bytes_in_total", "l1")).toBeGreaterThan(0);
    expect(tier(ma, "bytes_in_total", "l2")).toBe(tier(ma, "bytes_in_total", "l1"));
    expect(sumOf(ms, "switchyard_kvcache_server_requests_total", { op: "put", status: "ok" })).toBe(7);
    expect(sumOf(ms, "switchyard_kvcache_server_request_duration_seconds_count", { op: "put" })).toBe(7);
    expect(sumOf(ms, "switchyard_kvcache_server_bytes_in_total")).toBe(tier(ma, "bytes_in_total", "l2"));
    expect(sumOf(ms, "switchyard_kvcache_server_objects")).toBe(7);
    expect(sumOf(ms, "switchyard_kvcache_server_bytes_used")).toBe(tier(ma, "bytes_in_total", "l2"));
    expect(sumOf(ms, "switchyard_kvcache_server_capacity_bytes")).toBe(256 * 1024 * 1024);
    expect(sumOf(ms, "switchyard_kvcache_server_evictions_total")).toBe(0);
    // B found all 7 in L2: its hits and bytes read are the server's.
    expect(tier(mb, "hits_total", "l2")).toBe(7);
    expect(sumOf(ms, "switchyard_kvcache_server_hits_total")).toBe(7);
    expect(sumOf(ms, "switchyard_kvcache_server_bytes_out_total")).toBe(tier(mb, "bytes_out_total", "l2"));
    expect(tier(mb, "bytes_out_total", "l2")).toBe(tier(ma, "bytes_in_total", "l2"));
    expect(sumOf(ms, "switchyard_kvcache_server_misses_total")).toBe(tier(ma, "misses_total", "l2") + tier(mb, "misses_total", "l2"));
    expect(sumOf(ms, "switchyard_kvcache_server_requests_total", { op: "get", status: "ok" })).toBe(7);
    expect(sumOf(mb, "switchyard_kv_tier_lookup_tokens_total", { model: MODEL, source: "l2" })).toBe(7 * CHUNK);
    expect(sumOf(mb, "switchyard_kv_tier_op_seconds_count", { tier: "l2", op: "get" })).toBeGreaterThanOrEqual(7);
    expect(sumOf(ms, "switchyard_kvcache_server_connections")).toBeGreaterThanOrEqual(2);
    expect(sumOf(ms, "switchyard_kvcache_server_protocol_errors_total") ?? 0).toBe(0);
  });
});
