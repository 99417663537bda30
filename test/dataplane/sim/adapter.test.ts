/**
 * SimEngine as the agent sees it: config validation, OpenAI responses through renderGeneration
 * (JSON and SSE with usage), vLLM parameters (max_tokens, min_tokens, ignore_eos, stop), prefix-cache
 * usage figures, cancellation freeing KV blocks, and the time-scale knob.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomUUID } from "node:crypto";
import { createSimEngine, type SimEngine } from "../../../dataplane/engines/sim/adapter";
import { simEngineConfigSchema, kvCapacityTokens } from "../../../dataplane/engines/sim/config";
import { renderChatTemplate } from "../../../dataplane/engines/sim/prompt";
import { simTokenizer } from "../../../dataplane/engines/sim/tokenizer";
import type { EngineRequest } from "../../../dataplane/engines/engine";
import { validateGenerationRequest, type Endpoint } from "../../../protocol/openai-request";

function request(endpoint: Endpoint, body: Record<string, unknown>, signal: AbortSignal = new AbortController().signal): EngineRequest {
  const full = { model: "sim-8b", ...body };
  return { requestId: randomUUID(), endpoint, body: validateGenerationRequest(endpoint, full), rawBody: new TextEncoder().encode(JSON.stringify(full)), signal };
}

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
}

async function sse(res: Response): Promise<Array<Record<string, unknown> | "[DONE]">> {
  const text = await res.text();
  return text
    .split("\n\n")
    .filter((l) => l.startsWith("data: "))
    .map((l) => (l === "data: [DONE]" ? "[DONE]" : (JSON.parse(l.slice(6)) as Record<string, unknown>)));
}

const messages = [
  { role: "system", content: "You are a terse assistant." },
  { role: "user", content: "Name three prime numbers and explain why they are prime." },
];

describe("simEngineConfigSchema", () => {
  it("fills vLLM / H100 defaults and names a bad field", () => {
    const cfg = simEngineConfigSchema.parse({ kind: "sim", model: "m" });
    expect(cfg).toMatchObject({ timeScale: 1, blockSize: 16, maxNumSeqs: 256, maxNumBatchedTokens: 8192, maxModelLen: 8192, enablePrefixCaching: true, seed: 0 });
    expect(cfg.modelShape).toEqual({ layers: 32, kvHeads: 8, headDim: 128, dtypeBytes: 2 });
    // (80 GB × 0.9 − 16.06 GB weights − 1 GB reserve) / 128 KiB per token, whole blocks.
    expect(kvCapacityTokens(cfg)).toBe(419_152);
    expect(kvCapacityTokens(simEngineConfigSchema.parse({ kind: "sim", model: "m", kvCapacityTokens: 1000 }))).toBe(1000);
    const bad = simEngineConfigSchema.safeParse({ kind: "sim", model: "m", timeScale: -1 });
    expect(bad.success).toBe(false);
    expect(bad.error!.issues[0]!.path).toEqual(["timeScale"]);
    expect(simEngineConfigSchema.safeParse({ kind: "sim", model: "m", bogus: 1 }).success).toBe(false);
  });
});

describe("SimEngine", () => {
  let engine: SimEngine;
  beforeAll(async () => {
    engine = createSimEngine({ kind: "sim", model: "sim-8b", timeScale: 200, eos: { kind: "fixed", tokens: 12 } });
    expect(engine.load().healthy).toBe(false);
    await engine.start();
  });
  afterAll(() => engine.stop());

  it("reports load and capacity", () => {
    expect(engine.kind).toBe("sim");
    expect(engine.maxConcurrency).toBe(256 + 256);
    expect(engine.load()).toMatchObject({ healthy: true, running: 0, waiting: 0, kvUsage: 0, kvCapacityTokens: 419_152, kvEvictedTokens: 0 });
    expect(engine.load().kvEpoch).toMatch(/^sim-8b-/);
  });

  it("answers a chat request as JSON with usage and prefix-cache hits", async () => {
    const first = await engine.handle(request("chat", { messages }));
    expect(first.status).toBe(200);
    const body = (await first.json()) as { object: string; choices: Array<{ message: { role: string; content: string }; finish_reason: string }>; usage: Usage };
    expect(body.object).toBe("chat.completion");
    expect(body.choices[0]!.message.role).toBe("assistant");
    expect(body.choices[0]!.message.content.length).toBeGreaterThan(10);
    expect(body.choices[0]!.finish_reason).toBe("stop");
    const promptTokens = simTokenizer.count(renderChatTemplate(messages as never));
    expect(body.usage).toMatchObject({ prompt_tokens: promptTokens, completion_tokens: 12, total_tokens: promptTokens + 12 });
    expect(body.usage.prompt_tokens_details.cached_tokens).toBe(0);
    const again = (await (await engine.handle(request("chat", { messages }))).json()) as { usage: Usage };
    expect(again.usage.prompt_tokens_details.cached_tokens).toBe(Math.floor((promptTokens - 1) / 16) * 16);
  });

  it("streams SSE like vLLM: role chunk, content, finish, usage chunk, [DONE]", async () => {
    const res = await engine.handle(request("chat", { messages, stream: true, stream_options: { include_usage: true }, max_tokens: 5, ignore_eos: true }));
    expect(res.headers.get("content-type")).toMatch(/text\/event-stream/);
    const events = await sse(res);
    expect(events.at(-1)).toBe("[DONE]");
    const chunks = events.slice(0, -1) as Array<{ object: string; choices: Array<{ delta: { role?: string; content?: string }; finish_reason: string | null }>; usage?: Usage }>;
    expect(chunks.every((c) => c.object === "chat.completion.chunk")).toBe(true);
    expect(chunks[0]!.choices[0]!.delta).toEqual({ role: "assistant", content: "" });
    const usage = chunks.at(-1)!;
    expect(usage.choices).toEqual([]);
    expect(usage.usage!.completion_tokens).toBe(5);
    const finish = chunks.at(-2)!;
    expect(finish.choices[0]!.finish_reason).toBe("length");
    const content = chunks.slice(1, -2).map((c) => c.choices[0]!.delta.content).join("");
    expect(simTokenizer.count(content)).toBe(5);
  });

  it("serves /v1/completions with min_tokens, ignore_eos and max_tokens", async () => {
    const text = async (body: Record<string, unknown>) =>
      (await (await engine.handle(request("completions", { prompt: "The history of the printing press", ...body }))).json()) as {
        object: string;
        choices: Array<{ text: string; finish_reason: string }>;
        usage: Usage;
      };
    const plain = await text({});
    expect(plain.object).toBe("text_completion");
    expect(plain.choices[0]!.text.startsWith(" ")).toBe(true);
    expect([plain.usage.completion_tokens, plain.choices[0]!.finish_reason]).toEqual([12, "stop"]);
    const min = await text({ min_tokens: 30 });
    expect([min.usage.completion_tokens, min.choices[0]!.finish_reason]).toEqual([31, "stop"]);
    const ignore = await text({ ignore_eos: true, max_tokens: 40 });
    expect([ignore.usage.completion_tokens, ignore.choices[0]!.finish_reason]).toEqual([40, "length"]);
    const capped = await text({ max_tokens: 3 });
    expect([capped.usage.completion_tokens, capped.choices[0]!.finish_reason]).toEqual([3, "length"]);
  });

  it("stops at a stop string without emitting it; greedy requests repeat themselves", async () => {
    const greedy = { prompt: "Write about caches.", temperature: 0, ignore_eos: true, max_tokens: 40 };
    const once = (await (await engine.handle(request("completions", greedy))).json()) as { choices: Array<{ text: string }> };
    const twice = (await (await engine.handle(request("completions", greedy))).json()) as { choices: Array<{ text: string }> };
    const full = once.choices[0]!.text;
    expect(twice.choices[0]!.text).toBe(full);
    const words = full.trim().split(" ");
    const stop = ` ${words[Math.floor(words.length / 2)]}`;
    const cut = (await (await engine.handle(request("completions", { ...greedy, stop: [stop] }))).json()) as { choices: Array<{ text: string; finish_reason: string }> };
    expect(cut.choices[0]!.finish_reason).toBe("stop");
    expect(cut.choices[0]!.text).toBe(full.slice(0, full.indexOf(stop)));
  });

  it("rejects a prompt beyond the context with vLLM's 400", async () => {
    const res = await engine.handle(request("completions", { prompt: "word ".repeat(9000) }));
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("context_length_exceeded");
    expect(body.error.message).toMatch(/maximum context length is 8192 tokens/);
    const tooMuch = await engine.handle(request("completions", { prompt: "hi", max_tokens: 8192 }));
    expect(tooMuch.status).toBe(400);
  });

  it("frees the request's KV blocks when the client goes away", async () => {
    const controller = new AbortController();
    const res = await engine.handle(request("chat", { messages, stream: true, max_tokens: 5000, ignore_eos: true }, controller.signal));
    const reader = res.body!.getReader();
    await reader.read();
    await reader.read();
    expect(engine.load().running).toBe(1);
    expect(engine.load().kvUsage).toBeGreaterThan(0);
    controller.abort();
    expect(engine.load()).toMatchObject({ running: 0, kvUsage: 0 });
    await reader.cancel().catch(() => {});
    // Cancelling the body (instead of the signal) frees them too.
    const res2 = await engine.handle(request("chat", { messages, stream: true, max_tokens: 5000, ignore_eos: true }));
    const reader2 = res2.body!.getReader();
    await reader2.read();
    expect(engine.load().running).toBe(1);
    await reader2.cancel();
    expect(engine.load()).toMatchObject({ running: 0, kvUsage: 0 });
    expect(engine.core.metrics.success.abort).toBe(2);
  });

  it("emits KV events to subscribers", async () => {
    const batches: unknown[] = [];
    const off = engine.onKvEvents((b) => batches.push(b));
    await (await engine.handle(request("completions", { prompt: "A fresh prompt about lighthouses and the sea, long enough to fill two blocks of sixteen tokens each.", max_tokens: 2 }))).json();
    off();
    expect(batches.length).toBeGreaterThan(0);
    expect(JSON.stringify(batches)).toMatch(/"type":"BlockStored"/);
  });
});

describe("time scale", () => {
  it("runs 20× faster in wall time and reports model time", async () => {
    const engine = createSimEngine({ kind: "sim", model: "sim-8b", timeScale: 20 });
    await engine.start();
    try {
      const t0 = performance.now();
      const res = await engine.handle(request("completions", { prompt: "Tell me a story.", max_tokens: 100, ignore_eos: true }));
      await res.json();
      const wall = performance.now() - t0;
      const e2e = engine.core.metrics.e2eLatency;
      const modelMs = (e2e.sum / e2e.count) * 1000;
      console.log(`timeScale 20: model e2e ${modelMs.toFixed(0)} ms, wall ${wall.toFixed(0)} ms`);
      // ≈ prefill (24 ms) + 99 decode steps (≈6.1 ms) of model time.
      expect(modelMs).toBeGreaterThan(600);
      expect(modelMs).toBeLessThan(700);
      expect(wall).toBeGreaterThan((modelMs / 20) * 0.9);
      // Far from unscaled (modelMs) or a scale of 2, with room for timer delays on a loaded box.
      expect(wall).toBeLessThan(modelMs / 3);
    } finally {
      await engine.stop();
    }
  });

  it("answers 503 before start and after stop", async () => {
    const engine = createSimEngine({ kind: "sim", model: "sim-8b" });
    expect((await engine.handle(request("completions", { prompt: "x" }))).status).toBe(503);
    await engine.start();
    await engine.stop();
    expect((await engine.handle(request("completions", { prompt: "x" }))).status).toBe(503);
    expect(engine.load().healthy).toBe(false);
  });
});
