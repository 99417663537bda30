/**
 * Validation of OpenAI generation requests: what passes untouched, and how refusals name the field.
 */
import { describe, expect, it } from "vitest";
import { ApiError } from "../../protocol/openai-error";
import { requestedMaxTokens, validateGenerationRequest, wantsStream, wantsUsageInStream, type Endpoint } from "../../protocol/openai-request";

const chat = (over: Record<string, unknown> = {}) => ({ model: "m", messages: [{ role: "user", content: "hi" }], ...over });
const completion = (over: Record<string, unknown> = {}) => ({ model: "m", prompt: "once upon", ...over });

function refusal(endpoint: Endpoint, body: unknown): ApiError {
  try {
    validateGenerationRequest(endpoint, body);
  } catch (err) {
    expect(err).toBeInstanceOf(ApiError);
    return err as ApiError;
  }
  throw new Error("expected the request to be refused");
}

describe("validateGenerationRequest", () => {
  it("passes valid chat requests and keeps unknown fields, nested ones included", () => {
    const body = chat({
      messages: [
        { role: "system", content: "be brief" },
        { role: "user", content: [{ type: "text", text: "hi" }, { type: "image_url", image_url: { url: "data:," } }] },
        { role: "assistant", content: null, tool_calls: [{ id: "t1", type: "function", function: { name: "f", arguments: "{}" } }] },
        { role: "tool", content: "42", tool_call_id: "t1" },
      ],
      stream: true,
      stream_options: { include_usage: true },
      max_completion_tokens: 10,
      temperature: 0,
      top_p: 1,
      n: 1,
      seed: -5,
      stop: ["\n", "END"],
      user: "u",
      min_tokens: 0,
      ignore_eos: true,
      cache_salt: "s",
      response_format: { type: "json_object" },
    });
    const out = validateGenerationRequest("chat", body);
    expect(out).toEqual(body);
    expect(wantsStream(out)).toBe(true);
    expect(wantsUsageInStream(out)).toBe(true);
  });

  it("passes valid completion requests of every prompt shape", () => {
    for (const prompt of ["text", ["one"], [1, 2, 3], [0]]) {
      const body = completion({ prompt, echo: false, logprobs: 2, stop: "x", max_tokens: 5 });
      expect(validateGenerationRequest("completions", body)).toEqual(body);
    }
    const plain = validateGenerationRequest("completions", completion());
    expect(wantsStream(plain)).toBe(false);
    expect(wantsUsageInStream(plain)).toBe(false);
  });

  it("accepts null for the nullable sampling fields", () => {
    const body = chat({ stream: null, stream_options: null, max_tokens: null, max_completion_tokens: null, temperature: null, top_p: null, n: null, seed: null, stop: null });
    expect(validateGenerationRequest("chat", body)).toEqual(body);
  });

  it.each<[string, Endpoint, unknown, string, string]>([
    ["missing model", "chat", { messages: [{ role: "user", content: "x" }] }, "model", "missing_required_parameter"],
    ["empty model", "chat", chat({ model: "" }), "model", "invalid_value"],
    ["missing messages", "chat", { model: "m" }, "messages", "missing_required_parameter"],
    ["empty messages", "chat", chat({ messages: [] }), "messages", "invalid_value"],
    ["bad role", "chat", chat({ messages: [{ role: "user", content: "a" }, { role: "user", content: "b" }, { role: "robot", content: "c" }] }), "messages[2].role", "invalid_value"],
    ["missing role", "chat", chat({ messages: [{ content: "a" }] }), "messages[0].role", "missing_required_parameter"],
    ["content not text", "chat", chat({ messages: [{ role: "user", content: 5 }] }), "messages[0].content", "invalid_value"],
    ["message not an object", "chat", chat({ messages: ["hi"] }), "messages[0]", "invalid_value"],
    ["max_tokens zero", "chat", chat({ max_tokens: 0 }), "max_tokens", "invalid_value"],
    ["max_tokens fractional", "completions", completion({ max_tokens: 1.5 }), "max_tokens", "invalid_value"],
    ["max_tokens string", "completions", completion({ max_tokens: "10" }), "max_tokens", "invalid_value"],
    ["max_tokens huge", "chat", chat({ max_tokens: 1_000_001 }), "max_tokens", "invalid_value"],
    ["max_completion_tokens negative", "chat", chat({ max_completion_tokens: -1 }), "max_completion_tokens", "invalid_value"],
    ["stop number", "chat", chat({ stop: 5 }), "stop", "invalid_value"],
    ["stop too many", "completions", completion({ stop: Array.from({ length: 17 }, (_, i) => `s${i}`) }), "stop", "invalid_value"],
    ["temperature high", "chat", chat({ temperature: 2.5 }), "temperature", "invalid_value"],
    ["top_p zero", "chat", chat({ top_p: 0 }), "top_p", "invalid_value"],
    ["n two", "chat", chat({ n: 2 }), "n", "invalid_value"],
    ["stream string", "chat", chat({ stream: "yes" }), "stream", "invalid_value"],
    ["include_usage string", "chat", chat({ stream_options: { include_usage: "yes" } }), "stream_options.include_usage", "invalid_value"],
    ["missing prompt", "completions", { model: "m" }, "prompt", "missing_required_parameter"],
    ["two prompts", "completions", completion({ prompt: ["a", "b"] }), "prompt", "invalid_value"],
    ["empty token prompt", "completions", completion({ prompt: [] }), "prompt", "invalid_value"],
    ["negative token", "completions", completion({ prompt: [1, -1] }), "prompt[1]", "invalid_value"],
  ])("%s → 400 naming %s", (_name, endpoint, body, param, code) => {
    const err = refusal(endpoint, body);
    expect(err.status).toBe(400);
    expect(err.type).toBe("invalid_request_error");
    expect(err.param).toBe(param);
    expect(err.code).toBe(code);
    expect(err.message).toContain(`'${param}'`);
    expect(err.body()).toEqual({ error: { message: err.message, type: "invalid_request_error", param, code } });
  });

  it("refuses bodies that are not JSON objects", () => {
    for (const body of [null, [], "text", 5, true]) {
      const err = refusal("chat", body);
      expect(err.status).toBe(400);
      expect(err.code).toBe("invalid_body");
    }
  });

  it("chat-only fields are not checked for completions and vice versa", () => {
    // `messages` is an unknown (kept) field on completions.
    expect(validateGenerationRequest("completions", completion({ messages: "x" }))).toMatchObject({ messages: "x" });
    expect(refusal("chat", completion()).param).toBe("messages");
  });
});

