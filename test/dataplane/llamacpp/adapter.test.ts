/**
 * The llama.cpp engine end to end on the generated random-weight model (real llama.cpp, CPU, one
 * thread). Outputs are random bytes, so assertions are relative: counts, shapes, reuse, timing order.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { createLlamaCppEngine, type LlamaCppEngine } from "../../../dataplane/engines/llamacpp/adapter";
import type { EngineRequest } from "../../../dataplane/engines/engine";
import { validateGenerationRequest, type Endpoint } from "../../../protocol/openai-request";

let engine: LlamaCppEngine;

beforeAll(async () => {
  engine = createLlamaCppEngine({
    kind: "llamacpp",
    model: "tiny-test",
    generatedModelDir: join(tmpdir(), "switchyard-test-models"),
    contextSize: 4096,
    sequences: 4,
  });
  expect(engine.load().healthy).toBe(false);
  await engine.start();
});

afterAll(async () => {
  await engine?.stop();
});

function request(endpoint: Endpoint, body: Record<string, unknown>, signal: AbortSignal = new AbortController().signal): EngineRequest {
  const full = { model: "tiny-test", ...body };
  return {
    requestId: randomUUID(),
    endpoint,
    body: validateGenerationRequest(endpoint, full),
    rawBody: new TextEncoder().encode(JSON.stringify(full)),
    signal,
  };
}

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
}

async function json(endpoint: Endpoint, body: Record<string, unknown>) {
  const res = await engine.handle(request(endpoint, body));
  expect(res.status).toBe(200);
  return (await res.json()) as {
    object: string;
    model: string;
    choices: Array<{ text?: string; message?: { role: string; content: string }; finish_reason: string }>;
    usage: Usage;
  };
}

function parseSse(raw: string): { events: unknown[]; done: boolean } {
  const frames = raw.split("\n\n").filter((f) => f.length > 0);
  for (const f of frames) expect(f.startsWith("data: ")).toBe(true);
  const payloads = frames.map((f) => f.slice("data: ".length));
  const done = payloads.at(-1) === "[DONE]";
  return { events: payloads.filter((p) => p !== "[DONE]").map((p) => JSON.parse(p)), done };
}

async function waitFor(cond: () => boolean, timeoutMs = 3000): Promise<number> {
  const t0 = performance.now();
  while (!cond()) {
    if (performance.now() - t0 > timeoutMs) throw new Error("condition not reached");
    await new Promise((r) => setTimeout(r, 2));
  }
  return performance.now() - t0;
}

const varied = (n: number, salt: string) => {
  const base = `${salt} The quick brown fox jumps over the lazy dog; 0123456789. `;
  return base.repeat(Math.ceil(n / base.length)).slice(0, n);
};

describe("LlamaCppEngine", () => {
  it("reports its shape and load", () => {
    expect(engine.kind).toBe("llamacpp");
    expect(engine.maxConcurrency).toBe(4);
    expect(engine.chatFormat).toBe("General");
    expect(engine.load()).toMatchObject({ healthy: true, running: 0, waiting: 0, kvCapacityTokens: 4096 * 4 });
  });

  it("serves a non-streaming chat completion with exact usage", async () => {
    const body = await json("chat", { messages: [{ role: "user", content: "Say hi" }], max_tokens: 12, ignore_eos: true });
    expect(body.object).toBe("chat.completion");
    expect(body.model).toBe("tiny-test");
    expect(body.choices[0]!.message!.role).toBe("assistant");
    expect(typeof body.choices[0]!.message!.content).toBe("string");
    expect(body.choices[0]!.finish_reason).toBe("length");
    expect(body.usage.completion_tokens).toBe(12);
    expect(body.usage.prompt_tokens).toBeGreaterThan("Say hi".length);
    expect(body.usage.total_tokens).toBe(body.usage.prompt_tokens + 12);
  });

  it("serves completions from a string and from token ids", async () => {
    const prompt = "Hello, world";
    const fromText = await json("completions", { prompt, max_tokens: 5, ignore_eos: true });
    expect(fromText.object).toBe("text_completion");
    expect(typeof fromText.choices[0]!.text).toBe("string");
    expect(fromText.usage.prompt_tokens).toBe(engine.tokenize(prompt).length + 1); // + BOS
    expect(fromText.usage.completion_tokens).toBe(5);

    const ids = engine.tokenize(prompt);
    const fromIds = await json("completions", { prompt: ids, max_tokens: 3, ignore_eos: true });
    expect(fromIds.usage.prompt_tokens).toBe(ids.length);
    expect(fromIds.usage.completion_tokens).toBe(3);

    const bad = await engine.handle(request("completions", { prompt: [1, 2, 999_999] }));
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { param: string } }).error.param).toBe("prompt[2]");
  });

  it("accepts content parts and null content", async () => {
    const body = await json("chat", {
      messages: [
        { role: "system", content: null },
        { role: "user", content: [{ type: "text", text: "part one " }, { type: "image_url", image_url: { url: "x" } }, { type: "text", text: "part two" }] },
      ],
      max_tokens: 2,
      ignore_eos: true,
    });
    expect(body.usage.completion_tokens).toBe(2);
  });

  it("streams OpenAI chunks, a usage chunk when asked, and [DONE]", async () => {
    const res = await engine.handle(
      request("chat", { messages: [{ role: "user", content: "stream please" }], max_tokens: 24, ignore_eos: true, stream: true, stream_options: { include_usage: true } }),
    );
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const { events, done } = parseSse(await res.text());
    expect(done).toBe(true);
    const chunks = events as Array<{ object: string; choices: Array<{ delta: { role?: string; content?: string }; finish_reason: string | null }>; usage?: Usage }>;
    for (const c of chunks) expect(c.object).toBe("chat.completion.chunk");
    expect(chunks[0]!.choices[0]!.delta.role).toBe("assistant");
    const finishes = chunks.filter((c) => c.choices[0]?.finish_reason);
    expect(finishes).toHaveLength(1);
    expect(finishes[0]!.choices[0]!.finish_reason).toBe("length");
    const usage = chunks.at(-1)!;
    expect(usage.choices).toEqual([]);
    expect(usage.usage!.completion_tokens).toBe(24);
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? "").join("");
    expect(text.isWellFormed()).toBe(true);

    const plain = await engine.handle(request("completions", { prompt: "abc", max_tokens: 4, stream: true }));
    const parsed = parseSse(await plain.text());
    expect(parsed.done).toBe(true);
    expect((parsed.events as Array<{ usage?: unknown; object: string }>).every((e) => e.usage === undefined && e.object === "text_completion")).toBe(true);
  });

  it("honours max_tokens, ignore_eos and min_tokens", async () => {
    // Find a seed whose sampling ends early with EOS, then show ignore_eos / min_tokens override it.
    let seed = 0;
    let natural: Awaited<ReturnType<typeof json>> | undefined;
    for (; seed < 20; seed++) {
      natural = await json("completions", { prompt: "seeded", max_tokens: 400, temperature: 1, seed });
      if (natural.choices[0]!.finish_reason === "stop") break;
    }
    expect(natural!.choices[0]!.finish_reason).toBe("stop");
    const eosAt = natural!.usage.completion_tokens;
    expect(eosAt).toBeLessThan(400);

    const ignored = await json("completions", { prompt: "seeded", max_tokens: 400, temperature: 1, seed, ignore_eos: true });
    expect(ignored.choices[0]!.finish_reason).toBe("length");
    expect(ignored.usage.completion_tokens).toBe(400);

    const atLeast = await json("completions", { prompt: "seeded", max_tokens: 400, temperature: 1, seed, min_tokens: eosAt + 5 });
    expect(atLeast.usage.completion_tokens).toBeGreaterThanOrEqual(eosAt + 5);

    const tooMany = await engine.handle(request("completions", { prompt: "x", max_tokens: 3, min_tokens: 4 }));
    expect(tooMany.status).toBe(400);
  });

  it("stops before a stop string", async () => {
    const base = { prompt: varied(200, "stop-test"), temperature: 1, seed: 7, max_tokens: 64, ignore_eos: true };
    await json("completions", base); // warm the prefix so both runs below evaluate the same state
    const full = (await json("completions", base)).choices[0]!.text!;
    const at = [...full.matchAll(/[\x20-\x7e]{2}/g)].find((m) => m.index! > 0 && full.indexOf(m[0]) === m.index);
    // 64 random bytes hold a printable pair with near certainty; stop on its first occurrence
    expect(at).toBeDefined();
    const stopped = await json("completions", { ...base, stop: [at![0]] });
    expect(stopped.choices[0]!.finish_reason).toBe("stop");
    expect(stopped.choices[0]!.text).toBe(full.slice(0, at!.index));
    expect(stopped.usage.completion_tokens).toBeLessThan(64);
  });

  it("reuses a shared ~1500-token prefix: cached_tokens covers it and the first token comes sooner", async () => {
    const system = varied(1500, randomUUID()); // unique: nothing cached yet
    const ttft = async (question: string) => {
      const t0 = performance.now();
      const res = await engine.handle(
        request("chat", { messages: [{ role: "system", content: system }, { role: "user", content: question }], max_tokens: 1, stream: true, stream_options: { include_usage: true } }),
      );
      const reader = res.body!.getReader();
      const decoder = new TextDecoder();
      let raw = "";
      let first: number | undefined;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        raw += decoder.decode(value, { stream: true });
        // the first frame after the role chunk carries the first token (content or finish)
        if (first === undefined && raw.split("\n\n").filter(Boolean).length >= 2) first = performance.now() - t0;
      }
      const usage = (parseSse(raw).events.at(-1) as { usage: Usage }).usage;
      return { ms: first!, usage };
    };
    const cold = await ttft("What is the first question?");
    const warm = await ttft("And the second one?");
    console.log(`[llamacpp] ${cold.usage.prompt_tokens}-token prompt: cold TTFT ${cold.ms.toFixed(1)} ms, warm TTFT ${warm.ms.toFixed(1)} ms (${warm.usage.prompt_tokens_details.cached_tokens} cached)`);
    expect(cold.usage.prompt_tokens_details.cached_tokens).toBeLessThan(10);
    expect(warm.usage.prompt_tokens_details.cached_tokens).toBeGreaterThanOrEqual(1500);
    expect(warm.usage.prompt_tokens_details.cached_tokens).toBeLessThan(warm.usage.prompt_tokens);
    expect(warm.ms).toBeLessThan(cold.ms);

    // The very same prompt again: all but the last token come from the cache.
    const same = await ttft("And the second one?");
    expect(same.usage.prompt_tokens_details.cached_tokens).toBe(same.usage.prompt_tokens - 1);
  });

  it("never reuses one cache namespace's tokens for another, and counts what it drops", async () => {
    const system = varied(1200, randomUUID());
    const ask = async (namespace: string) => {
      const res = await engine.handle({ ...request("chat", { messages: [{ role: "system", content: system }, { role: "user", content: "q" }], max_tokens: 1 }), cacheNamespace: namespace });
      return ((await res.json()) as { usage: Usage }).usage.prompt_tokens_details.cached_tokens;
    };
    const evictedBefore = engine.load().kvEvictedTokens ?? 0;
    expect(await ask("t:acme:m")).toBeLessThan(10);
    expect(await ask("t:acme:m")).toBeGreaterThanOrEqual(1200);
    // Same prompt, another tenant: nothing reused however identical.
    expect(await ask("t:globex:m")).toBe(0);
    expect(engine.load().kvEpoch).toMatch(/\S+/);
    // Slots taken over from another namespace, or cut back to a shorter prefix, count as evictions.
    expect(engine.load().kvEvictedTokens ?? 0).toBeGreaterThanOrEqual(evictedBefore);
  });

  it("runs concurrent requests on separate sequences at once", async () => {
    let peak = 0;
    const timer = setInterval(() => (peak = Math.max(peak, engine.load().running)), 1);
    try {
      const results = await Promise.all(
        [0, 1, 2].map((i) => json("chat", { messages: [{ role: "user", content: varied(300, `concurrent ${i}`) }], max_tokens: 32, ignore_eos: true })),
      );
      for (const r of results) expect(r.usage.completion_tokens).toBe(32);
    } finally {
      clearInterval(timer);
    }
    expect(peak).toBe(3);
    expect(engine.load().running).toBe(0);
  });

  it("queues requests beyond its sequences", async () => {
    let peakWaiting = 0;
    const timer = setInterval(() => (peakWaiting = Math.max(peakWaiting, engine.load().waiting)), 1);
    try {
      const results = await Promise.all([0, 1, 2, 3, 4].map((i) => json("completions", { prompt: `queue ${i}`, max_tokens: 24, ignore_eos: true })));
      for (const r of results) expect(r.usage.completion_tokens).toBe(24);
    } finally {
      clearInterval(timer);
    }
    expect(peakWaiting).toBe(1);
    expect(engine.load()).toMatchObject({ running: 0, waiting: 0 });
  });

  it("stops and frees the slot when the client aborts mid-stream", async () => {
    const controller = new AbortController();
    const res = await engine.handle(request("completions", { prompt: "abort me", max_tokens: 3000, ignore_eos: true, stream: true }, controller.signal));
    const reader = res.body!.getReader();
    for (let i = 0; i < 3; i++) await reader.read();
    expect(engine.load().running).toBe(1);
    controller.abort();
    // drain: the stream ends promptly instead of running to 3000 tokens
    let frames = 0;
    for (;;) {
      const { done } = await reader.read();
      if (done) break;
      frames++;
    }
    expect(frames).toBeLessThan(50);
    await waitFor(() => engine.load().running === 0, 1000);
    const after = await json("completions", { prompt: "after abort", max_tokens: 3, ignore_eos: true });
    expect(after.usage.completion_tokens).toBe(3);
  });

  it("stops and frees the slot when the response body is cancelled", async () => {
    const res = await engine.handle(request("chat", { messages: [{ role: "user", content: "cancel me" }], max_tokens: 3000, ignore_eos: true, stream: true }));
    const reader = res.body!.getReader();
    for (let i = 0; i < 3; i++) await reader.read();
    expect(engine.load().running).toBe(1);
    await reader.cancel();
    await waitFor(() => engine.load().running === 0, 1000);
    expect(engine.load().kvUsage).toBeGreaterThan(0); // the slot keeps its KV for reuse
    const after = await json("chat", { messages: [{ role: "user", content: "cancel me" }], max_tokens: 2, ignore_eos: true });
    expect(after.usage.prompt_tokens_details.cached_tokens).toBe(after.usage.prompt_tokens - 1);
  });

  it("answers 400 context_length_exceeded before streaming when the prompt does not fit", async () => {
    const long = await engine.handle(request("completions", { prompt: "y".repeat(5000), stream: true }));
    expect(long.status).toBe(400);
    const body = (await long.json()) as { error: { code: string; param: string; type: string } };
    expect(body.error).toMatchObject({ code: "context_length_exceeded", param: "prompt", type: "invalid_request_error" });

    const withMax = await engine.handle(request("chat", { messages: [{ role: "user", content: "z".repeat(3000) }], max_tokens: 2000 }));
    expect(withMax.status).toBe(400);
    expect(((await withMax.json()) as { error: { code: string; param: string } }).error).toMatchObject({ code: "context_length_exceeded", param: "messages" });

    // Without max_tokens a long prompt still fits: the default is capped by the space left.
    const fits = await json("completions", { prompt: "w".repeat(4090), ignore_eos: true });
    expect(fits.usage.completion_tokens).toBe(4096 - fits.usage.prompt_tokens);
    expect(fits.choices[0]!.finish_reason).toBe("length");
  });
});
