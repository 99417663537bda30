/** Shared pieces of the KV-tier tests with real llama.cpp engines: requests, timing, a fake edge. */
import { randomUUID } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { EngineAdapter, EngineRequest } from "../../../dataplane/engines/engine";
import type { Logger } from "../../../dataplane/lib/log";
import type { Heartbeat, HeartbeatReply } from "../../../protocol/heartbeat";
import { validateGenerationRequest } from "../../../protocol/openai-request";

export const silent: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => silent };

/** Logs warnings and errors into an array (to assert on them). */
export function recordingLogger(): Logger & { lines: { level: string; event: string; fields?: Record<string, unknown> }[] } {
  const lines: { level: string; event: string; fields?: Record<string, unknown> }[] = [];
  const make = (): Logger => ({
    debug() {},
    info() {},
    warn: (event, fields) => lines.push({ level: "warn", event, fields }),
    error: (event, fields) => lines.push({ level: "error", event, fields }),
    child: () => make(),
  });
  return Object.assign(make(), { lines });
}

/** Where the tests' generated model lives (shared with test/dataplane/llamacpp: generated once). */
export const MODEL_DIR = join(tmpdir(), "switchyard-test-models");

/** Deterministic ASCII text of exactly `n` characters (= n tokens for the generated model). */
export function text(n: number, salt: string): string {
  const base = `${salt} The quick brown fox jumps over the lazy dog; 0123456789. `;
  return base.repeat(Math.ceil(n / base.length) + 1).slice(0, n);
}

export interface Completion {
  text: string;
  cachedTokens: number;
  promptTokens: number;
  /** From handle() to the first byte of the body. */
  ttftMs: number;
  status: number;
}

/** A greedy streaming completion through the engine, as the agent would run it. */
export async function complete(engine: EngineAdapter, model: string, prompt: string, opts: { namespace?: string; maxTokens?: number } = {}): Promise<Completion> {
  const body = { model, prompt, max_tokens: opts.maxTokens ?? 8, temperature: 0, stream: true, stream_options: { include_usage: true }, ignore_eos: true };
  const req: EngineRequest = {
    requestId: randomUUID(),
    endpoint: "completions",
    body: validateGenerationRequest("completions", body),
    rawBody: new TextEncoder().encode(JSON.stringify(body)),
    ...(opts.namespace !== undefined ? { cacheNamespace: opts.namespace } : {}),
    signal: new AbortController().signal,
  };
  const t0 = performance.now();
  const res = await engine.handle(req);
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  let raw = "";
  let ttftMs = -1;
  const dec = new TextDecoder();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (ttftMs < 0) ttftMs = performance.now() - t0;
    raw += dec.decode(value, { stream: true });
  }
  let out = "";
  let usage: { prompt_tokens: number; prompt_tokens_details?: { cached_tokens: number } } | undefined;
  for (const frame of raw.split("\n\n")) {
    const payload = frame.replace(/^data: /, "");
    if (!payload || payload === "[DONE]") continue;
    const ev = JSON.parse(payload) as { choices: { text?: string }[]; usage?: typeof usage; error?: { message: string } };
    if (ev.error) throw new Error(`engine error: ${ev.error.message}`);
    for (const c of ev.choices) out += c.text ?? "";
    if (ev.usage) usage = ev.usage;
  }
  return { text: out, cachedTokens: usage?.prompt_tokens_details?.cached_tokens ?? 0, promptTokens: usage?.prompt_tokens ?? 0, ttftMs, status: res.status };
}

/** A stand-in for the edge's heartbeat route: records beats, answers with `reply()`. */
export async function fakeEdge(reply: () => Partial<HeartbeatReply> = () => ({})): Promise<{ url: string; beats: Heartbeat[]; close(): Promise<void> }> {
  const beats: Heartbeat[] = [];
  const server: Server = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString("utf8")));
    req.on("end", () => {
      try {
        beats.push(JSON.parse(body) as Heartbeat);
      } catch {
        // not a beat
      }
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ ok: true, accepted: [], ignored: [], draining: false, intervalMs: 200, ...reply() }));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    beats,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

export async function waitFor(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export const SECRET = "sy_ns_1_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
