/**
 * A minimal pipelined RESP2 client (SET / GET / PING / FLUSHALL) for the L2 benchmark's redis
 * baseline. It rides on the same TcpTransport as the L2 client, so both read values straight into
 * preallocated buffers and write values with gathered writes: the comparison measures the servers
 * and protocols, not two different socket paths.
 */
import type { BufferPool } from "../../../dataplane/kvcache/l2/buffer-pool";
import { TcpTransport } from "../../../dataplane/kvcache/transport/tcp";
import type { ByteSink, Endpoint, TransportConnection } from "../../../dataplane/kvcache/transport/transport";

export type RespReply = { kind: "simple"; text: string } | { kind: "error"; text: string } | { kind: "int"; value: number } | { kind: "bulk"; value: Buffer } | { kind: "null" };

const CRLF = Buffer.from("\r\n");
const DIRECT_MIN = 64 * 1024;

/** Parses a stream of RESP2 replies (no arrays: the benchmark does not need them). */
class RespReader implements ByteSink {
  private readonly scratch = Buffer.allocUnsafe(64 * 1024);
  private line: number[] = [];
  private bulk: Buffer | undefined;
  private bulkFill = 0;
  /** CRLF bytes still to skip after a bulk value. */
  private trailer = 0;

  constructor(
    private readonly onReply: (r: RespReply) => void,
    private readonly pool?: BufferPool,
  ) {}

  receiveBuffer(): Uint8Array {
    const b = this.bulk;
    if (b !== undefined && b.length - this.bulkFill >= DIRECT_MIN) return b.subarray(this.bulkFill);
    return this.scratch;
  }

  received(buffer: Uint8Array, n: number): void {
    const b = this.bulk;
    if (b !== undefined && buffer.buffer === b.buffer && buffer.byteOffset === b.byteOffset + this.bulkFill) {
      this.bulkFill += n;
      if (this.bulkFill === b.length) this.finishBulk();
      return;
    }
    let off = 0;
    while (off < n) {
      if (this.bulk !== undefined) {
        const take = Math.min(this.bulk.length - this.bulkFill, n - off);
        this.bulk.set(buffer.subarray(off, off + take), this.bulkFill);
        this.bulkFill += take;
        off += take;
        if (this.bulkFill === this.bulk.length) this.finishBulk();
      } else if (this.trailer > 0) {
        const take = Math.min(this.trailer, n - off);
        this.trailer -= take;
        off += take;
      } else {
        const c = buffer[off++] as number;
        if (c === 0x0a && this.line[this.line.length - 1] === 0x0d) {
          this.line.pop();
          const text = Buffer.from(this.line).toString("latin1");
          this.line = [];
          this.onLine(text);
        } else this.line.push(c);
      }
    }
  }

  private onLine(text: string): void {
    const type = text[0];
    const rest = text.slice(1);
    if (type === "+") this.onReply({ kind: "simple", text: rest });
    else if (type === "-") this.onReply({ kind: "error", text: rest });
    else if (type === ":") this.onReply({ kind: "int", value: Number(rest) });
    else if (type === "$") {
      const len = Number(rest);
      if (len < 0) this.onReply({ kind: "null" });
      else if (len === 0) {
        this.trailer = 2;
        this.onReply({ kind: "bulk", value: Buffer.alloc(0) });
      } else {
        this.bulk = this.pool ? this.pool.acquire(len) : Buffer.allocUnsafeSlow(len);
        this.bulkFill = 0;
      }
    } else this.onReply({ kind: "error", text: `unsupported reply type '${type}'` });
  }

  private finishBulk(): void {
    const value = this.bulk as Buffer;
    this.bulk = undefined;
    this.trailer = 2;
    this.onReply({ kind: "bulk", value });
  }
}

class RespConnection {
  readonly pending: ((r: RespReply) => void)[] = [];
  outstandingBytes = 0;
  private constructor(readonly conn: TransportConnection) {}

  static async open(transport: TcpTransport, endpoint: Endpoint, pool?: BufferPool): Promise<RespConnection> {
    let self: RespConnection | undefined;
    const conn = await transport.connect(endpoint, () => new RespReader((r) => self?.pending.shift()?.(r), pool), { timeoutMs: 5_000 });
    self = new RespConnection(conn);
    return self;
  }

  command(parts: Uint8Array[], expectBytes: number): Promise<RespReply> {
    this.outstandingBytes += expectBytes;
    return new Promise((resolve) => {
      this.pending.push((r) => {
        this.outstandingBytes -= expectBytes;
        resolve(r);
      });
      this.conn.send(parts);
    });
  }
}

/** `connections` pipelined connections to one redis; each command goes to the least loaded. */
export class RespClient {
  private constructor(private readonly conns: RespConnection[]) {}

  /** With `pool`, bulk replies are read into its buffers (give them back with pool.release). */
  static async connect(endpoint: Endpoint, connections: number, pool?: BufferPool): Promise<RespClient> {
    const transport = new TcpTransport();
    return new RespClient(await Promise.all(Array.from({ length: connections }, () => RespConnection.open(transport, endpoint, pool))));
  }

  set(key: string, value: Uint8Array): Promise<RespReply> {
    const head = Buffer.from(`*3\r\n$3\r\nSET\r\n$${Buffer.byteLength(key)}\r\n${key}\r\n$${value.byteLength}\r\n`, "latin1");
    return this.pick().command([head, value, CRLF], value.byteLength);
  }

  get(key: string, expectBytes: number): Promise<RespReply> {
    return this.pick().command([Buffer.from(`*2\r\n$3\r\nGET\r\n$${Buffer.byteLength(key)}\r\n${key}\r\n`, "latin1")], expectBytes);
  }

  simple(...args: string[]): Promise<RespReply> {
    const head = `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("")}`;
    return this.pick().command([Buffer.from(head, "latin1")], 0);
  }

  close(): void {
    for (const c of this.conns) c.conn.destroy();
  }

  private pick(): RespConnection {
    let best = this.conns[0] as RespConnection;
    for (const c of this.conns) if (c.outstandingBytes < best.outstandingBytes || (c.outstandingBytes === best.outstandingBytes && c.pending.length < best.pending.length)) best = c;
    return best;
  }
}
