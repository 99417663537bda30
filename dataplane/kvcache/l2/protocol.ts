/**
 * The L2 wire protocol between node agents (L2Client) and cache servers (CacheServer), described
 * in docs/kv-cache.md ("L2 wire protocol"). Binary, little-endian, one 32-byte header per frame:
 *
 *   offset size field
 *   0      4    magic          0x564B5953, the bytes "SYKV"
 *   4      1    version        2 (the version names the checksum algorithm: 1 was CRC-32 of the body)
 *   5      1    op             PING 1, PUT 2, GET 3, PREFIX 4, DELETE 5, STATS 6, SHARDS 7
 *   6      1    status         0 in requests; a Status in replies
 *   7      1    flags          bit 0 REPLY, bit 1 EXISTED (PUT reply: the key was already stored)
 *   8      4    requestId      chosen by the client, echoed by the reply: replies may come in any order
 *   12     4    keyCount       number of 32-byte keys right after the header
 *   16     4    payloadLength  bytes after the header: keyCount × 32 + body length
 *   20     4    reserved       0
 *   24     8    checksum       XXH64 (seed 0) of the whole payload (key, then value) in PUT requests
 *                              and GET hits; else 0
 *
 * followed by `keyCount` raw 32-byte keys (a KvKey's 64 hex characters, decoded), then the body.
 * The checksum covers the key as well as the value, so a value stored or served under the wrong
 * key fails verification like a damaged one.
 *
 * Framing errors (bad magic, unknown version, more keys or bytes than the limits, keys longer than
 * the payload) cannot be skipped safely: the receiver reports them to its handler, which replies
 * BAD_FRAME / UNSUPPORTED_VERSION when it can and closes the connection. The version is checked as
 * soon as its byte arrives, so a peer speaking another version (whose header may be shorter) gets
 * its answer instead of a stall. Everything else (unknown
 * op, wrong key count for the op, bad checksum, oversized value) is a per-request error reply on a
 * connection that stays usable. A frame never makes the receiver allocate more than the limits allow.
 */
import { Xxh64, xxh64 } from "@node-rs/xxhash";
import type { KvKey } from "../tier";
import type { ByteSink } from "../transport/transport";

export const MAGIC = 0x564b5953;
export const PROTOCOL_VERSION = 2;
export const HEADER_BYTES = 32;
export const KEY_BYTES = 32;

export const Op = {
  PING: 1,
  PUT: 2,
  GET: 3,
  PREFIX: 4,
  DELETE: 5,
  STATS: 6,
  /** Which ports the server's shards listen on (docs/kv-cache.md "Shards"). */
  SHARDS: 7,
} as const;
export type OpCode = (typeof Op)[keyof typeof Op];
export const OP_NAMES: Readonly<Record<number, string>> = { 1: "ping", 2: "put", 3: "get", 4: "prefix", 5: "delete", 6: "stats", 7: "shards" };

export const Status = {
  OK: 0,
  NOT_FOUND: 1,
  /** Well-framed but wrong for its op (key count, body length, unknown op). */
  BAD_REQUEST: 2,
  /** The value exceeds the server's maxValueBytes. */
  TOO_LARGE: 3,
  /** The PUT body does not match its checksum: nothing was stored. */
  BAD_CHECKSUM: 4,
  /** The value is larger than the server's whole capacity, or nothing could be evicted. */
  NO_SPACE: 5,
  /** Unreadable framing (bad magic, lengths beyond the limits): the connection is closed after this. */
  BAD_FRAME: 6,
  UNSUPPORTED_VERSION: 7,
  SHUTTING_DOWN: 8,
  INTERNAL: 9,
  /** The key belongs to another shard of this server: the client's shard map is stale. */
  WRONG_SHARD: 10,
} as const;
export type StatusCode = (typeof Status)[keyof typeof Status];
export const STATUS_NAMES: Readonly<Record<number, string>> = {
  0: "ok",
  1: "not_found",
  2: "bad_request",
  3: "too_large",
  4: "bad_checksum",
  5: "no_space",
  6: "bad_frame",
  7: "unsupported_version",
  8: "shutting_down",
  9: "internal",
  10: "wrong_shard",
};

