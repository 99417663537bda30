/**
 * The slice of ZeroMQ's wire protocol (ZMTP 3.0, NULL security) that KV-event publishing needs:
 * a SUB socket that connects to a PUB endpoint (vLLM's `--kv-events-config` publisher, or the
 * emulator's) and yields multipart messages, and a PUB server that the emulator uses to publish the
 * same way. Written here rather than depending on a native zmq binding: a SUB/PUB pair over TCP is a
 * 64-byte greeting, one READY command each way, and length-prefixed frames (rfc.zeromq.org/spec/23).
 *
 * Subscriptions use the ZMTP 3.0 form (a message whose first byte is 1), which libzmq publishers
 * accept from peers that greet as 3.0.
 */
import { EventEmitter } from "node:events";
import { connect, createServer, type Server, type Socket } from "node:net";

const FLAG_MORE = 0x01;
const FLAG_LONG = 0x02;
const FLAG_COMMAND = 0x04;
/** Largest frame accepted: KV event batches are small; anything bigger is a protocol error. */
const MAX_FRAME_BYTES = 64 * 1024 * 1024;

export function greeting(asServer: boolean): Buffer {
  const g = Buffer.alloc(64);
  g[0] = 0xff;
  g[9] = 0x7f;
  g[10] = 3; // major
  g[11] = 0; // minor: 3.0
  g.write("NULL", 12, "ascii");
  g[32] = asServer ? 1 : 0;
  return g;
}

function frame(body: Buffer, flags: number): Buffer {
  if (body.length > 255) {
    const head = Buffer.alloc(9);
    head[0] = flags | FLAG_LONG;
    head.writeBigUInt64BE(BigInt(body.length), 1);
    return Buffer.concat([head, body]);
  }
  return Buffer.concat([Buffer.from([flags, body.length]), body]);
}

export function readyCommand(socketType: string): Buffer {
  const name = Buffer.from("READY", "ascii");
  const key = Buffer.from("Socket-Type", "ascii");
  const value = Buffer.from(socketType, "ascii");
  const len = Buffer.alloc(4);
  len.writeUInt32BE(value.length);
  return frame(Buffer.concat([Buffer.from([name.length]), name, Buffer.from([key.length]), key, len, value]), FLAG_COMMAND);
}

/** Encodes a multipart message as frames. */
export function messageFrames(parts: readonly Buffer[]): Buffer {
  return Buffer.concat(parts.map((p, i) => frame(p, i < parts.length - 1 ? FLAG_MORE : 0)));
}

/** Incremental ZMTP reader: greeting, then frames, grouped into commands and multipart messages. */
export class ZmtpReader {
  private buf: Buffer = Buffer.alloc(0);
  private greeted = false;
  private parts: Buffer[] = [];

  constructor(
    private readonly onMessage: (parts: Buffer[]) => void,
    private readonly onCommand: (name: string, body: Buffer) => void,
  ) {}

  /** Feeds bytes; throws on a protocol violation (the caller drops the connection). */
  push(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    if (!this.greeted) {
      if (this.buf.length < 64) return;
      if (this.buf[0] !== 0xff || this.buf[9] !== 0x7f) throw new Error("not a ZMTP peer (bad greeting signature)");
      if ((this.buf[10] ?? 0) < 3) throw new Error(`unsupported ZMTP version ${this.buf[10]}`);
      const mechanism = this.buf.subarray(12, 32).toString("ascii").replace(/\0+$/, "");
      if (mechanism !== "NULL") throw new Error(`unsupported ZMTP security mechanism ${mechanism}`);
      this.buf = this.buf.subarray(64);
      this.greeted = true;
    }
    for (;;) {
      if (this.buf.length < 2) return;
      const flags = this.buf[0] as number;
      let size: number;
      let head: number;
      if (flags & FLAG_LONG) {
        if (this.buf.length < 9) return;
        const big = this.buf.readBigUInt64BE(1);
        if (big > BigInt(MAX_FRAME_BYTES)) throw new Error(`ZMTP frame of ${big} bytes is over the limit`);
        size = Number(big);
        head = 9;
      } else {
        size = this.buf[1] as number;
        head = 2;
      }
      if (this.buf.length < head + size) return;
      const body = Buffer.from(this.buf.subarray(head, head + size));
      this.buf = this.buf.subarray(head + size);
      if (flags & FLAG_COMMAND) {
        const nameLen = body[0] ?? 0;
        this.onCommand(body.subarray(1, 1 + nameLen).toString("ascii"), body.subarray(1 + nameLen));
        continue;
      }
      this.parts.push(body);
      if (!(flags & FLAG_MORE)) {
        const msg = this.parts;
        this.parts = [];
        this.onMessage(msg);
      }
    }
  }
}

