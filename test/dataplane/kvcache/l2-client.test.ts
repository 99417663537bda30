/**
 * L2Client against real cache servers and misbehaving fakes: replication, timeouts and dead
 * servers as misses (then recovery), the one-round-trip longest prefix across servers, corrupt
 * replies as misses, membership changes.
 */
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { L2Client, type L2ClientOptions } from "../../../dataplane/kvcache/l2/l2-client";
import { checksum, encodeFrame, Flag, type Frame, frameKey, keyToBytes, Op, Status } from "../../../dataplane/kvcache/l2/protocol";
import type { CacheServer } from "../../../dataplane/kvcache/server/cache-server";
import { addr, bytes, FakeServer, key, quietLogger, RawPeer, sleep, startServer } from "./l2-test-support";

async function waitUntil(cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error("condition not met in time");
    await sleep(10);
  }
}

const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((c) => c()));
});

async function servers(n: number, opts: Parameters<typeof startServer>[0] = {}): Promise<CacheServer[]> {
  const out = await Promise.all(Array.from({ length: n }, () => startServer(opts)));
  closers.push(() => Promise.all(out.map((s) => s.close({ graceMs: 0 }))));
  return out;
}

function client(members: string[], opts: Partial<L2ClientOptions> = {}): L2Client {
  const c = new L2Client({ servers: members, logger: quietLogger, ...opts });
  closers.push(() => c.close());
  return c;
}

const same = (a: Uint8Array | undefined, b: Uint8Array) => a !== undefined && Buffer.from(a).equals(Buffer.from(b));