export const Flag = {
  REPLY: 0x01,
  EXISTED: 0x02,
} as const;

export interface FrameHeader {
  version: number;
  op: number;
  status: number;
  flags: number;
  requestId: number;
  keyCount: number;
  payloadLength: number;
  /** XXH64 of the payload (unsigned 64-bit). */
  checksum: bigint;
}

export interface ProtocolLimits {
  /** Keys in one frame (a PREFIX probe). */
  maxKeys: number;
  /** Bytes of one value. */
  maxValueBytes: number;
}

/**
 * 4096 keys = a 1M-token prompt in 256-token chunks; 128 MiB holds a 256-token chunk of a 70B
 * model (80 MiB, reference/kvcache.md §7).
 */
export const DEFAULT_LIMITS: Readonly<ProtocolLimits> = { maxKeys: 4096, maxValueBytes: 128 * 1024 * 1024 };
/** Ceilings no configuration may exceed. */
export const HARD_LIMITS: Readonly<ProtocolLimits> = { maxKeys: 65_536, maxValueBytes: 1024 * 1024 * 1024 };
/** Largest body of a non-value reply (STATS JSON). */
export const MAX_CONTROL_BODY_BYTES = 64 * 1024;

/** The most bytes a frame may carry after its header under `limits`. */
export function maxPayloadBytes(limits: ProtocolLimits): number {
  return Math.max(KEY_BYTES + limits.maxValueBytes, limits.maxKeys * KEY_BYTES, KEY_BYTES + MAX_CONTROL_BODY_BYTES);
}

/**
 * XXH64 (seed 0) of `parts` as if concatenated: a PUT's or GET hit's payload is `checksum(key, value)`.
 * @node-rs/xxhash hashes at memory speed (14 GB/s on the 2-core dev box, where node:zlib's crc32,
 * protocol v1's checksum, ran at 2–3.6 GB/s: bench/results/kv-l2/results.md).
 */
export function checksum(...parts: Uint8Array[]): bigint {
  if (parts.length === 1) return xxh64(parts[0] as Uint8Array, 0n);
  const h = new Xxh64(0n);
  for (const p of parts) h.update(p);
  return h.digest();
}

const CHECKSUM_SLICE = 8 * 1024 * 1024;

/**
 * checksum(key, value) in 8 MiB slices with the event loop turning in between (≈ 0.6 ms each), so
 * the sockets of requests already in flight are not stalled by hashing a 128 MiB value at once.
 */
export async function checksumAsync(key: Uint8Array, value: Uint8Array): Promise<bigint> {
  if (value.byteLength <= CHECKSUM_SLICE) return checksum(key, value);
  const h = new Xxh64(0n);
  h.update(key);
  for (let off = 0; off < value.byteLength; off += CHECKSUM_SLICE) {
    if (off > 0) await new Promise<void>((resolve) => setImmediate(resolve));
    h.update(value.subarray(off, Math.min(off + CHECKSUM_SLICE, value.byteLength)));
  }
  return h.digest();
}

const KEY_RE = /^[0-9a-f]{64}$/;

export function isKvKey(key: unknown): key is KvKey {
  return typeof key === "string" && KEY_RE.test(key);
}

/** The 32 raw bytes of a key. Throws TypeError on anything but 64 lowercase hex characters. */
export function keyToBytes(key: KvKey): Buffer {
  if (!isKvKey(key)) throw new TypeError(`not a KV key (64 lowercase hex characters): ${JSON.stringify(String(key).slice(0, 80))}`);
  return Buffer.from(key, "hex");
}

export function keyFromBytes(bytes: Uint8Array, offset = 0): KvKey {
  return Buffer.from(bytes.buffer, bytes.byteOffset + offset, KEY_BYTES).toString("hex");
}

