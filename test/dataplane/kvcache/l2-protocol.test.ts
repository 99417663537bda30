/**
 * The L2 wire protocol without a network: frames round-trip through FrameReader however the byte
 * stream is cut; truncated, lying and random frames give a framing error or nothing, never a crash,
 * a wrong frame or an allocation beyond the limits; GET replies that do not verify are misses.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { BufferPool } from "../../../dataplane/kvcache/l2/buffer-pool";
import {
  carriesChecksum,
  checkHeader,
  checksum,
  checksumAsync,
  concatParts,
  DEFAULT_LIMITS,
  encodeFrame,
  Flag,
  type Frame,
  FrameReader,
  type FramingError,
  HEADER_BYTES,
  isKvKey,
  KEY_BYTES,
  keyFromBytes,
  keyToBytes,
  MAGIC,
  maxPayloadBytes,
  PROTOCOL_VERSION,
  Op,
  type ProtocolLimits,
  readHeader,
  readPrefixReply,
  Status,
  verifyGetReply,
  writeHeader,
} from "../../../dataplane/kvcache/l2/protocol";
import { bytes, key } from "./l2-test-support";

const SMALL: ProtocolLimits = { maxKeys: 64, maxValueBytes: 64 * 1024 };

function collect(limits: ProtocolLimits = SMALL) {
  const frames: Frame[] = [];
  const errors: FramingError[] = [];
  const reader = new FrameReader(limits, { onFrame: (f) => frames.push(f), onFramingError: (e) => errors.push(e) }, { scratchBytes: 256 });
  return { reader, frames, errors };
}

/** Feeds `data` cut at `cuts` (sorted offsets), as a transport with its own buffers would. */
function feed(reader: FrameReader, data: Buffer, cuts: number[] = []): void {
  let prev = 0;
  for (const c of [...cuts.filter((x) => x > 0 && x < data.length).sort((a, b) => a - b), data.length]) {
    if (c > prev) {
      const chunk = Buffer.from(data.subarray(prev, c)); // a fresh buffer, like a 'data' event
      reader.received(chunk, chunk.length);
    }
    prev = c;
  }
}

/** Feeds `data` the way the onread transport does: into whatever receiveBuffer() returns. */
function feedDirect(reader: FrameReader, data: Buffer, maxRead = 1 << 20): number {
  let off = 0;
  let directReads = 0;
  while (off < data.length) {
    const target = reader.receiveBuffer();
    const n = Math.min(target.length, data.length - off, maxRead);
    target.set(data.subarray(off, off + n), 0);
    if (target.length > 256) directReads++;
    reader.received(target, n);
    off += n;
  }
  return directReads;
}

const keyArb = fc.uint8Array({ minLength: KEY_BYTES, maxLength: KEY_BYTES });
const frameArb = fc.record({
  op: fc.constantFrom(Op.PING, Op.PUT, Op.GET, Op.PREFIX, Op.DELETE, Op.STATS, 77),
  requestId: fc.nat({ max: 0xffffffff }),
  status: fc.nat({ max: 9 }),
  flags: fc.nat({ max: 3 }),
  keys: fc.array(keyArb, { maxLength: 6 }),
  body: fc.uint8Array({ maxLength: 3000 }),
});

describe("keys", () => {
  it("converts between 64-hex keys and 32 bytes, rejecting anything else", () => {
    const k = key(1);
    expect(isKvKey(k)).toBe(true);
    const b = keyToBytes(k);
    expect(b.length).toBe(32);
    expect(keyFromBytes(b)).toBe(k);
    for (const bad of ["", k.toUpperCase(), `${k}0`, k.slice(1), `g${k.slice(1)}`, " ".repeat(64)]) {
      expect(() => keyToBytes(bad)).toThrow(TypeError);
    }
  });
});