describe("L2Client", () => {
  it("implements the KvTier contract: put, get (the received buffer), delete, stats", async () => {
    const [s] = await servers(1);
    const c = client([addr(s as CacheServer)]);
    expect(c.name).toBe("l2");
    const v = bytes(2 * 1024 * 1024);
    expect(await c.tryPut(key(1), v)).toBe(true);
    const got = await c.get(key(1));
    expect(same(got, v)).toBe(true);
    expect(got === v).toBe(false);
    await c.delete(key(1));
    expect(await c.get(key(1))).toBeUndefined();
    expect(c.stats()).toMatchObject({ hits: 1, misses: 1, bytesIn: v.length, bytesOut: v.length });
    await expect(c.get("not-a-key")).rejects.toThrow(TypeError);
    await expect(c.put(key(2), Buffer.alloc(c.config.maxValueBytes + 1))).rejects.toThrow(RangeError);
  });

  it("replicates to r distinct servers and reads from a replica when the primary is gone", async () => {
    const ss = await servers(3);
    const c = client(ss.map(addr), { replicas: 2 });
    const keys = Array.from({ length: 30 }, (_, i) => key(`rep-${i}`));
    for (const k of keys) await c.put(k, bytes(10_000, k.charCodeAt(0)));
    for (const k of keys) {
      const holders = ss.filter((s) => s.store.has(k)).map(addr);
      expect(holders.sort()).toEqual(c.serversFor(k).sort());
      expect(holders).toHaveLength(2);
    }
    // Kill the primary of the first key; every key still reads.
    const primary = c.serversFor(keys[0] as string)[0];
    await ss.find((s) => addr(s) === primary)?.close({ graceMs: 0 });
    for (const k of keys) expect(same(await c.get(k), bytes(10_000, k.charCodeAt(0)))).toBe(true);
    expect(c.clientStats().servers.find((h) => h.id === primary)?.up).toBe(false);
  });

  it("turns a stalled server into misses after the timeout, then stops asking it", async () => {
    const stalled = await FakeServer.start(() => {}); // reads everything, answers nothing
    closers.push(() => stalled.close());
    // A 1 s timeout: long enough that "did not wait for it" below holds on a loaded box too.
    const c = client([stalled.address], { timeoutBaseMs: 1_000, timeoutMinBytesPerSec: 1e12, failureThreshold: 2, downMs: 60_000 });
    let t0 = Date.now();
    expect(await c.get(key(1))).toBeUndefined();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(990);
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(await c.longestPrefix([key(1), key(2)])).toBe(0);
    expect(c.clientStats()).toMatchObject({ timeouts: 2 });
    // Two consecutive timeouts: marked down, so the next lookups do not wait at all.
    t0 = Date.now();
    expect(await c.get(key(1))).toBeUndefined();
    await c.put(key(3), bytes(100));
    expect(Date.now() - t0).toBeLessThan(500);
    expect(c.clientStats()).toMatchObject({ skippedDown: 2, putFailures: 1 });
    expect(stalled.requests).toBe(2);
  });

  it("treats a killed server as misses, then uses it again once it is back", async () => {
    const [s] = await servers(1);
    const port = (s as CacheServer).endpoint.port;
    const c = client([addr(s as CacheServer)], { downMs: 200, maxDownMs: 400 });
    await c.put(key(1), bytes(5000));
    expect(await c.get(key(1))).toBeDefined();
    await (s as CacheServer).close({ graceMs: 0 });
    expect(await c.get(key(1))).toBeUndefined();
    await c.put(key(2), bytes(10)); // no throw
    expect(await c.tryPut(key(2), bytes(10))).toBe(false);
    expect(await c.longestPrefix([key(1)])).toBe(0);
    expect(c.clientStats().servers[0]?.up).toBe(false);
    // Back on the same port (empty, as after a restart).
    const again = await startServer({ port });
    closers.push(() => again.close({ graceMs: 0 }));
    const deadline = Date.now() + 5_000;
    let ok = false;
    while (!ok && Date.now() < deadline) {
      await c.put(key(3), bytes(1000, 3));
      ok = same(await c.get(key(3)), bytes(1000, 3));
      if (!ok) await sleep(100);
    }
    expect(ok).toBe(true);
    expect(c.clientStats().servers[0]?.up).toBe(true);
    expect(await c.get(key(1))).toBeUndefined(); // lost with the old process: a miss, not an error
  });

  it("answers the longest prefix across 3 servers with one PREFIX per server", async () => {
    const ss = await servers(3);
    const c = client(ss.map(addr));
    const keys = Array.from({ length: 60 }, (_, i) => key(`chain-${i}`));
    expect(new Set(keys.map((k) => c.serversFor(k)[0])).size).toBe(3);
    for (const k of keys.slice(0, 41)) await c.put(k, bytes(64, 1));
    await c.put(keys[45] as string, bytes(64, 1)); // beyond the gap: must not count
    const prefixRequests = async () => (await Promise.all(ss.map(countPrefix))).reduce((a, b) => a + b, 0);
    const before = await prefixRequests();
    expect(await c.longestPrefix(keys)).toBe(41);
    expect((await prefixRequests()) - before).toBe(3);
    expect(await c.longestPrefix(keys.slice(0, 10))).toBe(10);
    expect(await c.longestPrefix([])).toBe(0);
    // A gap in the middle, on whichever server owns that key.
    await c.delete(keys[17] as string);
    expect(await c.longestPrefix(keys)).toBe(17);
    // A server down cuts the prefix at its first key.
    const downServer = c.serversFor(keys[5] as string)[0];
    await ss.find((s) => addr(s) === downServer)?.close({ graceMs: 0 });
    const firstOnDown = keys.findIndex((k) => c.serversFor(k)[0] === downServer);
    expect(await c.longestPrefix(keys)).toBe(Math.min(17, firstOnDown));
  });

  it("never returns corrupt data: a flipped byte, a wrong key echo or a short body are misses", async () => {
    const modes = ["flip", "wrong-key", "short"] as const;
    let mode: (typeof modes)[number] = "flip";
    const fake = await FakeServer.start((f: Frame, reply) => {
      const value = bytes(4096, 7);
      const k = mode === "wrong-key" ? Buffer.from(key("other"), "hex") : frameKey(f, 0);
      // Valid for what is sent in wrong-key mode: only the key echo gives it away.
      const sum = checksum(k, value);
      let body = value;
      if (mode === "flip") {
        body = Buffer.from(value);
        body[100] = (body[100] as number) ^ 1;
      }
      if (mode === "short") body = value.subarray(0, 4000);
      reply(encodeFrame({ op: Op.GET, requestId: f.header.requestId, status: Status.OK, flags: Flag.REPLY, keys: [k], body, checksum: sum }));
    });
    closers.push(() => fake.close());
    const c = client([fake.address]);
    for (const m of modes) {
      mode = m;
      expect(await c.get(key(m))).toBeUndefined();
    }
    expect(c.clientStats()).toMatchObject({ corruptReplies: 3, misses: 3, hits: 0 });
  });

  it("catches a value the server stored damaged (it stores unverified) at GET, deletes it, and stores the next good copy", async () => {
    const [server] = await servers(1);
    const c = client([addr(server as CacheServer)]);
    const k = key("damaged-at-rest");
    const value = bytes(64 * 1024, 5);
    // A PUT whose bytes were damaged after the writer's checksum: the server keeps it with that checksum.
    const damaged = Buffer.from(value);
    damaged[1000] = (damaged[1000] as number) ^ 0x10;
    const peer = await RawPeer.connect((server as CacheServer).endpoint.port);
    peer.sendFrame({ op: Op.PUT, requestId: 1, keys: [keyToBytes(k)], body: damaged, checksum: checksum(keyToBytes(k), value) });
    expect((await peer.waitFrames(1))[0]?.header.status).toBe(Status.OK);
    peer.close();
    await c.put(k, value); // refused as a duplicate: the damaged copy holds the key
    expect(await c.get(k)).toBeUndefined();
    expect(c.clientStats()).toMatchObject({ corruptReplies: 1, hits: 0 });
    await waitUntil(() => (server as CacheServer).stats().objects === 0);
    await c.put(k, value);
    const got = await c.get(k);
    expect(got !== undefined && Buffer.from(got).equals(value)).toBe(true);
  });

  it("returns a miss at once when the caller aborts", async () => {
    const stalled = await FakeServer.start(() => {});
    closers.push(() => stalled.close());
    const c = client([stalled.address], { timeoutBaseMs: 10_000 });
    const ac = new AbortController();
    const t0 = Date.now();
    const pending = c.get(key(1), ac.signal);
    const prefix = c.longestPrefix([key(1)], ac.signal);
    setTimeout(() => ac.abort(), 50);
    expect(await pending).toBeUndefined();
    expect(await prefix).toBe(0);
    // At the abort (50 ms), not the 10 s timeout; room left for a loaded box.
    expect(Date.now() - t0).toBeLessThan(5_000);
  });

  it("follows membership changes: new servers take a share, removed ones are forgotten", async () => {
    const ss = await servers(3);
    const c = client([addr(ss[0] as CacheServer), addr(ss[1] as CacheServer)]);
    const keys = Array.from({ length: 300 }, (_, i) => key(`m-${i}`));
    const before = new Map(keys.map((k) => [k, c.serversFor(k)[0]]));
    c.setMembers(ss.map(addr));
    expect(c.members()).toEqual(ss.map(addr));
    const moved = keys.filter((k) => before.get(k) !== c.serversFor(k)[0]);
    expect(moved.every((k) => c.serversFor(k)[0] === addr(ss[2] as CacheServer))).toBe(true);
    expect(moved.length / keys.length).toBeGreaterThan(0.15);
    expect(moved.length / keys.length).toBeLessThan(0.5);
    for (const k of keys.slice(0, 30)) await c.put(k, bytes(100));
    c.setMembers([addr(ss[0] as CacheServer)]);
    expect(c.clientStats().servers.map((h) => h.id)).toEqual([addr(ss[0] as CacheServer)]);
    for (const k of keys.slice(0, 30)) expect(c.serversFor(k)).toEqual([addr(ss[0] as CacheServer)]);
    expect(() => c.setMembers(["nope"])).toThrow(RangeError);
  });

  it("validates its configuration", () => {
    expect(() => new L2Client({ servers: ["10.0.0.1"], logger: quietLogger })).toThrow(/servers/);
    expect(() => new L2Client({ replicas: 0, logger: quietLogger })).toThrow(/replicas/);
    expect(() => new L2Client({ servers: [{ id: "10.0.0.1:7400", weight: -1 }], logger: quietLogger })).toThrow(/weight/);
  });

  it("refuses to connect to a port nobody listens on, quickly, as a miss", async () => {
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise((r) => probe.close(r));
    // Long timeouts, so that "quickly" (refused, not timed out) holds on a loaded box too.
    const c = client([`127.0.0.1:${port}`], { connectTimeoutMs: 10_000, timeoutBaseMs: 10_000 });
    const t0 = Date.now();
    expect(await c.get(key(1))).toBeUndefined();
    expect(await c.ping(`127.0.0.1:${port}`)).toBe(false);
    expect(Date.now() - t0).toBeLessThan(5_000);
  });
});

/** PREFIX requests a server has answered (its requests_total counter). */
async function countPrefix(s: CacheServer): Promise<number> {
  const { values } = await s.metrics.requests.get();
  return values.filter((v) => v.labels.op === "prefix").reduce((n, v) => n + v.value, 0);
}
