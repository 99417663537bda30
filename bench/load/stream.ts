/**
 * One streaming chat completion measured from the client: time to the first content token, end to
 * end time, and the usage the server reported in its final chunk — the figure the edge's ledger
 * must match exactly.
 */
import type OpenAI from "openai";

export interface StreamResult {
  ok: boolean;
  ttftMs?: number;
  e2eMs: number;
  promptTokens: number;
  completionTokens: number;
  error?: string;
}

export interface StreamRequest {
  model: string;
  prompt: string;
  maxTokens: number;
  /** Called once the first content token arrived (the stream is then "open" at the client). */
  onFirstToken?: () => void;
}

export async function streamOnce(client: OpenAI, req: StreamRequest): Promise<StreamResult> {
  const start = performance.now();
  let ttftMs: number | undefined;
  let promptTokens = 0;
  let completionTokens = 0;
  try {
    const stream = await client.chat.completions.create({
      model: req.model,
      stream: true,
      stream_options: { include_usage: true },
      max_tokens: req.maxTokens,
      messages: [{ role: "user", content: req.prompt }],
      // vLLM's sampling extension (the emulator honours it): every request produces max_tokens.
      ...({ ignore_eos: true } as Record<string, unknown>),
    });
    for await (const chunk of stream) {
      if (ttftMs === undefined && chunk.choices[0]?.delta?.content) {
        ttftMs = performance.now() - start;
        req.onFirstToken?.();
      }
      if (chunk.usage) ({ prompt_tokens: promptTokens, completion_tokens: completionTokens } = chunk.usage);
    }
    const e2eMs = performance.now() - start;
    if (ttftMs === undefined) return { ok: false, e2eMs, promptTokens, completionTokens, error: "stream ended without a token" };
    return { ok: true, ttftMs, e2eMs, promptTokens, completionTokens };
  } catch (err) {
    return { ok: false, ttftMs, e2eMs: performance.now() - start, promptTokens, completionTokens, error: err instanceof Error ? err.message.slice(0, 200) : String(err) };
  }
}