describe("frames", () => {
  it("lays out the 32-byte version-2 header little-endian with the magic 'SYKV' and the XXH64 of key and value", () => {
    const k = keyToBytes(key(1));
    const parts = encodeFrame({ op: Op.PUT, requestId: 0x01020304, keys: [k], body: Buffer.from("abc"), checksum: checksum(k, Buffer.from("abc")) });
    const wire = concatParts(parts);
    expect(HEADER_BYTES).toBe(32);
    expect(wire.subarray(0, 4).toString("latin1")).toBe("SYKV");
    expect(wire.readUInt32LE(0)).toBe(MAGIC);
    expect(wire[4]).toBe(2);
    expect(wire.readUInt32LE(20)).toBe(0);
    // XXH64 (seed 0) of the 32 key bytes then the value: a published algorithm any other client can implement.
    expect(wire.readBigUInt64LE(24)).toBe(checksum(Buffer.concat([k, Buffer.from("abc")])));
    expect(checksum(Buffer.from("abc"))).toBe(0x44bc2cf5ad770999n); // the XXH64 test vector for "abc"
    expect(wire[5]).toBe(Op.PUT);
    expect(wire.readUInt32LE(8)).toBe(0x01020304);
    expect(wire.readUInt32LE(12)).toBe(1);
    expect(wire.readUInt32LE(16)).toBe(32 + 3);
    expect(wire.length).toBe(HEADER_BYTES + 35);
    // The body is passed through, not copied into the header part.
    expect(parts).toHaveLength(2);
  });

  it("round-trips any frame through the reader, however the stream is cut", () => {
    fc.assert(
      fc.property(fc.array(frameArb, { minLength: 1, maxLength: 5 }), fc.array(fc.nat({ max: 20_000 }), { maxLength: 12 }), (specs, cuts) => {
        const wire = Buffer.concat(specs.map((s) => concatParts(encodeFrame({ ...s, checksum: checksum(...s.keys, s.body) }))));
        const { reader, frames, errors } = collect();
        feed(reader, wire, cuts);
        expect(errors).toEqual([]);
        expect(frames).toHaveLength(specs.length);
        specs.forEach((s, i) => {
          const f = frames[i] as Frame;
          expect(f.header).toMatchObject({ op: s.op, requestId: s.requestId, status: s.status, flags: s.flags, keyCount: s.keys.length, checksum: checksum(...s.keys, s.body) });
          expect(f.payload.equals(Buffer.concat([...s.keys, s.body]))).toBe(true);
          // Only frames that carry a checksum (PUT requests, GET hits) are hashed on arrival.
          expect(f.payloadChecksum).toBe(carriesChecksum(s) ? checksum(...s.keys, s.body) : 0n);
        });
        expect(reader.midFrame).toBe(false);
      }),
      { numRuns: 300 },
    );
  });

  it("reads a large value straight into the payload buffer it allocated (no copy)", () => {
    const value = bytes(3 * 1024 * 1024 + 17);
    const k = keyToBytes(key(9));
    const wire = concatParts(encodeFrame({ op: Op.GET, requestId: 5, status: Status.OK, flags: Flag.REPLY, keys: [k], body: value, checksum: checksum(k, value) }));
    const frames: Frame[] = [];
    const given: ArrayBufferLike[] = [];
    const reader = new FrameReader(DEFAULT_LIMITS, { onFrame: (f) => frames.push(f), onFramingError: () => {} });
    const orig = reader.receiveBuffer.bind(reader);
    reader.receiveBuffer = () => {
      const b = orig();
      given.push(b.buffer);
      return b;
    };
    const direct = feedDirect(reader, wire, 256 * 1024);
    expect(direct).toBeGreaterThan(5);
    expect(frames).toHaveLength(1);
    const r = verifyGetReply(frames[0] as Frame, k);
    expect("value" in r && r.value.equals(value)).toBe(true);
    // The value handed out lives in the buffer the "kernel" wrote into.
    if ("value" in r) expect(given).toContain(r.value.buffer);
  });

  it("emits nothing and stays mid-frame for every truncation of a frame", () => {
    const body = bytes(300);
    const wire = concatParts(encodeFrame({ op: Op.PUT, requestId: 7, keys: [keyToBytes(key(1))], body, checksum: checksum(keyToBytes(key(1)), body) }));
    for (let cut = 0; cut < wire.length; cut++) {
      const { reader, frames, errors } = collect();
      feed(reader, wire.subarray(0, cut));
      expect(frames).toHaveLength(0);
      expect(errors).toHaveLength(0);
      expect(reader.midFrame).toBe(cut > 0);
      // The rest of the bytes complete it.
      feed(reader, wire.subarray(cut));
      expect(frames).toHaveLength(1);
    }
  });

  it("refuses bad magic, unknown versions and lying lengths before allocating", () => {
    const base = concatParts(encodeFrame({ op: Op.PREFIX, requestId: 3, keys: [keyToBytes(key(1)), keyToBytes(key(2))] }));
    const variant = (edit: (b: Buffer) => void) => {
      const b = Buffer.from(base);
      edit(b);
      return b;
    };
    const cases: [string, Buffer][] = [
      ["bad-magic", variant((b) => b.writeUInt32LE(0xdeadbeef, 0))],
      ["bad-version", variant((b) => (b[4] = 3))],
      ["too-many-keys", variant((b) => b.writeUInt32LE(SMALL.maxKeys + 1, 12))],
      ["too-large", variant((b) => b.writeUInt32LE(0xffffffff, 16))],
      ["too-large", variant((b) => b.writeUInt32LE(maxPayloadBytes(SMALL) + 1, 16))],
      ["bad-lengths", variant((b) => b.writeUInt32LE(3, 12))],
    ];
    for (const [code, wire] of cases) {
      const { reader, frames, errors } = collect();
      feed(reader, wire);
      expect(frames).toHaveLength(0);
      expect(errors.map((e) => e.code)).toEqual([code]);
      expect(reader.isStopped).toBe(true);
      // Nothing after a framing error is read.
      feed(reader, base);
      expect(frames).toHaveLength(0);
      if (code !== "bad-magic") expect(errors[0]?.header?.requestId).toBe(3);
    }
  });

  it("survives random bytes: frames within the limits or one framing error, never a throw", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.boolean(), (junk, withMagic) => {
        const data = Buffer.from(junk);
        if (withMagic && data.length >= 8) {
          data.writeUInt32LE(MAGIC, 0);
          data[4] = 1;
        }
        const { reader, frames, errors } = collect();
        feed(reader, data, [7, 31, 100]);
        expect(errors.length).toBeLessThanOrEqual(1);
        for (const f of frames) expect(f.payload.length).toBeLessThanOrEqual(maxPayloadBytes(SMALL));
        expect(reader.receiveBuffer().length).toBeLessThanOrEqual(maxPayloadBytes(SMALL));
      }),
      { numRuns: 500 },
    );
  });

  it("checkHeader accepts exactly the frames within the limits", () => {
    fc.assert(
      fc.property(fc.nat({ max: 200 }), fc.nat({ max: 2 * maxPayloadBytes(SMALL) }), (keyCount, payloadLength) => {
        const b = Buffer.alloc(HEADER_BYTES);
        writeHeader(b, { version: PROTOCOL_VERSION, op: Op.GET, status: 0, flags: 0, requestId: 1, keyCount, payloadLength, checksum: 0n });
        const ok = keyCount <= SMALL.maxKeys && payloadLength <= maxPayloadBytes(SMALL) && keyCount * KEY_BYTES <= payloadLength;
        expect(checkHeader(readHeader(b), SMALL) === undefined).toBe(ok);
      }),
    );
  });
});

