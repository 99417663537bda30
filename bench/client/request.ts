/**
 * One OpenAI-API request, timed: sent with undici (no retries, our own connection pool), the SSE
 * stream read chunk by chunk as it arrives. TTFT is the first chunk with non-empty `content` (or
 * `reasoning_content`; `text` for completions); inter-token latencies are the gaps between such
 * chunks; TPOT = (end of stream − first token) / (completion tokens − 1), vLLM's definition
 * (AIBrix divides by completion tokens instead). Usage comes from the final usage chunk
 * (`stream_options.include_usage`), cached tokens from `usage.prompt_tokens_details.cached_tokens`.
 */
import { type Dispatcher, request } from "undici";

export interface SendSpec {
  url: string;
  headers: Record<string, string>;
  body: string;
  stream: boolean;
  endpoint: "chat" | "completions";
  dispatcher: Dispatcher;
  /** The run's signal: aborting it cancels the request (status "cancelled"). */
  cancel: AbortSignal;
  timeoutMs: number;
  /** Keep the answer text (history for sessions, --record-text). */
  collectText: boolean;
}

export interface SendResult {
  status: "ok" | "error" | "cancelled";
  /** performance.now() values. */
  sentAt: number;
  firstTokenAt: number | null;
  endAt: number;
  itl: number[];
  contentChunks: number;
  text: string;
  promptTokens: number | null;
  completionTokens: number | null;
  cachedTokens: number | null;
  finishReason: string | null;
  httpStatus: number | null;
  errorType: string | null;
  errorCode: string | null;
  errorMessage: string | null;
  headers: { requestId: string | null; node: string | null; region: string | null; strategy: string | null; prefixBlocks: string | null };
}

function header(h: Record<string, string | string[] | undefined>, name: string): string | null {
  const v = h[name];
  if (v === undefined) return null;
  return Array.isArray(v) ? (v[0] ?? null) : v;
}

interface Usage {
  prompt_tokens?: number;
  completion_tokens?: number;
  prompt_tokens_details?: { cached_tokens?: number } | null;
}

interface Chunk {
  choices?: Array<{ delta?: { content?: string | null; reasoning_content?: string | null }; message?: { content?: string | null; reasoning_content?: string | null }; text?: string; finish_reason?: string | null }>;
  usage?: Usage | null;
  error?: { message?: string; code?: string | null; type?: string };
}

function errorFromBody(text: string): { code: string | null; message: string } {
  try {
    const body = JSON.parse(text) as { error?: { message?: string; code?: string | null; type?: string } | string; message?: string };
    if (typeof body.error === "object" && body.error) return { code: body.error.code ?? body.error.type ?? null, message: body.error.message ?? text.slice(0, 500) };
    if (typeof body.error === "string") return { code: null, message: body.error };
    if (typeof body.message === "string") return { code: null, message: body.message };
  } catch {
    // not JSON
  }
  return { code: null, message: text.slice(0, 500) };
}