export function writeHeader(buf: Buffer, h: FrameHeader, offset = 0): void {
  buf.writeUInt32LE(MAGIC, offset);
  buf[offset + 4] = h.version;
  buf[offset + 5] = h.op;
  buf[offset + 6] = h.status;
  buf[offset + 7] = h.flags;
  buf.writeUInt32LE(h.requestId >>> 0, offset + 8);
  buf.writeUInt32LE(h.keyCount >>> 0, offset + 12);
  buf.writeUInt32LE(h.payloadLength >>> 0, offset + 16);
  buf.writeUInt32LE(0, offset + 20);
  buf.writeBigUInt64LE(BigInt.asUintN(64, h.checksum), offset + 24);
}

/** Reads a header without validating it (see checkHeader); `magic` is returned for the check. */
export function readHeader(buf: Uint8Array, offset = 0): FrameHeader & { magic: number } {
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  return {
    magic: b.readUInt32LE(offset),
    version: b[offset + 4] as number,
    op: b[offset + 5] as number,
    status: b[offset + 6] as number,
    flags: b[offset + 7] as number,
    requestId: b.readUInt32LE(offset + 8),
    keyCount: b.readUInt32LE(offset + 12),
    payloadLength: b.readUInt32LE(offset + 16),
    checksum: b.readBigUInt64LE(offset + 24),
  };
}

export type FramingErrorCode = "bad-magic" | "bad-version" | "too-many-keys" | "too-large" | "bad-lengths";

/** A frame whose framing cannot be trusted: the connection must be closed after it. */
export class FramingError extends Error {
  constructor(
    readonly code: FramingErrorCode,
    message: string,
    /** The header as read, when the magic was right (its requestId can be echoed). */
    readonly header?: FrameHeader,
  ) {
    super(message);
    this.name = "FramingError";
  }

  /** The status to reply with before closing. */
  get status(): StatusCode {
    return this.code === "bad-version" ? Status.UNSUPPORTED_VERSION : Status.BAD_FRAME;
  }
}

function versionError(version: number, header?: FrameHeader): FramingError {
  return new FramingError(
    "bad-version",
    `unsupported L2 protocol version ${version}: this side speaks version ${PROTOCOL_VERSION} (v1: CRC-32 of the value; v2: XXH64 of key and value); run the same switchyard release on agents and cache servers`,
    header,
  );
}

/** The framing checks (fatal ones); per-op checks are the handler's. */
export function checkHeader(h: FrameHeader & { magic: number }, limits: ProtocolLimits): FramingError | undefined {
  if (h.magic !== MAGIC) return new FramingError("bad-magic", `bad magic 0x${h.magic.toString(16)}`);
  if (h.version !== PROTOCOL_VERSION) return versionError(h.version, h);
  if (h.keyCount > limits.maxKeys) return new FramingError("too-many-keys", `${h.keyCount} keys > limit ${limits.maxKeys}`, h);
  const max = maxPayloadBytes(limits);
  if (h.payloadLength > max) return new FramingError("too-large", `payload ${h.payloadLength} bytes > limit ${max}`, h);
  if (h.keyCount * KEY_BYTES > h.payloadLength) return new FramingError("bad-lengths", `${h.keyCount} keys do not fit in ${h.payloadLength} payload bytes`, h);
  return undefined;
}

export interface FrameSpec {
  op: number;
  requestId: number;
  status?: number;
  flags?: number;
  /** Keys, each exactly 32 bytes. */
  keys?: readonly Uint8Array[];
  body?: Uint8Array;
  checksum?: bigint;
}

/**
 * A frame as the parts to hand to `Transport.send`: the header and keys in one small buffer, then
 * the body as given (not copied).
 */
