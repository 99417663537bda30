/**
 * The same prefix-reuse experiment on the emulator (H100 calibration) and on embedded llama.cpp
 * (the generated random-weight model, CPU, one thread): a long shared system prompt, then two
 * questions. Both must show the same direction — the warm request's first token comes sooner, with
 * the prefix counted as cached — and a comparable ratio of warm to cold TTFT. The machines differ
 * by orders of magnitude in speed; the ratio differs by what each pays regardless of prompt length
 * (the H100 calibration's ~24 ms launch floor per prefill step; sampling and bookkeeping on the
 * CPU), which the test prints as each engine's TTFT for a one-token prompt.
 */
import { randomUUID } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EngineAdapter, EngineRequest } from "../../../dataplane/engines/engine";
import { createLlamaCppEngine } from "../../../dataplane/engines/llamacpp/adapter";
import { createSimEngine } from "../../../dataplane/engines/sim/adapter";
import { validateGenerationRequest } from "../../../protocol/openai-request";

const PREFIX_TOKENS = 3_000;
const REPS = 3;

const llama = createLlamaCppEngine({ kind: "llamacpp", model: "tiny-parity", generatedModelDir: join(tmpdir(), "switchyard-test-models"), contextSize: 4096, sequences: 2, threads: 1 });
const sim = createSimEngine({ kind: "sim", model: "sim-parity" });

beforeAll(async () => {
  await Promise.all([llama.start(), sim.start()]);
}, 120_000);

afterAll(async () => {
  await Promise.all([llama.stop(), sim.stop()]);
});

function request(model: string, messages: Array<{ role: string; content: string }>): EngineRequest {
  const body = { model, messages, max_tokens: 1, stream: true, stream_options: { include_usage: true } };
  return { requestId: randomUUID(), endpoint: "chat", body: validateGenerationRequest("chat", body), rawBody: new TextEncoder().encode(JSON.stringify(body)), signal: new AbortController().signal };
}

/** TTFT (first content frame after the role chunk) and the usage of one streamed request. */
async function ttft(engine: EngineAdapter, model: string, messages: Array<{ role: string; content: string }>): Promise<{ ms: number; prompt: number; cached: number }> {
  const t0 = performance.now();
  const res = await engine.handle(request(model, messages));
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let raw = "";
  let first: number | undefined;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    raw += decoder.decode(value, { stream: true });
    if (first === undefined && raw.split("\n\n").filter(Boolean).length >= 2) first = performance.now() - t0;
  }
  const usageEvent = raw
    .split("\n\n")
    .map((e) => e.replace(/^data: /, ""))
    .filter((d) => d.startsWith("{") && d.includes('"usage"'))
    .map((d) => JSON.parse(d) as { usage?: { prompt_tokens: number; prompt_tokens_details?: { cached_tokens: number } } })
    .find((e) => e.usage);
  return { ms: first as number, prompt: usageEvent?.usage?.prompt_tokens ?? 0, cached: usageEvent?.usage?.prompt_tokens_details?.cached_tokens ?? 0 };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

/** Text of about `tokens` tokens for this engine (the two tokenizers differ: measured, not assumed). */
async function promptOfTokens(engine: EngineAdapter, model: string, tokens: number, salt: string): Promise<string> {
  const unit = `${salt} The quick brown fox jumps over the lazy dog; 0123456789. `;
  const probe = await ttft(engine, model, [{ role: "user", content: unit.repeat(20) }]);
  const perUnit = Math.max(1, (probe.prompt - 8) / 20);
  return unit.repeat(Math.ceil(tokens / perUnit));
}

async function experiment(engine: EngineAdapter, model: string) {
  const floors: number[] = [];
  for (let i = 0; i < 3; i++) floors.push((await ttft(engine, model, [{ role: "user", content: "x" }])).ms);
  const floor = median(floors);
  const cold: number[] = [];
  const warm: number[] = [];
  let cachedTokens = 0;
  let promptTokens = 0;
  for (let r = 0; r < REPS; r++) {
    const system = await promptOfTokens(engine, model, PREFIX_TOKENS, randomUUID());
    const c = await ttft(engine, model, [{ role: "system", content: system }, { role: "user", content: "What is the first question?" }]);
    const w = await ttft(engine, model, [{ role: "system", content: system }, { role: "user", content: "And the second one?" }]);
    cold.push(c.ms);
    warm.push(w.ms);
    cachedTokens = w.cached;
    promptTokens = w.prompt;
    expect(c.cached).toBeLessThan(c.prompt / 10);
  }
  const coldMs = median(cold);
  const warmMs = median(warm);
  return { floor, coldMs, warmMs, cachedTokens, promptTokens };
}

describe("prefix reuse: emulator against llama.cpp", () => {
  it("shows the same direction and a comparable ratio of warm to cold TTFT", async () => {
    const onSim = await experiment(sim, "sim-parity");
    const onLlama = await experiment(llama, "tiny-parity");
    for (const [name, r] of [["sim", onSim], ["llamacpp", onLlama]] as const) {
      console.log(
        `[parity] ${name}: ${r.promptTokens}-token prompt, ${r.cachedTokens} cached; floor ${r.floor.toFixed(1)} ms, cold ${r.coldMs.toFixed(1)} ms, warm ${r.warmMs.toFixed(1)} ms; warm/cold ${(r.warmMs / r.coldMs).toFixed(3)}`,
      );
      expect(r.cachedTokens).toBeGreaterThan(0.9 * PREFIX_TOKENS);
      expect(r.warmMs).toBeLessThan(r.coldMs);
      // Most of the first token's cost is gone once the prefix is cached.
      expect(r.warmMs / r.coldMs).toBeLessThan(0.5);
    }
    // Comparable: warm/cold agrees within 4× between the two engines.
    const ratios = [onSim.warmMs / onSim.coldMs, onLlama.warmMs / onLlama.coldMs];
    expect(Math.max(...ratios)).toBeLessThanOrEqual(4 * Math.min(...ratios));
  }, 180_000);
});