/** Sends one request and measures it; never throws. */
export async function sendRequest(spec: SendSpec): Promise<SendResult> {
  const timeout = AbortSignal.timeout(spec.timeoutMs);
  const signal = AbortSignal.any([spec.cancel, timeout]);
  const r: SendResult = {
    status: "error",
    sentAt: performance.now(),
    firstTokenAt: null,
    endAt: 0,
    itl: [],
    contentChunks: 0,
    text: "",
    promptTokens: null,
    completionTokens: null,
    cachedTokens: null,
    finishReason: null,
    httpStatus: null,
    errorType: null,
    errorCode: null,
    errorMessage: null,
    headers: { requestId: null, node: null, region: null, strategy: null, prefixBlocks: null },
  };
  let lastTokenAt = 0;
  const texts: string[] = [];
  const onUsage = (u: Usage | null | undefined) => {
    if (!u) return;
    if (typeof u.prompt_tokens === "number") r.promptTokens = u.prompt_tokens;
    if (typeof u.completion_tokens === "number") r.completionTokens = u.completion_tokens;
    const cached = u.prompt_tokens_details?.cached_tokens;
    if (typeof cached === "number") r.cachedTokens = cached;
  };
  const onChunk = (c: Chunk, at: number) => {
    if (c.error) {
      r.errorType = "stream";
      r.errorCode = c.error.code ?? c.error.type ?? null;
      r.errorMessage = c.error.message ?? "error event in the stream";
      return;
    }
    const choice = c.choices?.[0];
    if (choice) {
      const piece = spec.endpoint === "chat" ? (choice.delta?.content || choice.delta?.reasoning_content || "") : (choice.text ?? "");
      if (piece !== "") {
        if (r.firstTokenAt === null) r.firstTokenAt = at;
        else r.itl.push(at - lastTokenAt);
        lastTokenAt = at;
        r.contentChunks++;
        if (spec.collectText) texts.push(piece);
      }
      if (choice.finish_reason) r.finishReason = choice.finish_reason;
    }
    onUsage(c.usage);
  };

  try {
    r.sentAt = performance.now();
    const res = await request(spec.url, {
      method: "POST",
      headers: spec.headers,
      body: spec.body,
      dispatcher: spec.dispatcher,
      signal,
      headersTimeout: spec.timeoutMs,
      bodyTimeout: spec.timeoutMs,
    });
    r.httpStatus = res.statusCode;
    const h = res.headers as Record<string, string | string[] | undefined>;
    r.headers = {
      requestId: header(h, "x-request-id"),
      node: header(h, "x-switchyard-node"),
      region: header(h, "x-switchyard-region"),
      strategy: header(h, "x-switchyard-routing-strategy"),
      prefixBlocks: header(h, "x-switchyard-prefix-blocks"),
    };
    if (res.statusCode < 200 || res.statusCode >= 300) {
      const text = await res.body.text();
      const e = errorFromBody(text);
      r.endAt = performance.now();
      r.errorType = "http";
      r.errorCode = e.code;
      r.errorMessage = `HTTP ${res.statusCode}: ${e.message}`;
      return r;
    }
    const contentType = header(h, "content-type") ?? "";
    if (spec.stream && contentType.includes("text/event-stream")) {
      const decoder = new TextDecoder();
      let buf = "";
      let done = false;
      for await (const raw of res.body) {
        const at = performance.now();
        buf += decoder.decode(raw as Buffer, { stream: true });
        for (;;) {
          const m = /\r?\n\r?\n/.exec(buf);
          if (!m) break;
          const event = buf.slice(0, m.index);
          buf = buf.slice(m.index + m[0].length);
          const data = event
            .split(/\r?\n/)
            .filter((l) => l.startsWith("data:"))
            .map((l) => l.slice(5).replace(/^ /, ""))
            .join("\n");
          if (data === "") continue;
          if (data === "[DONE]") {
            done = true;
            continue;
          }
          let chunk: Chunk;
          try {
            chunk = JSON.parse(data) as Chunk;
          } catch {
            r.errorType = "protocol";
            r.errorMessage = `an SSE event is not JSON: ${data.slice(0, 200)}`;
            continue;
          }
          onChunk(chunk, at);
        }
      }
      r.endAt = performance.now();
      if (!done && r.errorType === null) {
        r.errorType = "protocol";
        r.errorMessage = "the stream ended without [DONE]";
      }
    } else {
      const text = await res.body.text();
      r.endAt = performance.now();
      try {
        const body = JSON.parse(text) as Chunk;
        const choice = body.choices?.[0];
        const content = spec.endpoint === "chat" ? (choice?.message?.content ?? choice?.message?.reasoning_content ?? "") : (choice?.text ?? "");
        if (spec.collectText) texts.push(content ?? "");
        r.finishReason = choice?.finish_reason ?? null;
        onUsage(body.usage);
        if (body.error) {
          r.errorType = "protocol";
          r.errorMessage = body.error.message ?? "error body";
        }
      } catch {
        r.errorType = "protocol";
        r.errorMessage = `the response is not JSON: ${text.slice(0, 200)}`;
      }
    }
    if (r.completionTokens === null && spec.stream) r.completionTokens = r.contentChunks;
    r.text = texts.join("");
    if (r.errorType === null) r.status = "ok";
    return r;
  } catch (err) {
    r.endAt = performance.now();
    r.text = texts.join("");
    if (r.completionTokens === null && r.contentChunks > 0) r.completionTokens = r.contentChunks;
    if (spec.cancel.aborted) {
      r.status = "cancelled";
      r.errorType = "cancelled";
      r.errorMessage = "the run was stopped while this request was in flight";
    } else if (timeout.aborted) {
      r.errorType = "timeout";
      r.errorMessage = `no complete answer within ${spec.timeoutMs} ms`;
    } else {
      const e = err as Error & { code?: string };
      r.errorType = "network";
      r.errorCode = e.code ?? null;
      r.errorMessage = e.message;
    }
    return r;
  }
}
