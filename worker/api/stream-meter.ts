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
  /** Called exactly once when the body ends for any reason. */
  onEnd: (result: MeterResult) => void;
  /** Largest JSON body kept for reading usage from non-streamed responses. */
  maxJsonBytes?: number;
  /** Called as content chunks stream, with the running count (≈ output tokens). */
  onProgress?: (contentChunks: number) => void;
}

const encoder = new TextEncoder();

export function meterBody(upstream: ReadableStream<Uint8Array>, opts: MeterOptions): ReadableStream<Uint8Array> {
  const reader = upstream.getReader();
  const decoder = new TextDecoder();
  const framer = new SseFramer();
  const result: MeterResult = { outcome: "completed", usage: undefined, contentChunks: 0, firstTokenAt: undefined, bytes: 0 };
  const jsonParts: string[] = [];
  let jsonBytes = 0;
  const maxJson = opts.maxJsonBytes ?? 4 * 1024 * 1024;
  let sawError = false;
  let ended = false;

  const end = (outcome: ReleaseOutcome) => {
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
    opts.onEnd(result);
  };

  /** Looks at one SSE event; returns false when it must not be forwarded. */
  const inspect = (block: string): boolean => {
    const { data } = parseSseEvent(block);
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
        if (opts.sse) {
          const message = `The node serving this request failed mid-stream: ${err instanceof Error ? err.message : String(err)}`;
          controller.enqueue(encoder.encode(sseData({ error: { message, type: "server_error", param: null, code: "upstream_stream_broken" } })));
          controller.close();
        } else controller.error(err);
        end("failed");
        return;
      }
      if (chunk.done) {
        if (opts.sse) {
          const tail = framer.rest() + decoder.decode();
          if (tail.length > 0 && inspect(tail)) controller.enqueue(encoder.encode(tail));
        }
        controller.close();
        end(sawError ? "failed" : "completed");
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
      if (forward.length > 0) {
        controller.enqueue(encoder.encode(forward.join("")));
        return;
      }
      }
    },
    async cancel(reason) {
      end("cancelled");
      await reader.cancel(reason).catch(() => {});
    },
  });
}
