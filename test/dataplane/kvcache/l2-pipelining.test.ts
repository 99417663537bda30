/**
 * Pipelining on one connection: many requests in flight at once, replies matched by request id
 * whatever their order, late replies after a timeout dropped without disturbing the stream.
 */
import { afterEach, describe, expect, it } from "vitest";
import { L2Client } from "../../../dataplane/kvcache/l2/l2-client";
import { checksum, encodeFrame, Flag, type Frame, frameKey, keyFromBytes, Op, Status } from "../../../dataplane/kvcache/l2/protocol";
import type { CacheServer } from "../../../dataplane/kvcache/server/cache-server";
import { addr, bytes, FakeServer, key, quietLogger, startServer } from "./l2-test-support";

const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((c) => c()));
});

function client(servers: string[], opts: Partial<ConstructorParameters<typeof L2Client>[0]> = {}): L2Client {
  const c = new L2Client({ servers, dataConnections: 1, logger: quietLogger, ...opts });
  closers.push(() => c.close());
  return c;
}

/** A value derived from the key, so a fake server can answer any GET and the client can check it. */
const valueFor = (k: string, size = 2000) => bytes(size, Number.parseInt(k.slice(0, 6), 16));

function getReply(f: Frame, body: Buffer): Uint8Array[] {
  return encodeFrame({ op: Op.GET, requestId: f.header.requestId, status: Status.OK, flags: Flag.REPLY, keys: [frameKey(f, 0)], body, checksum: checksum(frameKey(f, 0), body) });
}

describe("pipelining", () => {
  it("runs hundreds of concurrent mixed requests over a single data connection", async () => {
    const s: CacheServer = await startServer();
    closers.push(() => s.close({ graceMs: 0 }));
    const c = client([addr(s)]);
    const n = 300;
    await Promise.all(Array.from({ length: n }, (_, i) => c.put(key(i), valueFor(key(i), 1000 + i * 37))));
    const results = await Promise.all([
      ...Array.from({ length: n }, (_, i) => c.get(key(i))),
      ...Array.from({ length: 50 }, (_, i) => c.get(key(`absent-${i}`))),
    ]);
    results.slice(0, n).forEach((v, i) => expect(v && Buffer.from(v).equals(valueFor(key(i), 1000 + i * 37))).toBe(true));
    expect(results.slice(n).every((v) => v === undefined)).toBe(true);
    // One data connection, plus the control one that asked for the shard map: everything above was pipelined on the first.
    expect(s.stats().connections).toBe(2);
    expect(c.stats()).toMatchObject({ hits: n, misses: 50 });
  });

  it("matches replies that come back in reverse order", async () => {
    const held: Frame[] = [];
    let replyFn: ((parts: Uint8Array[]) => void) | undefined;
    const fake = await FakeServer.start((f, reply) => {
      replyFn = reply;
      held.push(f);
      if (held.length === 64) {
        // Answer the whole batch backwards.
        const order = held.splice(0).reverse();
        for (const g of order) replyFn?.(getReply(g, valueFor(keyFromBytes(g.payload, 0))));
      }
    });
    closers.push(() => fake.close());
    const c = client([fake.address]);
    const keys = Array.from({ length: 64 }, (_, i) => key(`ooo-${i}`));
    const got = await Promise.all(keys.map((k) => c.get(k)));
    got.forEach((v, i) => expect(v && Buffer.from(v).equals(valueFor(keys[i] as string))).toBe(true));
    expect(c.stats().hits).toBe(64);
  });

  it("drops a reply that arrives after its request timed out, and keeps serving the connection", async () => {
    let first = true;
    const fake = await FakeServer.start((f, reply) => {
      const answer = () => reply(getReply(f, valueFor(keyFromBytes(f.payload, 0))));
      if (first) {
        first = false;
        setTimeout(answer, 250); // after the client's 100 ms timeout
      } else answer();
    });
    closers.push(() => fake.close());
    const c = client([fake.address], { timeoutBaseMs: 100, expectedValueBytes: 1, failureThreshold: 5 });
    expect(await c.get(key("slow"))).toBeUndefined();
    // The late reply comes 250 ms in; a loaded box may run that timer late, so wait for it.
    for (let i = 0; i < 500 && c.clientStats().lateReplies === 0; i++) await new Promise((r) => setTimeout(r, 20));
    const v = await c.get(key("fast"));
    expect(v && Buffer.from(v).equals(valueFor(key("fast")))).toBe(true);
    expect(c.clientStats()).toMatchObject({ timeouts: 1, lateReplies: 1, hits: 1, misses: 1 });
  });
});
