/**
 * The cache server facing malformed and hostile input over real TCP: every bad frame gets an
 * error reply or a closed connection, and the server stays up and keeps serving other connections.
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checksum, concatParts, encodeFrame, Flag, HEADER_BYTES, keyToBytes, MAGIC, Op, PROTOCOL_VERSION, Status, writeHeader } from "../../../dataplane/kvcache/l2/protocol";
import type { CacheServer } from "../../../dataplane/kvcache/server/cache-server";
import { bytes, key, RawPeer, sleep, startServer } from "./l2-test-support";

let server: CacheServer;
let port: number;

beforeAll(async () => {
  server = await startServer({ capacityBytes: 64 * 1024 * 1024, maxValueBytes: 1024 * 1024, maxKeys: 256, frameStallTimeoutMs: 2_000 });
  port = server.endpoint.port;
});
afterAll(() => server.close({ graceMs: 0 }));

const putFrame = (k: string, value: Buffer, requestId = 1) => concatParts(encodeFrame({ op: Op.PUT, requestId, keys: [keyToBytes(k)], body: value, checksum: checksum(keyToBytes(k), value) }));

/** A fresh, well-behaved connection can still PUT, GET and PING. */
async function assertHealthy(tag: string): Promise<void> {
  const peer = await RawPeer.connect(port);
  const v = bytes(1000, tag.length + 7);
  const k = key(`healthy-${tag}`);
  peer.send(putFrame(k, v, 1));
  peer.sendFrame({ op: Op.GET, requestId: 2, keys: [keyToBytes(k)] });
  peer.sendFrame({ op: Op.PING, requestId: 3 });
  const frames = await peer.waitFrames(3);
  peer.close();
  expect(frames.map((f) => [f.header.requestId, f.header.status])).toEqual([
    [1, Status.OK],
    [2, Status.OK],
    [3, Status.OK],
  ]);
  expect(frames[1]?.payload.subarray(32).equals(v)).toBe(true);
}

