/** Shared pieces of the L2 / cache-server / ring tests: keys, servers, raw and fake peers. */
import { createHash } from "node:crypto";
import net from "node:net";
import type { Logger } from "../../../dataplane/lib/log";
import { DEFAULT_LIMITS, encodeFrame, encodeShardMap, Flag, type Frame, FrameReader, type FramingError, Op, type ProtocolLimits, Status } from "../../../dataplane/kvcache/l2/protocol";
import { CacheServer, type CacheServerOptions } from "../../../dataplane/kvcache/server/cache-server";

export const quietLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return quietLogger;
  },
};

/** A deterministic KvKey. */
export function key(i: number | string): string {
  return createHash("sha256").update(`k:${i}`).digest("hex");
}

/** `n` deterministic pseudo-random bytes (fast, no crypto). */
export function bytes(n: number, seed = 1): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = seed * 2654435761 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

export function startServer(opts: Partial<CacheServerOptions> = {}): Promise<CacheServer> {
  return CacheServer.start({ port: 0, capacityBytes: 256 * 1024 * 1024, metricsPort: null, logger: quietLogger, ...opts });
}

export function addr(server: CacheServer): string {
  return `127.0.0.1:${server.endpoint.port}`;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A plain socket speaking the protocol by hand: send any bytes, collect the frames that come back. */
export class RawPeer {
  readonly frames: Frame[] = [];
  framingError: FramingError | undefined;
  readonly closed: Promise<void>;
  private waiters: (() => void)[] = [];

  private constructor(readonly socket: net.Socket, limits: ProtocolLimits) {
    const reader = new FrameReader(limits, {
      onFrame: (f) => {
        this.frames.push(f);
        for (const w of this.waiters.splice(0)) w();
      },
      onFramingError: (e) => {
        this.framingError = e;
      },
    });
    socket.on("data", (chunk: Buffer) => reader.received(chunk, chunk.length));
    socket.on("error", () => {});
    this.closed = new Promise((r) =>
      socket.on("close", () => {
        r();
        for (const w of this.waiters.splice(0)) w();
      }),
    );
  }

  static connect(port: number, limits: ProtocolLimits = DEFAULT_LIMITS): Promise<RawPeer> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, "127.0.0.1", () => resolve(new RawPeer(s, limits)));
      s.once("error", reject);
    });
  }

  send(...parts: Uint8Array[]): void {
    for (const p of parts) this.socket.write(p);
  }

  sendFrame(spec: Parameters<typeof encodeFrame>[0]): void {
    this.send(...encodeFrame(spec));
  }

  /** Resolves once `n` frames have arrived (or the socket closed). */
  async waitFrames(n: number, timeoutMs = 5_000): Promise<Frame[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.frames.length < n && !this.socket.destroyed && Date.now() < deadline) {
      await Promise.race([new Promise<void>((r) => this.waiters.push(r)), sleep(50)]);
    }
    return this.frames;
  }

  get isClosed(): boolean {
    return this.socket.destroyed || this.socket.readableEnded;
  }

  close(): void {
    this.socket.destroy();
  }
}

/**
 * A hand-written server for client tests: `onFrame` decides what (if anything) to answer and when.
 * SHARDS (the client's first question) is answered here, as a one-shard server, and not counted.
 */
export class FakeServer {
  readonly sockets = new Set<net.Socket>();
  requests = 0;
  private constructor(readonly server: net.Server) {}

  static async start(onFrame: (frame: Frame, reply: (parts: Uint8Array[]) => void, socket: net.Socket) => void, port = 0): Promise<FakeServer> {
    let fake: FakeServer | undefined;
    const server = net.createServer((socket) => {
      fake?.sockets.add(socket);
      socket.on("close", () => fake?.sockets.delete(socket));
      socket.on("error", () => {});
      const reader = new FrameReader(DEFAULT_LIMITS, {
        onFrame: (f) => {
          if (f.header.op === Op.SHARDS) {
            const port = (server.address() as net.AddressInfo).port;
            for (const p of encodeFrame({ op: Op.SHARDS, requestId: f.header.requestId, status: Status.OK, flags: Flag.REPLY, body: encodeShardMap({ index: 0, ports: [port] }) })) socket.write(p);
            return;
          }
          if (fake) fake.requests++;
          onFrame(f, (parts) => {
            if (!socket.destroyed) for (const p of parts) socket.write(p);
          }, socket);
        },
        onFramingError: () => socket.destroy(),
      });
      socket.on("data", (chunk: Buffer) => reader.received(chunk, chunk.length));
    });
    await new Promise<void>((r) => server.listen(port, "127.0.0.1", r));
    fake = new FakeServer(server);
    return fake;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((r) => this.server.close(() => r()));
  }
}
