/**
 * A vLLM stand-in (the emulator's OpenAI-compatible server) in the test process that faults can be
 * injected into: it can hold requests without answering (an engine still queueing them), crash
 * (the listener and every open connection gone, as when the process exits) and come back on the
 * same port with a fresh engine, as a restarted vLLM would.
 */
import type { AddressInfo } from "node:net";
import { serve, type ServerType } from "@hono/node-server";
import { Hono } from "hono";
import { createSimEngine, type SimEngine } from "../../../dataplane/engines/sim/adapter";
import { createSimApp } from "../../../dataplane/engines/sim/server";
import type { SimEngineConfigInput } from "../../../dataplane/engines/sim/config";

export interface FaultEngine {
  readonly url: string;
  /** Generation requests being held right now (their x-request-id). */
  readonly held: string[];
  /** Holds every generation request from now on until `release()`; they get no byte back meanwhile. */
  hold(): void;
  release(): void;
  /**
   * From now on, streams end cleanly after `events` SSE events: no error, no `[DONE]`, as an engine
   * (or a proxy in front of it) that gives up on a request without saying so. `undefined`: off.
   */
  truncateStreams(events: number | undefined): void;
  /** The engine process dies: the port refuses connections and open requests break. */
  crash(): Promise<void>;
  /** The engine is back on the same port. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

export async function startFaultEngine(config: SimEngineConfigInput): Promise<FaultEngine> {
  const held: string[] = [];
  let holding = false;
  let truncateAfter: number | undefined;
  let waiters: Array<() => void> = [];
  let engine: SimEngine | undefined;
  let server: ServerType | undefined;
  let port = 0;

  const listen = async () => {
    engine = createSimEngine(config);
    await engine.start();
    const app = new Hono();
    app.use("/v1/*", async (c, next) => {
      if (c.req.method === "POST" && holding) {
        const id = c.req.header("x-request-id") ?? "";
        held.push(id);
        const signal = c.req.raw.signal;
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          signal.addEventListener("abort", () => resolve(), { once: true });
        });
        held.splice(held.indexOf(id), 1);
      }
      await next();
      const cut = truncateAfter;
      if (cut !== undefined && c.res.body && c.res.headers.get("content-type")?.startsWith("text/event-stream")) {
        c.res = new Response(truncated(c.res.body, cut), c.res);
      }
    });
    app.route("/", createSimApp(engine));
    server = await new Promise<ServerType>((resolve, reject) => {
      const s = serve({ fetch: app.fetch, hostname: "127.0.0.1", port }, () => resolve(s));
      s.once("error", reject);
    });
    port = (server.address() as AddressInfo).port;
  };

  const stop = async () => {
    const s = server;
    server = undefined;
    await engine?.stop();
    if (s) {
      await new Promise<void>((resolve) => {
        s.close(() => resolve());
        (s as unknown as { closeAllConnections(): void }).closeAllConnections();
      });
    }
  };

  await listen();
  return {
    url: `http://127.0.0.1:${port}`,
    held,
    hold: () => {
      holding = true;
    },
    release: () => {
      holding = false;
      for (const w of waiters) w();
      waiters = [];
    },
    truncateStreams: (events) => {
      truncateAfter = events;
    },
    crash: stop,
    restart: listen,
    close: async () => {
      holding = false;
      for (const w of waiters) w();
      waiters = [];
      await stop();
    },
  };
}

/** The first `events` SSE events of `body`, then a clean end. */
function truncated(body: ReadableStream<Uint8Array>, events: number): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  const encoder = new TextEncoder();
  let buffered = "";
  let sent = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      for (;;) {
        const at = buffered.indexOf("\n\n");
        if (at >= 0) {
          controller.enqueue(encoder.encode(buffered.slice(0, at + 2)));
          buffered = buffered.slice(at + 2);
          if (++sent >= events) {
            controller.close();
            await reader.cancel();
          }
          return;
        }
        const { done, value } = await reader.read();
        if (done) {
          controller.close();
          return;
        }
        buffered += decoder.decode(value, { stream: true });
      }
    },
    cancel: (reason) => reader.cancel(reason),
  });
}
