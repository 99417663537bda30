/**
 * Passes an agent's response body to the client while watching it: when the first token came,
 * what usage the engine reported, whether the stream completed, broke or was cancelled. SSE is
 * forwarded event by event as each completes; the only rewrite is dropping the usage-only chunk the
 * edge asked for on the client's behalf when the client did not ask for it itself.
 */
import { readUsage } from "../../protocol/usage";
import { parseSseEvent, SseFramer, sseData } from "../../protocol/sse";
import type { ReleaseOutcome } from "../pool/types";

export interface MeterResult {
  outcome: ReleaseOutcome;
  usage: { promptTokens: number; completionTokens: number; cachedTokens: number } | undefined;
  /** Content-bearing chunks seen: the fallback completion count when usage never arrived. */
  contentChunks: number;
  firstTokenAt: number | undefined;
  bytes: number;
}

export interface MeterOptions {
  /** The body is an SSE stream (stream: true) rather than one JSON document. */
  sse: boolean;
  /** Drop the trailing `choices: []` usage chunk (the client did not ask for it). */
  stripUsageChunk: boolean;
  /**
   * Called exactly once when the body ends for any reason. When the upstream ends or breaks, the
   * client's body is closed only after the returned promise settles (usage is recorded first).
   */
  onEnd: (result: MeterResult) => void | Promise<void>;
  /** Largest JSON body kept for reading usage from non-streamed responses. */
  maxJsonBytes?: number;
  /** Called as content chunks stream, with the running count (≈ output tokens). */
  onProgress?: (contentChunks: number) => void;
  /**
   * The client's request signal: workerd fires it when the client goes away, which is more
   * reliable than the body's cancel (a body nobody reads any more is not always cancelled).
   */
  clientSignal?: AbortSignal;
}

const encoder = new TextEncoder();

/** The final event of a stream that broke: the OpenAI SDKs raise it as an APIError. */
function brokenStreamEvent(why: string): Uint8Array {
  const message = `The node serving this request failed mid-stream: ${why}`;
  return encoder.encode(sseData({ error: { message, type: "server_error", param: null, code: "upstream_stream_broken" } }));
}

export function meterBody(upstream: ReadableStream<Uint8Array>, opts: MeterOptions): ReadableStream<Uint8Array> {
  const reader = upstream.getReader();
  const decoder = new TextDecoder();
  const framer = new SseFramer();
  const result: MeterResult = { outcome: "completed", usage: undefined, contentChunks: 0, firstTokenAt: undefined, bytes: 0 };
  const jsonParts: string[] = [];
  let jsonBytes = 0;
  const maxJson = opts.maxJsonBytes ?? 4 * 1024 * 1024;
  let sawError = false;
  let sawDone = false;
  let ended = false;

  const end = async (outcome: ReleaseOutcome): Promise<void> => {
    if (ended) return;
    ended = true;
    result.outcome = outcome;
    if (!opts.sse && jsonBytes <= maxJson) {
      try {
        const body = JSON.parse(jsonParts.join("")) as Record<string, unknown>;
        result.usage = readUsage(body.usage);
        if (result.usage && result.firstTokenAt === undefined) result.firstTokenAt = Date.now();
      } catch {
        // Not JSON (an upstream error page): no usage to read.
      }
    }
    await opts.onEnd(result);
  };

  /** Looks at one SSE event; returns false when it must not be forwarded. */
  const inspect = (block: string): boolean => {
    const { data } = parseSseEvent(block);
    if (data === "[DONE]") sawDone = true;
    if (data === undefined || data === "[DONE]") return true;
    let chunk: Record<string, unknown>;
    try {
      chunk = JSON.parse(data) as Record<string, unknown>;
    } catch {
      return true;
    }
    if (chunk.error !== undefined) sawError = true;
    const usage = readUsage(chunk.usage);
    if (usage) result.usage = usage;
    const choices = Array.isArray(chunk.choices) ? (chunk.choices as Array<Record<string, unknown>>) : [];
    for (const choice of choices) {
      const delta = choice.delta as Record<string, unknown> | undefined;
      const text = typeof delta?.content === "string" ? delta.content : typeof choice.text === "string" ? choice.text : "";
      if (text.length > 0) {
        result.contentChunks++;
        result.firstTokenAt ??= Date.now();
        opts.onProgress?.(result.contentChunks);
      }
    }
    return !(opts.stripUsageChunk && usage && choices.length === 0);
  };

  opts.clientSignal?.addEventListener(
    "abort",
    () => {
      void end("cancelled");
      reader.cancel(opts.clientSignal?.reason).catch(() => {});
    },
    { once: true },
  );

  return new ReadableStream<Uint8Array>({
    // pull must enqueue or finish before returning, or the stream never asks again: loop until an
    // event completes.
    async pull(controller) {
      for (;;) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await reader.read();
      } catch (err) {
        // The agent went away mid-body. Streams get a final error event the OpenAI SDK raises as an
        // APIError; a JSON body can only be cut off.
        await end("failed");
        if (opts.sse) {
          controller.enqueue(brokenStreamEvent(err instanceof Error ? err.message : String(err)));
          controller.close();
        } else controller.error(err);
        return;
      }
      if (chunk.done) {
        const tail = opts.sse ? framer.rest() + decoder.decode() : "";
        const forwardTail = tail.length > 0 && inspect(tail);
        // An OpenAI stream ends with `[DONE]` or, when it fails, an error event. One that just stops
        // was cut short somewhere between the engine and here: the SDKs would take it for a whole
        // answer, so it is failed, and the client told.
        const cutShort = opts.sse && !sawDone && !sawError;
        await end(sawError || cutShort ? "failed" : "completed");
        if (forwardTail) controller.enqueue(encoder.encode(tail));
        if (cutShort) controller.enqueue(brokenStreamEvent("it ended before the engine finished the answer"));
        controller.close();
        return;
      }
      result.bytes += chunk.value.byteLength;
      if (!opts.sse) {
        if (jsonBytes <= maxJson) {
          jsonBytes += chunk.value.byteLength;
          jsonParts.push(decoder.decode(chunk.value, { stream: true }));
        }
        controller.enqueue(chunk.value);
        return;
      }
      const forward = framer.push(decoder.decode(chunk.value, { stream: true })).filter(inspect);
      // `[DONE]` is the end as clients see it: the record is written before it goes out.
      if (sawDone) await end(sawError ? "failed" : "completed");
      if (forward.length > 0) {
        controller.enqueue(encoder.encode(forward.join("")));
        return;
      }
      }
    },
    async cancel(reason) {
      // The client is gone: nobody waits for the record (the caller keeps it alive with waitUntil).
      void end("cancelled");
      await reader.cancel(reason).catch(() => {});
    },
  });
}