describe("versions", () => {
  it("a version-1 frame (24-byte header, CRC-32) is a clear version error as soon as its version byte arrives", () => {
    const { reader, frames, errors } = collect();
    const v1 = Buffer.alloc(24);
    v1.writeUInt32LE(MAGIC, 0);
    v1[4] = 1;
    v1[5] = Op.GET;
    feed(reader, v1.subarray(0, 12), [3, 5]);
    expect(frames).toEqual([]);
    expect(errors).toHaveLength(1);
    expect(errors[0]?.code).toBe("bad-version");
    expect(errors[0]?.status).toBe(Status.UNSUPPORTED_VERSION);
    expect(errors[0]?.message).toMatch(/version 1: this side speaks version 2 .*XXH64/);
    expect(errors[0]?.header?.requestId).toBe(0); // echoed, so the old side can match the answer
  });
});

describe("checksums and buffers", () => {
  it("checksumAsync equals checksum of key and value, in slices or not", async () => {
    const k = keyToBytes(key(9));
    for (const n of [0, 1, 2 * 1024 * 1024, 17 * 1024 * 1024 + 3]) {
      const b = bytes(n, n + 1);
      expect(await checksumAsync(k, b)).toBe(checksum(k, b));
      expect(checksum(k, b)).toBe(checksum(Buffer.concat([k, b])));
    }
  });

  it("the checksum covers the key: the same value under another key does not verify", () => {
    const v = bytes(4096, 2);
    expect(checksum(keyToBytes(key(1)), v)).not.toBe(checksum(keyToBytes(key(2)), v));
  });

  it("BufferPool hands back released memory of the same size, and refuses what it must not pool", () => {
    const pool = new BufferPool({ maxIdleBytes: 3 * 1024 * 1024, minBytes: 1024 * 1024 });
    const a = pool.acquire(1024 * 1024);
    pool.release(a.subarray(32)); // a view: the whole ArrayBuffer goes back
    const b = pool.acquire(1024 * 1024);
    expect(b.buffer).toBe(a.buffer);
    expect(pool.acquire(1024 * 1024).buffer).not.toBe(a.buffer); // the pool is empty again
    pool.release(Buffer.allocUnsafe(100)); // small, and part of Node's shared slab
    pool.release(Buffer.allocUnsafeSlow(2 * 1024 * 1024));
    pool.release(Buffer.allocUnsafeSlow(2 * 1024 * 1024)); // over maxIdleBytes
    expect(pool.stats()).toMatchObject({ reused: 1, allocated: 2, released: 2, dropped: 2, idleBytes: 2 * 1024 * 1024 });
  });

  it("reads payloads into the allocator it is given", () => {
    const pool = new BufferPool({ minBytes: 1024 });
    const frames: Frame[] = [];
    const reader = new FrameReader(DEFAULT_LIMITS, { onFrame: (f) => frames.push(f), onFramingError: () => {} }, { allocate: (n) => pool.acquire(n) });
    const body = bytes(10_000);
    const wire = concatParts(encodeFrame({ op: Op.PUT, requestId: 1, keys: [keyToBytes(key(1))], body, checksum: checksum(keyToBytes(key(1)), body) }));
    feed(reader, wire, [5000]);
    pool.release((frames[0] as Frame).payload);
    feed(reader, wire, [7]);
    expect((frames[1] as Frame).payload.buffer).toBe((frames[0] as Frame).payload.buffer);
    expect((frames[1] as Frame).payloadChecksum).toBe(checksum(keyToBytes(key(1)), body));
  });
});