export interface SubscriberOptions {
  /** `tcp://host:port` */
  endpoint: string;
  /** Topic prefix to subscribe to ("" = everything). */
  topic?: string;
  /** Reconnect backoff bounds (ms). */
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

export function parseTcpEndpoint(endpoint: string): { host: string; port: number } {
  const m = /^tcp:\/\/(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(endpoint);
  if (!m) throw new Error(`'${endpoint}' is not a tcp://host:port endpoint`);
  const host = (m[1] as string).replace(/^\[|\]$/g, "");
  return { host: host === "*" ? "0.0.0.0" : host, port: Number(m[2]) };
}

/**
 * A SUB socket that keeps itself connected: emits `message` (parts: Buffer[]), `connected`,
 * `disconnected` (with the error, if any). Reconnects with exponential backoff until closed.
 */
export class ZmtpSubscriber extends EventEmitter {
  private socket: Socket | undefined;
  private closed = false;
  private backoff: number;
  private timer: NodeJS.Timeout | undefined;
  private readonly target: { host: string; port: number };

  constructor(private readonly opts: SubscriberOptions) {
    super();
    this.target = parseTcpEndpoint(opts.endpoint);
    this.backoff = opts.minBackoffMs ?? 200;
    this.connect();
  }

  private connect(): void {
    if (this.closed) return;
    const socket = connect(this.target);
    this.socket = socket;
    socket.setNoDelay(true);
    const reader = new ZmtpReader(
      (parts) => this.emit("message", parts),
      (name) => {
        if (name === "READY") {
          this.backoff = this.opts.minBackoffMs ?? 200;
          socket.write(messageFrames([Buffer.concat([Buffer.from([1]), Buffer.from(this.opts.topic ?? "", "utf8")])]));
          this.emit("connected");
        } else if (name === "ERROR") socket.destroy(new Error("publisher refused the connection"));
      },
    );
    socket.on("connect", () => {
      socket.write(greeting(false));
      socket.write(readyCommand("SUB"));
    });
    socket.on("data", (chunk) => {
      try {
        reader.push(chunk);
      } catch (err) {
        socket.destroy(err as Error);
      }
    });
    socket.on("error", () => {});
    socket.on("close", (hadError) => {
      this.emit("disconnected", hadError);
      if (this.closed) return;
      this.timer = setTimeout(() => this.connect(), this.backoff);
      this.timer.unref();
      this.backoff = Math.min(this.backoff * 2, this.opts.maxBackoffMs ?? 5_000);
    });
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.socket?.destroy();
  }
}

/** A PUB server: subscribers connect to it; `publish` sends to those whose subscription matches. */
export class ZmtpPublisher {
  private readonly server: Server;
  private readonly peers = new Map<Socket, { subscriptions: Buffer[]; ready: boolean }>();

  private constructor(server: Server) {
    this.server = server;
  }

  static async listen(host: string, port: number): Promise<ZmtpPublisher> {
    const server = createServer();
    const pub = new ZmtpPublisher(server);
    server.on("connection", (s) => pub.accept(s));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => resolve());
    });
    return pub;
  }

  get port(): number {
    return (this.server.address() as { port: number }).port;
  }

  get subscribers(): number {
    let n = 0;
    for (const p of this.peers.values()) if (p.ready && p.subscriptions.length > 0) n++;
    return n;
  }

  private accept(socket: Socket): void {
    socket.setNoDelay(true);
    const state = { subscriptions: [] as Buffer[], ready: false };
    this.peers.set(socket, state);
    socket.write(greeting(true));
    socket.write(readyCommand("PUB"));
    const reader = new ZmtpReader(
      (parts) => {
        const first = parts[0];
        if (!first || first.length === 0) return;
        const topic = Buffer.from(first.subarray(1));
        if (first[0] === 1) state.subscriptions.push(topic);
        else if (first[0] === 0) state.subscriptions = state.subscriptions.filter((t) => !t.equals(topic));
      },
      (name, body) => {
        if (name === "READY") state.ready = true;
        // ZMTP 3.1 peers subscribe with a command instead.
        else if (name === "SUBSCRIBE") state.subscriptions.push(Buffer.from(body));
        else if (name === "CANCEL") state.subscriptions = state.subscriptions.filter((t) => !t.equals(body));
      },
    );
    socket.on("data", (chunk) => {
      try {
        reader.push(chunk);
      } catch {
        socket.destroy();
      }
    });
    socket.on("error", () => {});
    socket.on("close", () => this.peers.delete(socket));
  }

  /** Sends a multipart message to every subscriber whose topic prefix matches the first part. */
  publish(parts: readonly Buffer[]): void {
    const topic = parts[0] ?? Buffer.alloc(0);
    let encoded: Buffer | undefined;
    for (const [socket, p] of this.peers) {
      if (!p.ready || !p.subscriptions.some((s) => topic.subarray(0, s.length).equals(s))) continue;
      encoded ??= messageFrames(parts);
      socket.write(encoded);
    }
  }

  async close(): Promise<void> {
    for (const s of this.peers.keys()) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