describe("requestedMaxTokens", () => {
  it("prefers max_completion_tokens, falls back to max_tokens, else undefined", () => {
    expect(requestedMaxTokens(validateGenerationRequest("chat", chat({ max_tokens: 100, max_completion_tokens: 7 })))).toBe(7);
    expect(requestedMaxTokens(validateGenerationRequest("chat", chat({ max_tokens: 100 })))).toBe(100);
    expect(requestedMaxTokens(validateGenerationRequest("chat", chat({ max_tokens: 100, max_completion_tokens: null })))).toBe(100);
    expect(requestedMaxTokens(validateGenerationRequest("chat", chat()))).toBeUndefined();
    expect(requestedMaxTokens(validateGenerationRequest("chat", chat({ max_tokens: null })))).toBeUndefined();
    expect(requestedMaxTokens(validateGenerationRequest("completions", completion({ max_tokens: 3 })))).toBe(3);
  });
});

describe("ApiError", () => {
  it("renders OpenAI's error body with status, type and extra headers", async () => {
    const res = new ApiError(503, "busy", { code: "node_overloaded", headers: { "retry-after": "1" } }).toResponse({ "x-request-id": "r" });
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("1");
    expect(res.headers.get("x-request-id")).toBe("r");
    expect(await res.json()).toEqual({ error: { message: "busy", type: "overloaded_error", param: null, code: "node_overloaded" } });
  });
});