describe("reply verification", () => {
  const k = keyToBytes(key(42));
  const value = bytes(5000, 3);
  const reply = (edit: { key?: Uint8Array; body?: Uint8Array; checksum?: bigint; status?: number; op?: number } = {}): Frame => {
    const wire = concatParts(
      encodeFrame({ op: edit.op ?? Op.GET, requestId: 1, status: edit.status ?? Status.OK, flags: Flag.REPLY, keys: [edit.key ?? k], body: edit.body ?? value, checksum: edit.checksum ?? checksum(edit.key ?? k, edit.body ?? value) }),
    );
    const { reader, frames } = collect(DEFAULT_LIMITS);
    feed(reader, wire);
    return frames[0] as Frame;
  };

  it("returns the value of a well-formed hit", () => {
    const r = verifyGetReply(reply(), k);
    expect("value" in r && r.value.equals(value)).toBe(true);
  });

  it("treats a wrong key echo, a flipped byte or a wrong checksum as a miss, never as data", () => {
    const flipped = Buffer.from(value);
    flipped[1234] = (flipped[1234] as number) ^ 0x40;
    expect(verifyGetReply(reply({ key: keyToBytes(key(43)) }), k)).toEqual({ miss: "corrupt" });
    // A value served under the wrong key with that key's checksum still fails: the echo is checked.
    expect(verifyGetReply(reply({ body: flipped, checksum: checksum(k, value) }), k)).toEqual({ miss: "corrupt" });
    expect(verifyGetReply(reply({ checksum: 12345n }), k)).toEqual({ miss: "corrupt" });
    expect(verifyGetReply(reply({ op: Op.PUT }), k)).toEqual({ miss: "corrupt" });
    expect(verifyGetReply(reply({ status: Status.NOT_FOUND }), k)).toEqual({ miss: "not-found" });
    expect(verifyGetReply(reply({ status: Status.INTERNAL }), k)).toEqual({ miss: "status" });
  });

  it("any single corrupted bit in a GET hit is caught", () => {
    const good = concatParts(encodeFrame({ op: Op.GET, requestId: 1, status: Status.OK, flags: Flag.REPLY, keys: [k], body: value.subarray(0, 200), checksum: checksum(k, value.subarray(0, 200)) }));
    fc.assert(
      fc.property(fc.integer({ min: HEADER_BYTES, max: good.length - 1 }), fc.integer({ min: 0, max: 7 }), (at, bit) => {
        const bad = Buffer.from(good);
        bad[at] = (bad[at] as number) ^ (1 << bit);
        const { reader, frames } = collect(DEFAULT_LIMITS);
        feed(reader, bad);
        expect(verifyGetReply(frames[0] as Frame, k)).toEqual({ miss: "corrupt" });
      }),
    );
  });

  it("reads PREFIX counts and rejects counts larger than what was asked", () => {
    const make = (count: number, bodyLen = 4) => {
      const body = Buffer.alloc(bodyLen);
      if (bodyLen >= 4) body.writeUInt32LE(count, 0);
      const { reader, frames } = collect(DEFAULT_LIMITS);
      feed(reader, concatParts(encodeFrame({ op: Op.PREFIX, requestId: 1, flags: Flag.REPLY, body })));
      return frames[0] as Frame;
    };
    expect(readPrefixReply(make(3), 5)).toBe(3);
    expect(readPrefixReply(make(5), 5)).toBe(5);
    expect(readPrefixReply(make(6), 5)).toBeUndefined();
    expect(readPrefixReply(make(1, 8), 5)).toBeUndefined();
  });
});
