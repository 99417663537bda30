/**
 * The TCP transport (node:net): TCP_NODELAY (a request's header must not wait for Nagle), TCP
 * keep-alive (a dead peer behind a silent network is noticed), gathered writes through
 * `socket.cork()` + one `write` per part + `uncork()` (Node turns the corked parts into one
 * writev), and reads straight into the receiver's buffers through the socket `onread` option.
 *
 * `onread` exists for client sockets only. For accepted sockets we hand the accepted handle to a
 * new Socket created with `onread` (the `_handle` hand-over below): measured on loopback it doubles
 * the receive rate of 32 MiB values against 'data' events, which read 64 KiB at a time into fresh
 * buffers that must then be copied. If a future Node lacks `_handle`, the code falls back to
 * 'data' events (and `zeroCopyAccept: false` forces that path).
 */
import net from "node:net";
import type { ByteSink, ConnectOptions, Endpoint, Transport, TransportConnection, TransportListener } from "./transport";
import { formatEndpoint } from "./transport";

export interface TcpTransportOptions {
  /** TCP keep-alive initial delay (default 15 s). */
  keepAliveMs?: number;
  /** Send-queue bytes above which `send` returns false (default 8 MiB). */
  highWaterMarkBytes?: number;
  /** Read accepted connections into receiver buffers (default true; see the file comment). */
  zeroCopyAccept?: boolean;
}

/** Used until a sink exists and whenever a sink is asked for nothing better. */
const PLACEHOLDER_BYTES = 64 * 1024;

class TcpConnection implements TransportConnection {
  readonly peer: string;
  readonly closed: Promise<Error | undefined>;
  sink: ByteSink | undefined;
  private error: Error | undefined;
  private closedFlag = false;
  private resolveClosed!: (err: Error | undefined) => void;

  constructor(
    readonly socket: net.Socket,
    peer: string,
    private readonly highWaterMark: number,
  ) {
    this.peer = peer;
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    socket.on("error", (err) => {
      this.error ??= err;
    });
    socket.on("close", () => {
      this.closedFlag = true;
      this.resolveClosed(this.error);
    });
  }

  get isClosed(): boolean {
    return this.closedFlag || this.socket.destroyed;
  }

  get pendingSendBytes(): number {
    return this.socket.writableLength;
  }

  send(parts: readonly Uint8Array[], onWritten?: (err?: Error) => void): boolean {
    const s = this.socket;
    if (s.destroyed || !s.writable) {
      if (onWritten) queueMicrotask(() => onWritten(this.error ?? new Error("connection closed")));
      return false;
    }
    const last = parts.length - 1;
    if (last === 0) {
      s.write(parts[0] as Uint8Array, onWritten ? (err) => onWritten(err ?? undefined) : undefined);
    } else {
      s.cork();
      for (let i = 0; i <= last; i++) {
        s.write(parts[i] as Uint8Array, i === last && onWritten ? (err) => onWritten(err ?? undefined) : undefined);
      }
      s.uncork();
    }
    return s.writableLength <= this.highWaterMark;
  }

  whenWritable(): Promise<void> {
    const s = this.socket;
    if (this.isClosed || s.writableLength === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        s.off("drain", done);
        s.off("close", done);
        resolve();
      };
      s.on("drain", done);
      s.on("close", done);
    });
  }

  pauseReceive(): void {
    this.socket.pause();
  }

  resumeReceive(): void {
    this.socket.resume();
  }

  end(): void {
    if (!this.socket.destroyed) this.socket.end();
  }

  destroy(err?: Error): void {
    if (err) this.error ??= err;
    this.socket.destroy();
  }
}

function configure(socket: net.Socket, keepAliveMs: number): void {
  socket.setNoDelay(true);
  socket.setKeepAlive(true, keepAliveMs);
}