export function encodeFrame(f: FrameSpec): Uint8Array[] {
  const keys = f.keys ?? [];
  const bodyLength = f.body?.byteLength ?? 0;
  const head = Buffer.allocUnsafe(HEADER_BYTES + keys.length * KEY_BYTES);
  writeHeader(head, {
    version: PROTOCOL_VERSION,
    op: f.op,
    status: f.status ?? 0,
    flags: f.flags ?? 0,
    requestId: f.requestId,
    keyCount: keys.length,
    payloadLength: keys.length * KEY_BYTES + bodyLength,
    checksum: f.checksum ?? 0n,
  });
  let o = HEADER_BYTES;
  for (const k of keys) {
    if (k.byteLength !== KEY_BYTES) throw new RangeError(`a key is ${KEY_BYTES} bytes, got ${k.byteLength}`);
    head.set(k, o);
    o += KEY_BYTES;
  }
  return f.body && bodyLength > 0 ? [head, f.body] : [head];
}

/** Concatenates parts (tests and tools; the data path never does this). */
export function concatParts(parts: readonly Uint8Array[]): Buffer {
  return Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p.buffer, p.byteOffset, p.byteLength))));
}

/** A received frame: `payload` is the bytes after the header (keys, then body). */
export interface Frame {
  header: FrameHeader;
  payload: Buffer;
  /**
   * XXH64 of the payload, computed by the reader while the bytes arrived, for frames that carry a
   * checksum (PUT requests, GET hits): compare with header.checksum. 0n for other frames.
   */
  payloadChecksum: bigint;
}

export function frameKey(frame: Frame, i: number): Buffer {
  return frame.payload.subarray(i * KEY_BYTES, (i + 1) * KEY_BYTES);
}

export function frameBody(frame: Frame): Buffer {
  return frame.payload.subarray(frame.header.keyCount * KEY_BYTES);
}

export interface FrameHandler {
  onFrame(frame: Frame): void;
  /** The stream cannot be framed any more; the reader has stopped. */
  onFramingError(err: FramingError): void;
}

/** Below this many missing payload bytes, reads go to the scratch buffer and are copied. */
const DIRECT_READ_MIN = 64 * 1024;
const EMPTY = Buffer.alloc(0);

/** Frames whose header carries the payload's checksum. */
export function carriesChecksum(h: Pick<FrameHeader, "op" | "flags" | "status">): boolean {
  return (h.flags & Flag.REPLY) === 0 ? h.op === Op.PUT : h.op === Op.GET && h.status === Status.OK;
}

export interface FrameReaderOptions {
  /** Bytes of the buffer small reads (headers, small frames) land in (default 64 KiB). */
  scratchBytes?: number;
  /** Allocates a payload buffer of exactly `length` bytes (a BufferPool's acquire); default: fresh memory. */
  allocate?: (length: number) => Buffer;
  /**
   * Compute the checksum of each frame that carries one as it arrives (default true). Off,
   * `payloadChecksum` is always the header's `checksum`: for a receiver that stores values with
   * the sender's checksum and leaves verifying it to whoever reads them back (the cache server,
   * docs/kv-cache.md "Integrity").
   */
  computeChecksums?: boolean;
}

function defaultAllocate(length: number): Buffer {
  return length <= 4096 ? Buffer.allocUnsafe(length) : Buffer.allocUnsafeSlow(length);
}

/**
 * Cuts a byte stream into frames. As a ByteSink it tells the transport to read a large value
 * straight into the payload buffer it allocated from the header's length, so a GET's value is
 * the buffer the kernel wrote, with no copy in between. The payload's XXH64 is computed as the
 * bytes arrive, while the rest is still on the wire, so verifying a 32 MiB value costs almost no
 * latency after its last byte.
 */
export class FrameReader implements ByteSink {
  private readonly scratch: Buffer;
  private readonly head = Buffer.allocUnsafe(HEADER_BYTES);
  private headFill = 0;
  private header: FrameHeader | undefined;
  private payload: Buffer | undefined;
  private payloadFill = 0;
  private hashing = false;
  private readonly hasher = new Xxh64(0n);
  private hashedUpTo = 0;
  private stopped = false;
  private readonly allocate: (length: number) => Buffer;
  private readonly computeChecksums: boolean;
  /** Date.now() of the last byte received (stall detection). */
  lastProgressAt = Date.now();

