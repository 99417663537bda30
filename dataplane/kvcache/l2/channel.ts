/**
 * One pipelined connection from an L2 client to a cache server: any number of requests in
 * flight, each with its own request id and timer; replies are matched by id, in whatever order
 * they come. The connection is opened on first use and again after it closes.
 *
 * A request settles exactly once, as a reply, a timeout, an error (connection failed or closed)
 * or an abort. A reply that arrives after its request settled is read (to keep the stream framed)
 * and dropped.
 */
import type { Endpoint, Transport, TransportConnection } from "../transport/transport";
import { encodeFrame, type Frame, FrameReader, type FrameSpec, type FramingError, Flag, type ProtocolLimits } from "./protocol";

export type Outcome = { kind: "reply"; frame: Frame } | { kind: "timeout" } | { kind: "error"; error: Error } | { kind: "aborted" };

interface Pending {
  resolve: (o: Outcome) => void;
  timer: NodeJS.Timeout;
  bytes: number;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

export interface ChannelOptions {
  transport: Transport;
  endpoint: Endpoint;
  limits: ProtocolLimits;
  connectTimeoutMs: number;
  /** Payload allocator (a BufferPool's acquire); default: fresh memory. */
  allocate?: (length: number) => Buffer;
}

export class Channel {
  private conn: TransportConnection | undefined;
  private connecting: Promise<TransportConnection> | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;
  /** Bytes expected to move for the requests in flight (lane choice). */
  outstandingBytes = 0;
  /** Replies that came after their request had settled, or for no request. */
  lateReplies = 0;

  constructor(private readonly opts: ChannelOptions) {}

  get inFlight(): number {
    return this.pending.size;
  }

  /**
   * Sends `spec` (its requestId is assigned here) and settles with the reply, or after
   * `timeoutMs` (connecting included), or on connection failure, or on abort.
   */
  request(spec: Omit<FrameSpec, "requestId">, timeoutMs: number, expectBytes: number, signal?: AbortSignal): Promise<Outcome> {
    if (signal?.aborted) return Promise.resolve({ kind: "aborted" });
    if (this.closed) return Promise.resolve({ kind: "error", error: new Error("channel closed") });
    return new Promise<Outcome>((resolve) => {
      const id = this.allocateId();
      const bytes = expectBytes + (spec.body?.byteLength ?? 0);
      const p: Pending = {
        resolve,
        bytes,
        signal,
        onAbort: undefined,
        timer: setTimeout(() => this.settle(id, { kind: "timeout" }), timeoutMs),
      };
      this.pending.set(id, p);
      this.outstandingBytes += bytes;
      if (signal) {
        p.onAbort = () => this.settle(id, { kind: "aborted" });
        signal.addEventListener("abort", p.onAbort, { once: true });
      }
      const send = (conn: TransportConnection) => {
        if (this.pending.has(id)) conn.send(encodeFrame({ ...spec, requestId: id }));
      };
      const conn = this.conn;
      if (conn !== undefined && !conn.isClosed) send(conn);
      else
        this.connect().then(send, (error: Error) => {
          this.settle(id, { kind: "error", error });
        });
    });
  }

  /** Settles every request in flight as failed and closes the connection; the channel stays usable. */
  reset(error: Error): void {
    const conn = this.conn;
    this.conn = undefined;
    conn?.destroy(error);
    this.failAll(error);
  }

  /** Closes for good. */
  close(): void {
    this.closed = true;
    this.reset(new Error("channel closed"));
  }

  private allocateId(): number {
    for (;;) {
      const id = this.nextId;
      this.nextId = this.nextId === 0xffffffff ? 1 : this.nextId + 1;
      if (!this.pending.has(id)) return id;
    }
  }

  private settle(id: number, outcome: Outcome): void {
    const p = this.pending.get(id);
    if (p === undefined) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    this.outstandingBytes -= p.bytes;
    if (p.onAbort) p.signal?.removeEventListener("abort", p.onAbort);
    p.resolve(outcome);
  }

  private failAll(error: Error): void {
    for (const id of [...this.pending.keys()]) this.settle(id, { kind: "error", error });
  }

  private connect(): Promise<TransportConnection> {
    if (this.connecting) return this.connecting;
    const attempt = this.opts.transport
      .connect(
        this.opts.endpoint,
        (conn) =>
          new FrameReader(
            this.opts.limits,
            {
              onFrame: (frame) => this.onFrame(frame),
              onFramingError: (err) => this.onFramingError(conn, err),
            },
            { allocate: this.opts.allocate },
          ),
        { timeoutMs: this.opts.connectTimeoutMs },
      )
      .then((conn) => {
        if (this.closed) {
          conn.destroy();
          throw new Error("channel closed");
        }
        this.conn = conn;
        void conn.closed.then((err) => {
          if (this.conn === conn) {
            this.conn = undefined;
            this.failAll(err ?? new Error(`connection to ${conn.peer} closed`));
          }
        });
        return conn;
      })
      .finally(() => {
        this.connecting = undefined;
      });
    this.connecting = attempt;
    return attempt;
  }

  private onFrame(frame: Frame): void {
    const h = frame.header;
    if ((h.flags & Flag.REPLY) === 0) {
      // A server never sends requests: the stream is not what we think it is.
      this.reset(new Error("protocol error: request frame from server"));
      return;
    }
    if (!this.pending.has(h.requestId)) {
      this.lateReplies++;
      return;
    }
    this.settle(h.requestId, { kind: "reply", frame });
  }

  private onFramingError(conn: TransportConnection, err: FramingError): void {
    if (this.conn === conn) this.reset(new Error(`protocol error from server: ${err.message}`));
    else conn.destroy();
  }
}
