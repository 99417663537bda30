/**
 * Reads an engine's response as it passes through the agent, for the metrics only the response
 * can tell: when output tokens arrived (TPOT) and the usage the engine reported. Engines differ
 * (in-process renderers, vLLM behind a proxy), so this reads the OpenAI wire format they all
 * speak rather than asking each adapter.
 */
import { readUsage } from "../../protocol/usage";
import { parseSseEvent, SseFramer } from "../../protocol/sse";

/** A whole (non-streamed) body larger than this is not parsed for its usage. */
const MAX_WHOLE_BODY_BYTES = 1024 * 1024;

export interface MeteredResponse {
  promptTokens: number;
  cachedTokens: number;
  completionTokens: number;
  /** Mean time between output tokens after the first, in seconds; streamed responses with 2+ tokens only. */
  tpotSeconds: number | undefined;
  /** Whether the engine reported usage (otherwise the token counts are 0, or counted chunks for TPOT). */
  hasUsage: boolean;
}

export class ResponseMeter {
  private readonly streamed: boolean;
  private readonly decoder = new TextDecoder();
  private readonly framer = new SseFramer();
  private whole: Uint8Array[] = [];
  private wholeBytes = 0;
  private firstTokenAt: number | undefined;
  private lastTokenAt: number | undefined;
  private tokenChunks = 0;
  private usage: ReturnType<typeof readUsage>;

  constructor(contentType: string | null) {
    this.streamed = (contentType ?? "").startsWith("text/event-stream");
  }

  /** Feeds one body chunk as it is forwarded, at time `now` (ms). */
  push(chunk: Uint8Array, now: number): void {
    if (!this.streamed) {
      this.wholeBytes += chunk.byteLength;
      if (this.wholeBytes <= MAX_WHOLE_BODY_BYTES) this.whole.push(chunk);
      return;
    }
    for (const block of this.framer.push(this.decoder.decode(chunk, { stream: true }))) {
      const data = parseSseEvent(block).data;
      if (data === undefined || data === "[DONE]") continue;
      let event: { choices?: Array<{ delta?: { content?: unknown }; text?: unknown }>; usage?: unknown };
      try {
        event = JSON.parse(data) as typeof event;
      } catch {
        continue;
      }
      const choice = event.choices?.[0];
      const text = choice?.delta?.content ?? choice?.text;
      if (typeof text === "string" && text.length > 0) {
        this.firstTokenAt ??= now;
        this.lastTokenAt = now;
        this.tokenChunks++;
      }
      const usage = readUsage(event.usage);
      if (usage) this.usage = usage;
    }
  }

  /** What the response said, once it has ended. */
  result(): MeteredResponse {
    if (!this.streamed && this.wholeBytes > 0 && this.wholeBytes <= MAX_WHOLE_BODY_BYTES) {
      try {
        this.usage = readUsage((JSON.parse(Buffer.concat(this.whole).toString("utf8")) as { usage?: unknown }).usage);
      } catch {
        // not JSON: an engine's plain-text error; no usage to count
      }
      this.whole = [];
    }
    // Usage counts tokens exactly; an engine may put several in one chunk, or say nothing of usage.
    const tokens = this.usage?.completionTokens ?? this.tokenChunks;
    const tpotSeconds =
      this.firstTokenAt !== undefined && this.lastTokenAt !== undefined && tokens >= 2 && this.tokenChunks >= 2
        ? (this.lastTokenAt - this.firstTokenAt) / 1000 / (tokens - 1)
        : undefined;
    return {
      promptTokens: this.usage?.promptTokens ?? 0,
      cachedTokens: this.usage?.cachedTokens ?? 0,
      completionTokens: this.usage?.completionTokens ?? 0,
      tpotSeconds,
      hasUsage: this.usage !== undefined,
    };
  }
}