  constructor(
    private readonly limits: ProtocolLimits,
    private readonly handler: FrameHandler,
    opts: FrameReaderOptions = {},
  ) {
    this.scratch = Buffer.allocUnsafe(opts.scratchBytes ?? 64 * 1024);
    this.allocate = opts.allocate ?? defaultAllocate;
    this.computeChecksums = opts.computeChecksums ?? true;
  }

  /** True between a frame's first byte and its last. */
  get midFrame(): boolean {
    return this.headFill > 0 || this.payload !== undefined;
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** Ignore everything from now on. */
  stop(): void {
    this.stopped = true;
    this.payload = undefined;
    this.header = undefined;
    this.headFill = 0;
  }

  receiveBuffer(): Uint8Array {
    const p = this.payload;
    if (p !== undefined && p.length - this.payloadFill >= DIRECT_READ_MIN) return p.subarray(this.payloadFill);
    return this.scratch;
  }

  received(buffer: Uint8Array, n: number): void {
    if (this.stopped || n <= 0) return;
    this.lastProgressAt = Date.now();
    const p = this.payload;
    if (p !== undefined && buffer.buffer === p.buffer && buffer.byteOffset === p.byteOffset + this.payloadFill) {
      // The transport read straight into the payload.
      this.payloadFill += n;
      this.progress(p);
      return;
    }
    this.consume(buffer, 0, n);
  }

  private consume(src: Uint8Array, start: number, end: number): void {
    let off = start;
    while (off < end && !this.stopped) {
      const p = this.payload;
      if (p === undefined) {
        const take = Math.min(HEADER_BYTES - this.headFill, end - off);
        const before = this.headFill;
        this.head.set(src.subarray(off, off + take), this.headFill);
        this.headFill += take;
        off += take;
        // Magic and version are checked as soon as they arrive: a foreign protocol or another
        // version's (shorter) header gets its answer now, not after waiting for bytes that never come.
        if (before < 4 && this.headFill >= 4 && this.head.readUInt32LE(0) !== MAGIC) {
          this.stop();
          this.handler.onFramingError(new FramingError("bad-magic", `bad magic 0x${this.head.readUInt32LE(0).toString(16)}`));
          return;
        }
        // Every version's header starts with magic, version, op, status, flags and request id.
        if (before < 12 && this.headFill >= 12 && this.head[4] !== PROTOCOL_VERSION) {
          const h = this.head;
          this.stop();
          this.handler.onFramingError(versionError(h[4] as number, { version: h[4] as number, op: h[5] as number, status: h[6] as number, flags: h[7] as number, requestId: h.readUInt32LE(8), keyCount: 0, payloadLength: 0, checksum: 0n }));
          return;
        }
        if (this.headFill < HEADER_BYTES) return;
        const h = readHeader(this.head);
        const err = checkHeader(h, this.limits);
        if (err !== undefined) {
          this.stop();
          this.handler.onFramingError(err);
          return;
        }
        const { magic: _magic, ...header } = h;
        this.header = header;
        this.headFill = 0;
        this.payloadFill = 0;
        this.hashing = this.computeChecksums && carriesChecksum(header);
        if (this.hashing) this.hasher.reset(0n);
        this.hashedUpTo = 0;
        if (header.payloadLength === 0) {
          this.payload = EMPTY;
          this.emit();
          continue;
        }
        this.payload = this.allocate(header.payloadLength);
      } else {
        const take = Math.min(p.length - this.payloadFill, end - off);
        p.set(src.subarray(off, off + take), this.payloadFill);
        this.payloadFill += take;
        off += take;
        this.progress(p);
      }
    }
  }

  /** Hashes the payload bytes that arrived since the last call; emits the frame once complete. */
  private progress(p: Buffer): void {
    if (this.hashing && this.payloadFill > this.hashedUpTo) {
      this.hasher.update(p.subarray(this.hashedUpTo, this.payloadFill));
      this.hashedUpTo = this.payloadFill;
    }
    if (this.payloadFill >= p.length) this.emit();
  }

  private emit(): void {
    const header = this.header as FrameHeader;
    const payload = this.payload as Buffer;
    const payloadChecksum = !this.computeChecksums ? header.checksum : this.hashing ? this.hasher.digest() : 0n;
    this.header = undefined;
    this.payload = undefined;
    this.payloadFill = 0;
    this.handler.onFrame({ header, payload, payloadChecksum });
  }
}

/** The value of a GET reply if the reply is a well-formed hit for `key`; else why not. */
export function verifyGetReply(frame: Frame, key: Uint8Array): { value: Buffer } | { miss: "not-found" | "status" | "corrupt" } {
  const h = frame.header;
  if (h.status === Status.NOT_FOUND) return { miss: "not-found" };
  if (h.status !== Status.OK) return { miss: "status" };
  if (h.op !== Op.GET || h.keyCount !== 1 || frame.payload.length < KEY_BYTES) return { miss: "corrupt" };
  if (!frameKey(frame, 0).equals(key)) return { miss: "corrupt" };
  const value = frameBody(frame);
  if (value.length !== h.payloadLength - KEY_BYTES || frame.payloadChecksum !== h.checksum) return { miss: "corrupt" };
  return { value };
}

/** The count of a PREFIX reply, or undefined when the reply is not a valid answer to `sent` keys. */
export function readPrefixReply(frame: Frame, sent: number): number | undefined {
  const h = frame.header;
  if (h.status !== Status.OK || h.op !== Op.PREFIX || h.keyCount !== 0 || frame.payload.length !== 4) return undefined;
  const count = frame.payload.readUInt32LE(0);
  return count <= sent ? count : undefined;
}

/**
 * Which of a server's `count` shards holds a key: its bytes 8..11 (big-endian) modulo `count`.
 * The ring places keys by their first 6 bytes, so within one server the shards see independent,
 * uniform bits. Client and server must agree on this: it is part of the protocol.
 */
export function shardOf(key: Uint8Array, count: number): number {
  if (count <= 1) return 0;
  const k = key as Buffer;
  return ((((k[8] as number) << 24) | ((k[9] as number) << 16) | ((k[10] as number) << 8) | (k[11] as number)) >>> 0) % count;
}

/** A SHARDS reply: the answering shard's index and every shard's data port, in shard order. */
export interface ShardMap {
  index: number;
  ports: number[];
}

/** SHARDS reply body: u16 count, u16 index of the answering shard, then count × u16 port. */
export function encodeShardMap(m: ShardMap): Buffer {
  const b = Buffer.allocUnsafe(4 + 2 * m.ports.length);
  b.writeUInt16LE(m.ports.length, 0);
  b.writeUInt16LE(m.index, 2);
  m.ports.forEach((p, i) => b.writeUInt16LE(p, 4 + 2 * i));
  return b;
}

/** The shard map of a SHARDS reply, or undefined when the reply is not a valid one. */
export function readShardsReply(frame: Frame): ShardMap | undefined {
  const h = frame.header;
  const p = frame.payload;
  if (h.status !== Status.OK || h.op !== Op.SHARDS || h.keyCount !== 0 || p.length < 4) return undefined;
  const count = p.readUInt16LE(0);
  const index = p.readUInt16LE(2);
  if (count < 1 || count > 64 || index >= count || p.length !== 4 + 2 * count) return undefined;
  const ports = Array.from({ length: count }, (_, i) => p.readUInt16LE(4 + 2 * i));
  return ports.every((port) => port >= 1) ? { index, ports } : undefined;
}
