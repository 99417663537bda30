/**
 * Turning an engine's token stream into OpenAI's wire format. Engines that generate in-process
 * (llamacpp, sim) produce GenerationEvents; this module renders them as a chat or completions
 * response, streamed (SSE) or whole, exactly as vLLM does, including the usage chunk.
 */
import type { Endpoint, GenerationRequest } from "../../protocol/openai-request";
import { requestedMaxTokens, wantsUsageInStream } from "../../protocol/openai-request";
import { ApiError } from "../../protocol/openai-error";
import type { Logger } from "../lib/log";

export type FinishReason = "stop" | "length" | "abort";

export type GenerationEvent =
  | { type: "start"; promptTokens: number; cachedTokens: number }
  | { type: "delta"; text: string; tokens: number }
  | { type: "end"; finishReason: FinishReason };

/** Sampling and length settings normalised from either endpoint. */
export interface GenerationParams {
  maxTokens: number;
  minTokens: number;
  ignoreEos: boolean;
  temperature: number;
  topP: number;
  seed: number | undefined;
  stop: string[];
  stream: boolean;
  includeUsage: boolean;
}

export function generationParams(req: GenerationRequest, defaultMaxTokens: number): GenerationParams {
  const stop = req.stop == null ? [] : typeof req.stop === "string" ? [req.stop] : req.stop;
  return {
    maxTokens: requestedMaxTokens(req) ?? defaultMaxTokens,
    minTokens: req.min_tokens ?? 0,
    ignoreEos: req.ignore_eos ?? false,
    temperature: req.temperature ?? 1,
    topP: req.top_p ?? 1,
    seed: req.seed ?? undefined,
    stop: stop.filter((s) => s.length > 0),
    stream: req.stream === true,
    includeUsage: wantsUsageInStream(req),
  };
}

export interface RenderOptions {
  endpoint: Endpoint;
  /** Model name to report. */
  model: string;
  requestId: string;
  params: GenerationParams;
  events: AsyncIterable<GenerationEvent>;
  /** Called once when rendering ends (normally, by error, or by cancellation). */
  onClose?: () => void;
  /**
   * The engine's log: one `generation_done` line per request with its id, token counts and how it
   * ended, so a request followed from the edge and the agent is found in the engine too.
   */
  log?: Logger;
}

type Outcome = FinishReason | "cancelled" | "failed";

function logDone(opts: RenderOptions, totals: Totals, outcome: Outcome, startedAt: number): void {
  opts.log?.info("generation_done", {
    requestId: opts.requestId,
    model: opts.model,
    promptTokens: totals.promptTokens,
    cachedTokens: totals.cachedTokens,
    completionTokens: totals.completionTokens,
    outcome,
    ms: Math.round(performance.now() - startedAt),
  });
}

interface Totals {
  promptTokens: number;
  cachedTokens: number;
  completionTokens: number;
}

function usageBody(t: Totals) {
  return {
    prompt_tokens: t.promptTokens,
    completion_tokens: t.completionTokens,
    total_tokens: t.promptTokens + t.completionTokens,
    prompt_tokens_details: { cached_tokens: t.cachedTokens },
  };
}

function responseId(endpoint: Endpoint, requestId: string): string {
  return `${endpoint === "chat" ? "chatcmpl" : "cmpl"}-${requestId}`;
}

const encoder = new TextEncoder();

/** Renders the generation as an SSE stream or a JSON body, as the request asked. */
export function renderGeneration(opts: RenderOptions): Promise<Response> {
  return opts.params.stream ? Promise.resolve(renderStream(opts)) : renderWhole(opts);
}

