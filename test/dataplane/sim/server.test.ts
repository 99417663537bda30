/**
 * The standalone vLLM-compatible server over real HTTP: the agent's own scraper reads its /metrics,
 * streams look like vLLM's (the OpenAI SDK consumes them), and /kv-events delivers BlockStored.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import OpenAI from "openai";
import { startSimServer, type RunningSimServer } from "../../../dataplane/engines/sim/server";
import { loadFromMetrics } from "../../../dataplane/engines/openai/engine-load";
import { parsePrometheusText } from "../../../dataplane/engines/openai/prometheus-text";
import type { KvEventBatch } from "../../../dataplane/engines/sim/kv-cache";
import { createLogger } from "../../../dataplane/lib/log";

let server: RunningSimServer;
const logLines: Array<Record<string, unknown>> = [];

beforeAll(async () => {
  const log = createLogger({ component: "engine", engine: "sim" }, (line) => logLines.push(JSON.parse(line) as Record<string, unknown>));
  server = await startSimServer({ port: 0, log, config: { kind: "sim", model: "llama-3-8b", timeScale: 50, maxNumSeqs: 2, kvCapacityTokens: 65_536 } });
});
afterAll(() => server?.close());

const post = (path: string, body: unknown) => fetch(`${server.url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
const scrape = async () => loadFromMetrics(parsePrometheusText(await (await fetch(`${server.url}/metrics`)).text()));

describe("sim server", () => {
  it("serves /health, /v1/models and /version", async () => {
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
    const models = (await (await fetch(`${server.url}/v1/models`)).json()) as { data: Array<{ id: string; max_model_len: number; owned_by: string }> };
    expect(models.data[0]).toMatchObject({ id: "llama-3-8b", max_model_len: 8192, owned_by: "vllm" });
    expect(((await (await fetch(`${server.url}/version`)).json()) as { version: string }).version).toMatch(/sim/);
  });

  it("exposes /metrics that the agent's scraper reads as it reads vLLM's", async () => {
    const idle = await scrape();
    expect(idle).toMatchObject({ running: 0, waiting: 0, kvUsage: 0, kvCapacityTokens: 65_536 });
    // Four long requests on an engine of two sequences: two run, two wait.
    const controllers = Array.from({ length: 4 }, () => new AbortController());
    const pending = controllers.map((c, i) =>
      fetch(`${server.url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "llama-3-8b", prompt: `Request number ${i} about the weather.`, max_tokens: 5000, ignore_eos: true, stream: true }),
        signal: c.signal,
      }),
    );
    const responses = await Promise.all(pending);
    let busy = await scrape();
    // Arrivals during a step wait for its end: poll until the next step has admitted the second.
    for (let i = 0; i < 100 && !(busy.running === 2 && busy.waiting === 2); i++) {
      await new Promise((r) => setTimeout(r, 5));
      busy = await scrape();
    }
    expect(busy).toMatchObject({ running: 2, waiting: 2, kvCapacityTokens: 65_536 });
    expect(busy.kvUsage).toBeGreaterThan(0);
    for (const c of controllers) c.abort();
    await Promise.all(responses.map((r) => r.body?.cancel().catch(() => {})));
    let after = await scrape();
    for (let i = 0; i < 50 && (after.running ?? 0) + (after.waiting ?? 0) > 0; i++) {
      await new Promise((r) => setTimeout(r, 20));
      after = await scrape();
    }
    expect(after).toMatchObject({ running: 0, waiting: 0, kvUsage: 0 });
    const text = await (await fetch(`${server.url}/metrics`)).text();
    expect(text).toMatch(/^vllm:request_success_total\{model_name="llama-3-8b",engine="0",finished_reason="abort"\} 4\.0$/m);
    expect(text).toMatch(/^vllm:time_to_first_token_seconds_bucket\{model_name="llama-3-8b",engine="0",le="0\.001"\} /m);
    expect(text).toMatch(/^vllm:cache_config_info\{block_size="16",.*num_gpu_blocks="4096".*\} 1\.0$/m);
  });

  it("streams chat like vLLM, usage chunk included, consumable by the OpenAI SDK", async () => {
    const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused" });
    const stream = await client.chat.completions.create({
      model: "llama-3-8b",
      messages: [{ role: "user", content: "Say something about clouds." }],
      max_tokens: 8,
      stream: true,
      stream_options: { include_usage: true },
    });
    let content = "";
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined;
    let roleSeen = false;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      const choice = chunk.choices[0];
      if (!choice) continue;
      if (choice.delta.role === "assistant") roleSeen = true;
      content += choice.delta.content ?? "";
      finish = choice.finish_reason ?? finish;
    }
    expect(roleSeen).toBe(true);
    expect(content.length).toBeGreaterThan(0);
    expect(finish === "stop" || finish === "length").toBe(true);
    expect(usage!.completion_tokens).toBeGreaterThan(0);
    expect(usage!.prompt_tokens).toBeGreaterThan(5);
  });

  it("publishes KV events over SSE at /kv-events", async () => {
    const controller = new AbortController();
    const res = await fetch(`${server.url}/kv-events`, { signal: controller.signal });
    expect(res.headers.get("content-type")).toMatch(/text\/event-stream/);
    const reader = res.body!.getReader();
    await reader.read(); // the opening comment: subscribed
    const prompt = "An entirely new prompt that nobody has sent before, about ships and harbours and the tides of the northern sea.";
    const done = post("/v1/completions", { model: "llama-3-8b", prompt, max_tokens: 2 }).then((r) => r.json());
    const decoder = new TextDecoder();
    let buffer = "";
    let batch: KvEventBatch | undefined;
    while (!batch) {
      const { value, done: ended } = await reader.read();
      if (ended) break;
      buffer += decoder.decode(value, { stream: true });
      for (const line of buffer.split("\n")) {
        if (!line.startsWith("data: ")) continue;
        const parsed = JSON.parse(line.slice(6)) as KvEventBatch;
        if (parsed.events.some((e) => e.type === "BlockStored")) batch = parsed;
      }
    }
    await done;
    expect((await post("/reset_prefix_cache", {})).status).toBe(200);
    let cleared = false;
    while (!cleared) {
      const { value, done: ended } = await reader.read();
      if (ended) break;
      cleared = decoder.decode(value).includes('"AllBlocksCleared"');
    }
    expect(cleared).toBe(true);
    controller.abort();
    expect(batch).toBeDefined();
    expect(batch!.data_parallel_rank).toBeNull();
    expect(typeof batch!.ts).toBe("number");
    const stored = batch!.events.find((e) => e.type === "BlockStored")!;
    expect(stored).toMatchObject({ type: "BlockStored", block_size: 16, lora_id: null, medium: "GPU" });
    if (stored.type === "BlockStored") expect(stored.token_ids.length).toBe(16 * stored.block_hashes.length);
  });

  it("logs a JSON line per request under the X-Request-Id it was given, as vLLM names its requests", async () => {
    const headers = { "content-type": "application/json", "x-request-id": "req-logged-1" };
    const ok = await fetch(`${server.url}/v1/completions`, { method: "POST", headers, body: JSON.stringify({ model: "llama-3-8b", prompt: "Hello", max_tokens: 3, ignore_eos: true }) });
    expect(((await ok.json()) as { id: string }).id).toBe("cmpl-req-logged-1");
    expect(logLines.find((l) => l.requestId === "req-logged-1")).toMatchObject({ component: "engine", event: "generation_done", completionTokens: 3, outcome: "length" });
    const bad = await fetch(`${server.url}/v1/completions`, { method: "POST", headers: { ...headers, "x-request-id": "req-logged-2" }, body: JSON.stringify({ model: "nope", prompt: "x" }) });
    expect(bad.status).toBe(404);
    expect(logLines.find((l) => l.requestId === "req-logged-2")).toMatchObject({ event: "request_refused", status: 404, code: "model_not_found" });
  });

  it("answers errors in OpenAI's shape", async () => {
    const wrongModel = await post("/v1/chat/completions", { model: "gpt-9", messages: [{ role: "user", content: "hi" }] });
    expect(wrongModel.status).toBe(404);
    expect(((await wrongModel.json()) as { error: { code: string } }).error.code).toBe("model_not_found");
    const badJson = await fetch(`${server.url}/v1/completions`, { method: "POST", body: "{nope" });
    expect(badJson.status).toBe(400);
    const missing = await post("/v1/completions", { model: "llama-3-8b" });
    expect(missing.status).toBe(400);
    const tokenize = (await (await post("/tokenize", { prompt: "Hello world!" })).json()) as { count: number; tokens: number[] };
    expect(tokenize.count).toBe(4); // BOS + 3
    expect(tokenize.tokens[0]).toBe(128000);
  });

  it("takes vLLM's request priority: an integer, and under fcfs only 0, as vLLM refuses others", async () => {
    const ask = (priority: unknown) => post("/v1/chat/completions", { model: "llama-3-8b", max_tokens: 1, priority, messages: [{ role: "user", content: "hi" }] });
    for (const bad of ["1", 1.5, null, true, [0]]) {
      const res = await ask(bad);
      expect(res.status, JSON.stringify(bad)).toBe(400);
      expect(((await res.json()) as { error: { param: string } }).error.param).toBe("priority");
    }
    const refused = await ask(1);
    expect(refused.status).toBe(400);
    expect(((await refused.json()) as { error: { message: string; param: string } }).error).toMatchObject({ message: "Got priority 1 but Priority scheduling is not enabled.", param: "priority" });
    expect((await ask(-1)).status).toBe(400);
    const zero = await ask(0);
    expect(zero.status).toBe(200);
    await zero.json();
  });

  it("under the priority policy, any integer priority reaches the scheduler", async () => {
    const prio = await startSimServer({ port: 0, config: { kind: "sim", model: "llama-3-8b", timeScale: 1_000, schedulingPolicy: "priority" } });
    try {
      const seen: number[] = [];
      const submit = prio.engine.core.submit.bind(prio.engine.core);
      prio.engine.core.submit = (opts) => {
        const req = submit(opts);
        seen.push(req.priority);
        return req;
      };
      for (const priority of [-3, 7, undefined]) {
        const res = await fetch(`${prio.url}/v1/chat/completions`, { method: "POST", body: JSON.stringify({ model: "llama-3-8b", max_tokens: 1, priority, messages: [{ role: "user", content: "hi" }] }) });
        expect(res.status).toBe(200);
        await res.json();
      }
      expect(seen).toEqual([-3, 7, 0]);
    } finally {
      await prio.close();
    }
  });
});
