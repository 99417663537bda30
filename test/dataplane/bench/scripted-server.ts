/**
 * A node:http OpenAI-ish server whose answers follow a script: status, headers, and SSE chunks sent
 * at scripted times after the request arrived (or one JSON body). It records every request (arrival
 * time, body, headers), the time each chunk was actually written, and the peak concurrency, all on
 * the test process's performance.now() clock (the client's clock too).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface Script {
  status?: number;
  headers?: Record<string, string>;
  /** Streamed: content pieces at ms after arrival. */
  chunks?: Array<{ atMs: number; content: string }>;
  /** ms after arrival for the usage chunk and [DONE] (default: with the last chunk). */
  endAtMs?: number;
  usage?: { prompt_tokens: number; completion_tokens: number; cached_tokens?: number };
  /** Non-streaming (or error) body, sent at endAtMs. */
  body?: unknown;
  /** Close the socket mid-stream after the chunks (no [DONE]). */
  truncate?: boolean;
}

export interface SeenRequest {
  arrivedAt: number;
  body: Record<string, unknown>;
  headers: IncomingMessage["headers"];
  /** performance.now() of each chunk write. */
  writes: number[];
  finishedAt?: number;
  aborted: boolean;
}

export class ScriptedServer {
  private server: Server | undefined;
  readonly requests: SeenRequest[] = [];
  inflight = 0;
  maxInflight = 0;
  url = "";

  constructor(private readonly script: (body: Record<string, unknown>, seen: SeenRequest) => Script) {}

  async start(): Promise<void> {
    this.server = createServer((req, res) => this.handle(req, res));
    this.server.keepAliveTimeout = 30_000;
    await new Promise<void>((resolve) => this.server?.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const arrivedAt = performance.now();
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}") as Record<string, unknown>;
      const seen: SeenRequest = { arrivedAt, body, headers: req.headers, writes: [], aborted: false };
      this.requests.push(seen);
      this.inflight++;
      this.maxInflight = Math.max(this.maxInflight, this.inflight);
      const script = this.script(body, seen);
      const timers: NodeJS.Timeout[] = [];
      const done = () => {
        if (seen.finishedAt !== undefined) return;
        seen.finishedAt = performance.now();
        this.inflight--;
      };
      res.on("close", () => {
        if (!res.writableFinished) seen.aborted = true;
        for (const t of timers) clearTimeout(t);
        done();
      });
      const at = (ms: number, fn: () => void) => timers.push(setTimeout(fn, Math.max(0, arrivedAt + ms - performance.now())));
      const status = script.status ?? 200;
      const stream = body.stream === true && status === 200 && script.body === undefined;
      res.writeHead(status, { "content-type": stream ? "text/event-stream" : "application/json", "x-request-id": String(req.headers["x-request-id"] ?? "srv"), ...(script.headers ?? {}) });
      res.flushHeaders();
      const end = script.endAtMs ?? Math.max(0, ...(script.chunks ?? []).map((c) => c.atMs));
      if (!stream) {
        at(end, () => {
          const content = (script.chunks ?? []).map((c) => c.content).join("");
          const u = script.usage;
          res.end(
            JSON.stringify(
              script.body ?? {
                choices: [{ index: 0, message: { role: "assistant", content }, text: content, finish_reason: "length" }],
                ...(u ? { usage: { prompt_tokens: u.prompt_tokens, completion_tokens: u.completion_tokens, total_tokens: u.prompt_tokens + u.completion_tokens, prompt_tokens_details: { cached_tokens: u.cached_tokens ?? 0 } } } : {}),
              },
            ),
          );
        });
        return;
      }
      for (const c of script.chunks ?? []) {
        at(c.atMs, () => {
          seen.writes.push(performance.now());
          res.write(`data: ${JSON.stringify({ object: "chat.completion.chunk", choices: [{ index: 0, delta: { content: c.content }, text: c.content, finish_reason: null }] })}\n\n`);
        });
      }
      at(end, () => {
        if (script.truncate) {
          res.destroy();
          return;
        }
        const u = script.usage;
        res.write(`data: ${JSON.stringify({ choices: [{ index: 0, delta: {}, finish_reason: "length" }] })}\n\n`);
        if (u) res.write(`data: ${JSON.stringify({ choices: [], usage: { prompt_tokens: u.prompt_tokens, completion_tokens: u.completion_tokens, total_tokens: u.prompt_tokens + u.completion_tokens, prompt_tokens_details: { cached_tokens: u.cached_tokens ?? 0 } } })}\n\n`);
        res.end("data: [DONE]\n\n");
      });
    });
  }
}

/** Evenly spaced chunks: the first at `firstMs`, then every `gapMs`. */
export function evenChunks(n: number, firstMs: number, gapMs: number): Array<{ atMs: number; content: string }> {
  return Array.from({ length: n }, (_, i) => ({ atMs: firstMs + i * gapMs, content: ` tok${i}` }));
}
