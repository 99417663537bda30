/**
 * Start/stop behaviour of the llama.cpp engine: config validation, requests before start, and a stop
 * while one request generates and another waits for the only sequence.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { createLlamaCppEngine, type LlamaCppEngine } from "../../../dataplane/engines/llamacpp/adapter";
import { llamaCppEngineConfigSchema } from "../../../dataplane/engines/llamacpp/config";
import type { EngineRequest } from "../../../dataplane/engines/engine";
import { validateGenerationRequest } from "../../../protocol/openai-request";

const modelDir = join(tmpdir(), "switchyard-test-models");

function request(body: Record<string, unknown>): EngineRequest {
  const full = { model: "one-slot", ...body };
  return {
    requestId: randomUUID(),
    endpoint: "completions",
    body: validateGenerationRequest("completions", full),
    rawBody: new TextEncoder().encode(JSON.stringify(full)),
    signal: new AbortController().signal,
  };
}

describe("llamaCppEngineConfigSchema", () => {
  it("fills defaults and names a bad field", () => {
    const cfg = llamaCppEngineConfigSchema.parse({ kind: "llamacpp", model: "m" });
    expect(cfg).toMatchObject({ contextSize: 4096, sequences: 4, threads: 1, gpu: false, defaultMaxTokens: 256, generatedModelDir: ".switchyard/models" });
    expect(cfg.modelPath).toBeUndefined();
    const bad = llamaCppEngineConfigSchema.safeParse({ kind: "llamacpp", model: "m", gpu: "tpu" });
    expect(bad.success).toBe(false);
    expect(bad.error!.issues[0]!.path).toEqual(["gpu"]);
  });
});

describe("LlamaCppEngine lifecycle", () => {
  let engine: LlamaCppEngine;
  beforeAll(() => {
    engine = createLlamaCppEngine({ kind: "llamacpp", model: "one-slot", generatedModelDir: modelDir, contextSize: 1024, sequences: 1 });
  });
  afterAll(() => engine.stop());

  it("answers 503 before start", async () => {
    expect(engine.load()).toMatchObject({ healthy: false, running: 0, kvCapacityTokens: 1024 });
    const res = await engine.handle(request({ prompt: "x" }));
    expect(res.status).toBe(503);
  });

  it("ends in-flight and queued requests when stopped", async () => {
    await engine.start();
    expect(engine.load().healthy).toBe(true);
    const first = await engine.handle(request({ prompt: "long one", max_tokens: 900, ignore_eos: true, stream: true }));
    const reader = first.body!.getReader();
    await reader.read();
    await reader.read();
    const queued = engine.handle(request({ prompt: "waits", max_tokens: 5 }));
    await new Promise((r) => setTimeout(r, 20));
    expect(engine.load()).toMatchObject({ running: 1, waiting: 1 });

    await engine.stop();
    expect(engine.load().healthy).toBe(false);
    const queuedRes = await queued;
    expect(queuedRes.status).toBe(503);
    let rest = "";
    const decoder = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      rest += decoder.decode(value);
    }
    expect(rest).toMatch(/"error"|\[DONE\]/); // the stream ends (with an error frame) instead of hanging
    expect((await engine.handle(request({ prompt: "x" }))).status).toBe(503);
  });
});