/** The `onread` option that routes reads into the connection's sink. */
function onreadFor(holder: { conn?: TcpConnection }): net.OnReadOpts {
  const placeholder = Buffer.allocUnsafe(PLACEHOLDER_BYTES);
  return {
    buffer: () => holder.conn?.sink?.receiveBuffer() ?? placeholder,
    callback: (n: number, buf: Uint8Array) => {
      const sink = holder.conn?.sink;
      if (sink) sink.received(buf, n);
      return true;
    },
  };
}

export class TcpTransport implements Transport {
  readonly kind = "tcp";
  private readonly keepAliveMs: number;
  private readonly highWaterMark: number;
  private readonly zeroCopyAccept: boolean;

  constructor(opts: TcpTransportOptions = {}) {
    this.keepAliveMs = opts.keepAliveMs ?? 15_000;
    this.highWaterMark = opts.highWaterMarkBytes ?? 8 * 1024 * 1024;
    this.zeroCopyAccept = opts.zeroCopyAccept ?? true;
  }

  connect(endpoint: Endpoint, makeSink: (conn: TransportConnection) => ByteSink, opts: ConnectOptions): Promise<TransportConnection> {
    return new Promise((resolve, reject) => {
      const holder: { conn?: TcpConnection } = {};
      const socket = net.connect({ host: endpoint.host, port: endpoint.port, onread: onreadFor(holder) });
      const conn = new TcpConnection(socket, formatEndpoint(endpoint), this.highWaterMark);
      holder.conn = conn;
      conn.sink = makeSink(conn);
      const timer = setTimeout(() => {
        cleanup();
        socket.destroy();
        reject(new Error(`connect to ${conn.peer} timed out after ${opts.timeoutMs} ms`));
      }, opts.timeoutMs);
      const onError = (err: Error) => {
        cleanup();
        socket.destroy();
        reject(err);
      };
      const onConnect = () => {
        cleanup();
        configure(socket, this.keepAliveMs);
        resolve(conn);
      };
      const cleanup = () => {
        clearTimeout(timer);
        socket.off("error", onError);
        socket.off("connect", onConnect);
      };
      socket.once("error", onError);
      socket.once("connect", onConnect);
    });
  }

  listen(endpoint: Endpoint, onConnection: (conn: TransportConnection) => ByteSink): Promise<TransportListener> {
    const zeroCopy = this.zeroCopyAccept;
    const server = net.createServer({ pauseOnConnect: zeroCopy, noDelay: true }, (accepted) => {
      const peer = `${accepted.remoteAddress ?? "?"}:${accepted.remotePort ?? 0}`;
      const handle = zeroCopy ? (accepted as unknown as { _handle?: unknown })._handle : undefined;
      if (handle && typeof handle === "object") {
        // Hand the accepted handle to a socket that reads into our buffers. The accepted Socket
        // object is dropped without being destroyed (destroying it would close the handle).
        const holder: { conn?: TcpConnection } = {};
        const options = { handle, readable: true, writable: true, onread: onreadFor(holder) };
        const socket = new net.Socket(options as unknown as net.SocketConstructorOpts);
        configure(socket, this.keepAliveMs);
        const conn = new TcpConnection(socket, peer, this.highWaterMark);
        holder.conn = conn;
        conn.sink = onConnection(conn);
        socket.resume();
        return;
      }
      configure(accepted, this.keepAliveMs);
      const conn = new TcpConnection(accepted, peer, this.highWaterMark);
      conn.sink = onConnection(conn);
      accepted.on("data", (chunk: Buffer) => conn.sink?.received(chunk, chunk.length));
      if (zeroCopy) accepted.resume();
    });
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(endpoint.port, endpoint.host, () => {
        server.off("error", reject);
        const addr = server.address() as net.AddressInfo;
        resolve({
          endpoint: { host: endpoint.host, port: addr.port },
          // Open connections are closed by their owner; with the hand-over the server's own count
          // never drops, so we do not wait for the 'close' callback.
          close: () =>
            new Promise<void>((res) => {
              server.close();
              res();
            }),
        });
      });
    });
  }
}