describe("cache server with bad input", () => {
  it("with --verify-puts, answers a bad checksum with BAD_CHECKSUM, stores nothing, and keeps the connection", async () => {
    const verifying = await startServer({ verifyPutChecksums: true });
    const peer = await RawPeer.connect(verifying.endpoint.port);
    const v = bytes(4096);
    const k = key("bad-sum");
    peer.sendFrame({ op: Op.PUT, requestId: 10, keys: [keyToBytes(k)], body: v, checksum: checksum(keyToBytes(k), v) ^ 1n });
    peer.sendFrame({ op: Op.GET, requestId: 11, keys: [keyToBytes(k)] });
    const frames = await peer.waitFrames(2);
    expect(frames.map((f) => [f.header.requestId, f.header.status])).toEqual([
      [10, Status.BAD_CHECKSUM],
      [11, Status.NOT_FOUND],
    ]);
    expect(peer.isClosed).toBe(false);
    peer.close();
    await verifying.close({ graceMs: 0 });
  });

  it("by default stores a PUT with its sender's checksum unverified and serves that checksum back", async () => {
    const peer = await RawPeer.connect(port);
    const v = bytes(4096, 3);
    const k = key("unverified-sum");
    const wrong = checksum(keyToBytes(k), v) ^ 1n;
    peer.sendFrame({ op: Op.PUT, requestId: 10, keys: [keyToBytes(k)], body: v, checksum: wrong });
    peer.sendFrame({ op: Op.GET, requestId: 11, keys: [keyToBytes(k)] });
    const frames = await peer.waitFrames(2);
    expect(frames.map((f) => [f.header.requestId, f.header.status])).toEqual([
      [10, Status.OK],
      [11, Status.OK],
    ]);
    // The reader sees a body that does not match the stored checksum: verifyGetReply calls it corrupt.
    expect(frames[1]?.header.checksum).toBe(wrong);
    expect(frames[1]?.payloadChecksum).toBe(checksum(keyToBytes(k), v));
    peer.close();
  });

  it("answers well-framed nonsense with BAD_REQUEST and keeps serving the connection", async () => {
    const peer = await RawPeer.connect(port);
    peer.sendFrame({ op: 99, requestId: 1 }); // unknown op
    peer.sendFrame({ op: Op.GET, requestId: 2, keys: [keyToBytes(key(1)), keyToBytes(key(2))] }); // 2 keys
    peer.sendFrame({ op: Op.PUT, requestId: 3, keys: [] as Uint8Array[], body: Buffer.from("x"), checksum: checksum(Buffer.from("x")) }); // no key
    peer.sendFrame({ op: Op.PREFIX, requestId: 4 }); // no keys
    peer.sendFrame({ op: Op.GET, requestId: 5, flags: Flag.REPLY, keys: [keyToBytes(key(1))] }); // a "reply"
    peer.sendFrame({ op: Op.PING, requestId: 6, body: Buffer.from("extra") });
    peer.sendFrame({ op: Op.PING, requestId: 7 });
    const frames = await peer.waitFrames(7);
    expect(frames.map((f) => [f.header.requestId, f.header.status])).toEqual([
      [1, Status.BAD_REQUEST],
      [2, Status.BAD_REQUEST],
      [3, Status.BAD_REQUEST],
      [4, Status.BAD_REQUEST],
      [5, Status.BAD_REQUEST],
      [6, Status.BAD_REQUEST],
      [7, Status.OK],
    ]);
    peer.close();
  });

  it("refuses a frame over the size limit with BAD_FRAME and closes (it cannot be skipped without reading it)", async () => {
    const peer = await RawPeer.connect(port);
    // One byte over maxValueBytes.
    const big = bytes(1024 * 1024 + 1);
    peer.send(putFrame(key("big"), big, 20));
    await peer.waitFrames(1);
    expect(peer.frames[0]?.header.status).toBe(Status.BAD_FRAME);
    await peer.closed;

    const liar = await RawPeer.connect(port);
    const h = Buffer.alloc(HEADER_BYTES + 32);
    writeHeader(h, { version: PROTOCOL_VERSION, op: Op.PUT, status: 0, flags: 0, requestId: 21, keyCount: 1, payloadLength: 0xfffffff0, checksum: 0n });
    liar.send(h);
    await liar.waitFrames(1);
    expect(liar.frames[0]?.header).toMatchObject({ requestId: 21, status: Status.BAD_FRAME });
    await liar.closed;
    await assertHealthy("after-liar");
  });

  it("closes on bad magic and on an unknown version (after saying why)", async () => {
    const peer = await RawPeer.connect(port);
    peer.send(Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    await peer.waitFrames(1);
    expect(peer.frames[0]?.header.status).toBe(Status.BAD_FRAME);
    await peer.closed;

    const v3 = await RawPeer.connect(port);
    const h = Buffer.alloc(HEADER_BYTES);
    writeHeader(h, { version: 3, op: Op.PING, status: 0, flags: 0, requestId: 9, keyCount: 0, payloadLength: 0, checksum: 0n });
    v3.send(h);
    await v3.waitFrames(1);
    expect(v3.frames[0]?.header.status).toBe(Status.UNSUPPORTED_VERSION);
    await v3.closed;
  });

  it("answers a version-1 (CRC-32, 24-byte header) client with UNSUPPORTED_VERSION at once, not after a stall", async () => {
    const v1 = await RawPeer.connect(port);
    const h = Buffer.alloc(24);
    h.writeUInt32LE(MAGIC, 0);
    h[4] = 1;
    h[5] = Op.PING;
    h.writeUInt32LE(9, 8);
    const t0 = Date.now();
    v1.send(h);
    await v1.waitFrames(1);
    expect(v1.frames[0]?.header.status).toBe(Status.UNSUPPORTED_VERSION);
    await v1.closed;
    // Well under the 2 s stall timeout this server runs with (long, so a loaded box keeps to it).
    expect(Date.now() - t0).toBeLessThan(1_500);
  });

  it("closes a connection whose frame stalls (a length that nothing follows cannot pin memory)", async () => {
    const peer = await RawPeer.connect(port);
    const h = Buffer.alloc(HEADER_BYTES + 32);
    writeHeader(h, { version: PROTOCOL_VERSION, op: Op.PUT, status: 0, flags: 0, requestId: 1, keyCount: 1, payloadLength: 32 + 500_000, checksum: 0n });
    peer.send(h);
    const t0 = Date.now();
    await peer.closed;
    // At the 2 s stall timeout (room left for a loaded box).
    expect(Date.now() - t0).toBeLessThan(10_000);
    await assertHealthy("after-stall");
  });

  it("survives every truncation of a PUT frame (the peer hangs up mid-frame)", async () => {
    const wire = putFrame(key("trunc"), bytes(90));
    for (let cut = 0; cut < wire.length; cut += cut < HEADER_BYTES + 8 ? 1 : 7) {
      const peer = await RawPeer.connect(port);
      peer.send(wire.subarray(0, cut));
      await sleep(1);
      peer.close();
    }
    await assertHealthy("after-truncations");
    expect(server.store.has(key("trunc"))).toBe(false);
  });

  it("survives random frames, mutated frames and lying lengths (fast-check), serving others throughout", async () => {
    const valid = [putFrame(key("fz"), bytes(200)), concatParts(encodeFrame({ op: Op.PREFIX, requestId: 2, keys: [keyToBytes(key(1)), keyToBytes(key(2))] }))];
    const junkArb = fc.oneof(
      fc.uint8Array({ maxLength: 400 }).map((u) => Buffer.from(u)),
      fc.tuple(fc.constantFrom(...valid), fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { minLength: 1, maxLength: 4 })).map(([frame, edits]) => {
        const b = Buffer.from(frame);
        for (const [at, v] of edits) b[at % b.length] = v;
        return b;
      }),
      fc.tuple(fc.nat({ max: 0xffffffff }), fc.nat({ max: 0xffff }), fc.nat({ max: 10 })).map(([len, keys, op]) => {
        const b = Buffer.alloc(HEADER_BYTES + 64);
        writeHeader(b, { version: PROTOCOL_VERSION, op, status: 0, flags: 0, requestId: 1, keyCount: keys, payloadLength: len, checksum: 0n });
        b.writeUInt32LE(MAGIC, 0);
        return b;
      }),
    );
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(junkArb, async (junk) => {
        const peer = await RawPeer.connect(port);
        peer.send(junk);
        await sleep(2);
        peer.close();
        if (++runs % 25 === 0) await assertHealthy(`fuzz-${runs}`);
      }),
      { numRuns: 150 },
    );
    await assertHealthy("after-fuzz");
  });
});