function renderStream(opts: RenderOptions): Response {
  const { endpoint, model, params } = opts;
  const id = responseId(endpoint, opts.requestId);
  const created = Math.floor(Date.now() / 1000);
  const totals: Totals = { promptTokens: 0, cachedTokens: 0, completionTokens: 0 };
  const iterator = opts.events[Symbol.asyncIterator]();
  const startedAt = performance.now();
  let outcome: Outcome = "cancelled";
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    opts.onClose?.();
    logDone(opts, totals, outcome, startedAt);
  };
  const chunk = (choice: Record<string, unknown> | null, usage?: Totals) => {
    const body: Record<string, unknown> = {
      id,
      object: endpoint === "chat" ? "chat.completion.chunk" : "text_completion",
      created,
      model,
      choices: choice ? [choice] : [],
    };
    if (usage) body.usage = usageBody(usage);
    return encoder.encode(`data: ${JSON.stringify(body)}\n\n`);
  };
  const choiceFor = (text: string, finish: FinishReason | null, first: boolean) =>
    endpoint === "chat"
      ? { index: 0, delta: first ? { role: "assistant", content: text } : finish ? {} : { content: text }, logprobs: null, finish_reason: finish }
      : { index: 0, text, logprobs: null, finish_reason: finish };

  let sentRole = false;
  const stream = new ReadableStream<Uint8Array>({
    // pull must enqueue or close before it returns, or the stream never asks again: events that
    // produce no bytes (a completions `start`, an empty delta) loop to the next one.
    async pull(controller) {
      try {
        for (;;) {
          const next = await iterator.next();
          if (next.done) {
            controller.enqueue(encoder.encode("data: [DONE]\n\n"));
            controller.close();
            close();
            return;
          }
          const ev = next.value;
          if (ev.type === "start") {
            totals.promptTokens = ev.promptTokens;
            totals.cachedTokens = ev.cachedTokens;
            if (endpoint === "chat" && !sentRole) {
              sentRole = true;
              controller.enqueue(chunk(choiceFor("", null, true)));
              return;
            }
          } else if (ev.type === "delta") {
            totals.completionTokens += ev.tokens;
            if (ev.text.length > 0) {
              controller.enqueue(chunk(choiceFor(ev.text, null, false)));
              return;
            }
          } else {
            outcome = ev.finishReason;
            controller.enqueue(chunk(choiceFor("", ev.finishReason === "abort" ? "stop" : ev.finishReason, false)));
            if (params.includeUsage) controller.enqueue(chunk(null, totals));
            return;
          }
        }
      } catch (err) {
        // Mid-stream failure: OpenAI has no error frame after 200, vLLM sends one as data; do the same.
        const message = err instanceof Error ? err.message : String(err);
        outcome = "failed";
        controller.enqueue(encoder.encode(`data: ${JSON.stringify({ error: { message, type: "server_error", param: null, code: "engine_error" } })}\n\n`));
        controller.close();
        close();
      }
    },
    async cancel() {
      close();
      await iterator.return?.();
    },
  });
  return new Response(stream, {
    status: 200,
    headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", "x-request-id": opts.requestId },
  });
}

async function renderWhole(opts: RenderOptions): Promise<Response> {
  const { endpoint, model } = opts;
  const totals: Totals = { promptTokens: 0, cachedTokens: 0, completionTokens: 0 };
  const startedAt = performance.now();
  let text = "";
  let finish: FinishReason = "stop";
  try {
    for await (const ev of opts.events) {
      if (ev.type === "start") {
        totals.promptTokens = ev.promptTokens;
        totals.cachedTokens = ev.cachedTokens;
      } else if (ev.type === "delta") {
        text += ev.text;
        totals.completionTokens += ev.tokens;
      } else finish = ev.finishReason;
    }
  } catch (err) {
    opts.onClose?.();
    logDone(opts, totals, "failed", startedAt);
    if (err instanceof ApiError) return err.toResponse();
    return new ApiError(500, err instanceof Error ? err.message : String(err), { code: "engine_error" }).toResponse();
  }
  opts.onClose?.();
  logDone(opts, totals, finish, startedAt);
  const created = Math.floor(Date.now() / 1000);
  const finishReason = finish === "abort" ? "stop" : finish;
  const body =
    endpoint === "chat"
      ? {
          id: responseId(endpoint, opts.requestId),
          object: "chat.completion",
          created,
          model,
          choices: [{ index: 0, message: { role: "assistant", content: text }, logprobs: null, finish_reason: finishReason }],
          usage: usageBody(totals),
        }
      : {
          id: responseId(endpoint, opts.requestId),
          object: "text_completion",
          created,
          model,
          choices: [{ index: 0, text, logprobs: null, finish_reason: finishReason }],
          usage: usageBody(totals),
        };
  return new Response(JSON.stringify(body), { status: 200, headers: { "content-type": "application/json", "x-request-id": opts.requestId } });
}
