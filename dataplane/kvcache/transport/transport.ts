/**
 * How L2 frames travel between a node agent and a cache server. The protocol (../l2/protocol.ts)
 * is written against this interface only, so the byte mover can be TCP today (tcp.ts) and RDMA
 * later (rdma.ts, docs/kv-rdma.md) without touching the client or the server.
 *
 * Two rules make the data path copy-free where the platform allows it:
 * - a frame is sent as a list of buffers (header, keys, value) written with one gathered write
 *   (writev), never concatenated: a 32 MiB value leaves the process from the buffer it lives in;
 * - received bytes go where the receiver says (`ByteSink.receiveBuffer`): once a frame header has
 *   announced a value of N bytes the receiver preallocates N bytes and the transport reads straight
 *   into them, so the value handed to the caller is the buffer the kernel filled.
 */

/** Where a server listens or a client connects. */
export interface Endpoint {
  host: string;
  port: number;
}

/** Receives a connection's bytes, in order. One sink per connection; the protocol's FrameReader is one. */
export interface ByteSink {
  /**
   * The buffer the transport should read the next bytes into (from its offset 0). Never empty.
   * A transport that cannot read into caller memory may ignore it and pass its own buffers.
   */
  receiveBuffer(): Uint8Array;
  /**
   * `n` bytes arrived at the start of `buffer`: either the buffer last returned by receiveBuffer()
   * or one of the transport's own. The sink must consume them before returning (the buffer is reused).
   */
  received(buffer: Uint8Array, n: number): void;
}

export interface TransportConnection {
  /** `host:port` of the other side (logs and metrics). */
  readonly peer: string;
  /**
   * Queues one frame, given as its parts in order, for a gathered write. The parts are referenced
   * until written, not copied: the caller must not modify them until `onWritten` runs.
   * Returns false when the connection's send queue is above its high-water mark (the frame is
   * queued anyway): the caller should wait for `whenWritable()` before queueing much more.
   */
  send(parts: readonly Uint8Array[], onWritten?: (err?: Error) => void): boolean;
  /** Bytes queued and not yet handed to the kernel. */
  readonly pendingSendBytes: number;
  /** Resolves once the send queue has drained (immediately when it is empty or the connection is closed). */
  whenWritable(): Promise<void>;
  /** Stops reading (backpressure); received frames already in the sink are unaffected. */
  pauseReceive(): void;
  resumeReceive(): void;
  /** Flushes what is queued, then closes. */
  end(): void;
  /** Closes at once; queued frames are dropped. */
  destroy(err?: Error): void;
  readonly isClosed: boolean;
  /** Resolves when the connection is closed, with the error that closed it, if any. */
  readonly closed: Promise<Error | undefined>;
}

export interface ConnectOptions {
  /** Give up connecting after this long (the returned promise rejects). */
  timeoutMs: number;
}

export interface TransportListener {
  /** The bound address (the port is the real one when 0 was asked for). */
  readonly endpoint: Endpoint;
  /** Stops accepting; open connections are left to their owner. */
  close(): Promise<void>;
}

export interface Transport {
  /** "tcp", "rdma": for logs. */
  readonly kind: string;
  /**
   * Opens a connection. `makeSink` is called once, synchronously, before any byte is received;
   * it receives the connection so the sink's owner can reply on it.
   */
  connect(endpoint: Endpoint, makeSink: (conn: TransportConnection) => ByteSink, opts: ConnectOptions): Promise<TransportConnection>;
  /** Accepts connections; `onConnection` returns the sink for each. */
  listen(endpoint: Endpoint, onConnection: (conn: TransportConnection) => ByteSink): Promise<TransportListener>;
}

/** Parses `host:port` (IPv6 as `[::1]:7400`). Throws RangeError on anything else. */
export function parseEndpoint(address: string): Endpoint {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(address.trim());
  const port = m ? Number(m[3]) : Number.NaN;
  if (!m || !(port >= 1 && port <= 65535)) throw new RangeError(`'${address}' is not host:port (e.g. 10.0.0.7:7400)`);
  return { host: (m[1] ?? m[2]) as string, port };
}

/** The canonical `host:port` form of an endpoint (membership ids on the ring). */
export function formatEndpoint(e: Endpoint): string {
  return e.host.includes(":") ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`;
}
