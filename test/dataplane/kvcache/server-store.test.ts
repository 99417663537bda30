/**
 * The cache server's memory and service: the byte budget holds under eviction (LRU and S3-FIFO,
 * through the EvictionPolicy interface), objects are immutable, STATS and /metrics report what
 * happened, and shutdown lets queued replies finish.
 */
import { afterEach, describe, expect, it } from "vitest";
import { createEvictionPolicy } from "../../../dataplane/kvcache/eviction/index";
import { L2Client } from "../../../dataplane/kvcache/l2/l2-client";
import { checksum, Flag, keyToBytes, Op, Status } from "../../../dataplane/kvcache/l2/protocol";
import type { CacheServer } from "../../../dataplane/kvcache/server/cache-server";
import { formatBytes, parseByteSize } from "../../../dataplane/kvcache/server/config";
import { KvStore } from "../../../dataplane/kvcache/server/store";
import type { EvictionPolicy } from "../../../dataplane/kvcache/tier";
import { TcpTransport } from "../../../dataplane/kvcache/transport/tcp";
import { addr, bytes, key, quietLogger, RawPeer, startServer } from "./l2-test-support";

const KiB = 1024;

describe("KvStore", () => {
  for (const name of ["lru", "s3fifo"] as const) {
    it(`keeps bytes used within the budget while evicting through ${name}`, () => {
      const capacity = 100 * KiB;
      const evicted: string[] = [];
      const store = new KvStore(capacity, createEvictionPolicy({ name, capacityBytes: capacity }), (k, _obj, reason) => reason === "evicted" && evicted.push(k));
      let inserted = 0;
      for (let i = 0; i < 400; i++) {
        const size = 1 * KiB + ((i * 7919) % (9 * KiB));
        const v = Buffer.alloc(size, i & 0xff);
        expect(store.put(key(i), v, checksum(keyToBytes(key(i)), v))).toBe("stored");
        inserted += size;
        if (i % 3 === 0) store.get(key(i - 1));
        expect(store.bytesUsed).toBeLessThanOrEqual(capacity);
      }
      const s = store.stats();
      expect(s.evictions).toBe(evicted.length);
      expect(s.evictions).toBeGreaterThan(300);
      expect(s.bytesUsed + s.evictedBytes).toBe(inserted);
      expect(s.policy).toBe(name);
      for (const k of evicted.slice(0, 50)) if (!store.has(k)) expect(store.get(k)).toBeUndefined();
    });
  }

  it("evicts the least recently used first under LRU", () => {
    const store = new KvStore(4 * KiB, createEvictionPolicy({ name: "lru", capacityBytes: 4 * KiB }));
    const v = Buffer.alloc(KiB);
    for (let i = 0; i < 4; i++) store.put(key(i), v, 0n);
    store.get(key(0)); // 0 is now the most recent
    store.put(key(4), v, 0n);
    expect(store.has(key(1))).toBe(false);
    expect([0, 2, 3, 4].every((i) => store.has(key(i)))).toBe(true);
  });

  it("treats a PUT of a held key as a no-op success (immutable objects)", () => {
    const store = new KvStore(10 * KiB, createEvictionPolicy({ name: "lru", capacityBytes: 10 * KiB }));
    const a = Buffer.from("first");
    expect(store.put(key(1), a, checksum(keyToBytes(key(1)), a))).toBe("stored");
    expect(store.put(key(1), Buffer.from("second!"), 1n)).toBe("exists");
    expect(store.get(key(1))?.value.toString()).toBe("first");
    expect(store.bytesUsed).toBe(5);
    expect(store.stats().putsExisting).toBe(1);
  });

  it("refuses a value larger than the whole capacity without evicting anything", () => {
    const store = new KvStore(10 * KiB, createEvictionPolicy({ name: "lru", capacityBytes: 10 * KiB }));
    store.put(key(1), Buffer.alloc(KiB), 0n);
    expect(store.put(key(2), Buffer.alloc(11 * KiB), 0n)).toBe("no-space");
    expect(store.has(key(1))).toBe(true);
  });

  it("refuses rather than loops when the policy has no victim to give", () => {
    const empty: EvictionPolicy = { name: "none", onInsert() {}, onAccess() {}, onRemove() {}, victim: () => undefined };
    const store = new KvStore(2 * KiB, empty);
    expect(store.put(key(1), Buffer.alloc(KiB + 1), 0n)).toBe("stored");
    expect(store.put(key(2), Buffer.alloc(KiB), 0n)).toBe("no-space");
  });

  it("counts prefixes up to the first missing key and deletes", () => {
    const store = new KvStore(10 * KiB, createEvictionPolicy({ name: "lru", capacityBytes: 10 * KiB }));
    for (const i of [0, 1, 2, 4]) store.put(key(i), Buffer.alloc(10), 0n);
    expect(store.prefixCount([0, 1, 2, 3, 4].map(key))).toBe(3);
    expect(store.delete(key(1))).toBe(true);
    expect(store.delete(key(1))).toBe(false);
    expect(store.prefixCount([0, 1, 2].map(key))).toBe(1);
    expect(store.bytesUsed).toBe(30);
  });
});

describe("sizes", () => {
  it("parses decimal and binary units", () => {
    expect(parseByteSize("8GiB")).toBe(8 * 2 ** 30);
    expect(parseByteSize("8GB")).toBe(8e9);
    expect(parseByteSize("512MiB")).toBe(512 * 2 ** 20);
    expect(parseByteSize("1.5KiB")).toBe(1536);
    expect(parseByteSize("1048576")).toBe(1048576);
    for (const bad of ["", "8 XB", "-1GiB", "GiB", "1e9"]) expect(() => parseByteSize(bad)).toThrow(RangeError);
    expect(formatBytes(8 * 2 ** 30)).toBe("8GiB");
  });
});

describe("CacheServer", () => {
  const servers: CacheServer[] = [];
  const clients: L2Client[] = [];
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await Promise.all(servers.splice(0).map((s) => s.close({ graceMs: 0 })));
  });
  const server = async (opts: Parameters<typeof startServer>[0] = {}) => {
    const s = await startServer(opts);
    servers.push(s);
    return s;
  };
  const client = (s: CacheServer) => {
    const c = new L2Client({ servers: [addr(s)], logger: quietLogger });
    clients.push(c);
    return c;
  };

  it("serves PUT, GET, PREFIX, DELETE and STATS, evicting under its budget", async () => {
    const s = await server({ capacityBytes: 1024 * KiB, policy: "s3fifo" });
    const c = client(s);
    const values = Array.from({ length: 40 }, (_, i) => bytes(64 * KiB, i + 1));
    for (let i = 0; i < 40; i++) await c.put(key(i), values[i] as Buffer);
    expect(s.store.bytesUsed).toBeLessThanOrEqual(1024 * KiB);
    const st = s.stats();
    expect(st.evictions).toBe(40 - 16);
    expect(st.objects).toBe(16);
    expect(st.policy).toBe("s3fifo");
    expect(Buffer.from((await c.get(key(39))) as Uint8Array).equals(values[39] as Buffer)).toBe(true);
    expect(await c.get(key(0))).toBeUndefined();
    await c.delete(key(39));
    expect(await c.get(key(39))).toBeUndefined();
    const remote = await c.refreshServerStats();
    expect(remote.get(addr(s))).toMatchObject({ objects: 15, capacityBytes: 1024 * KiB, evictions: 24 });
    expect(c.stats()).toMatchObject({ bytesUsed: 15 * 64 * KiB, capacityBytes: 1024 * KiB, evictions: 24 });
  });

  it("flags a PUT of an existing key as EXISTED and keeps the first value", async () => {
    const s = await server();
    const peer = await RawPeer.connect(s.endpoint.port);
    const k = keyToBytes(key("imm"));
    const a = Buffer.from("aaaa");
    const b = Buffer.from("bbbbbb");
    peer.sendFrame({ op: Op.PUT, requestId: 1, keys: [k], body: a, checksum: checksum(k, a) });
    peer.sendFrame({ op: Op.PUT, requestId: 2, keys: [k], body: b, checksum: checksum(k, b) });
    peer.sendFrame({ op: Op.GET, requestId: 3, keys: [k] });
    const f = await peer.waitFrames(3);
    peer.close();
    expect(f.map((x) => [x.header.status, x.header.flags])).toEqual([
      [Status.OK, Flag.REPLY],
      [Status.OK, Flag.REPLY | Flag.EXISTED],
      [Status.OK, Flag.REPLY],
    ]);
    expect(f[2]?.payload.subarray(32).toString()).toBe("aaaa");
  });

  it("exports Prometheus metrics on its own port", async () => {
    const s = await server({ metricsPort: 0, capacityBytes: 256 * KiB });
    const c = client(s);
    for (let i = 0; i < 6; i++) await c.put(key(i), bytes(64 * KiB, i));
    await c.get(key(5));
    await c.get(key("missing"));
    await c.longestPrefix([key(5), key(4)]);
    const res = await fetch(`http://127.0.0.1:${s.metricsPort}/metrics`);
    expect(res.status).toBe(200);
    const text = await res.text();
    const metric = (line: string) => Number(text.split("\n").find((l) => l.startsWith(line))?.split(" ").pop());
    expect(metric("switchyard_kvcache_server_hits_total")).toBe(1);
    expect(metric("switchyard_kvcache_server_misses_total")).toBe(1);
    expect(metric("switchyard_kvcache_server_bytes_in_total")).toBe(6 * 64 * KiB);
    expect(metric("switchyard_kvcache_server_bytes_out_total")).toBe(64 * KiB);
    expect(metric("switchyard_kvcache_server_evictions_total")).toBe(2);
    expect(metric("switchyard_kvcache_server_objects")).toBe(4);
    expect(metric("switchyard_kvcache_server_bytes_used")).toBe(4 * 64 * KiB);
    expect(metric("switchyard_kvcache_server_capacity_bytes")).toBe(256 * KiB);
    expect(metric('switchyard_kvcache_server_requests_total{op="put",status="ok"}')).toBe(6);
    expect(metric('switchyard_kvcache_server_request_duration_seconds_count{op="get"}')).toBe(2);
    expect(metric("switchyard_kvcache_server_connections")).toBeGreaterThanOrEqual(1);
    expect((await fetch(`http://127.0.0.1:${s.metricsPort}/healthz`)).status).toBe(200);
  });

  it("shuts down gracefully: queued replies are delivered, then connections close and new ones are refused", async () => {
    const s = await startServer({ capacityBytes: 64 * 1024 * KiB });
    const c = new L2Client({ servers: [addr(s)], logger: quietLogger });
    const v = bytes(16 * 1024 * KiB, 5);
    await c.put(key("big"), v);
    const gets = [c.get(key("big")), c.get(key("big"))];
    // Close as soon as the server has taken both requests (their 32 MiB of replies are still queued).
    while (s.stats().hits < 2) await new Promise((r) => setImmediate(r));
    expect(s.stats().connections).toBeGreaterThan(0);
    await s.close();
    const got = await Promise.all(gets);
    expect(got.every((g) => g !== undefined && Buffer.from(g).equals(v))).toBe(true);
    await expect(RawPeer.connect(s.endpoint.port)).rejects.toThrow();
    await c.close();
  });

  it("reuses evicted values' memory for new PUTs, but never while a reply still sends it", async () => {
    const MiB = 1024 * 1024;
    const s = await server({ capacityBytes: 32 * MiB });
    // A reader that does not read: its 32 MiB GET reply stays queued in the server.
    const v1 = bytes(32 * MiB, 1);
    const c = client(s);
    await c.put(key(1), v1);
    const slow = await RawPeer.connect(s.endpoint.port);
    slow.socket.pause();
    slow.sendFrame({ op: Op.GET, requestId: 77, keys: [keyToBytes(key(1))] });
    while (s.store.stats().hits < 1) await new Promise((r) => setTimeout(r, 5));
    // Evict key 1, then churn: each PUT evicts the previous value and frees its memory for the next.
    for (let i = 2; i <= 5; i++) await c.put(key(i), bytes(32 * MiB, i));
    expect(s.store.has(key(1))).toBe(false);
    expect(s.pool.stats().reused).toBeGreaterThan(0);
    // Now read the old reply: intact, so key 1's buffer was not handed out meanwhile.
    slow.socket.resume();
    const [reply] = await slow.waitFrames(1, 10_000);
    slow.close();
    expect(reply?.header.status).toBe(Status.OK);
    expect(reply?.payloadChecksum).toBe(checksum(keyToBytes(key(1)), v1));
    expect(reply?.payload.subarray(32).equals(v1)).toBe(true);
    expect(Buffer.from((await c.get(key(5))) as Uint8Array).equals(bytes(32 * MiB, 5))).toBe(true);
  });

  it("works the same with accepted sockets read through 'data' events (no handle hand-over)", async () => {
    const s = await server({ transport: new TcpTransport({ zeroCopyAccept: false }) });
    const c = client(s);
    const v = bytes(3 * 1024 * KiB, 9);
    await c.put(key(1), v);
    expect(Buffer.from((await c.get(key(1))) as Uint8Array).equals(v)).toBe(true);
    expect(await c.longestPrefix([key(1), key(2)])).toBe(1);
  });

  it("rejects an invalid configuration naming the field", async () => {
    await expect(startServer({ capacityBytes: -1 })).rejects.toThrow(/capacityBytes/);
    await expect(startServer({ maxValueBytes: 2 ** 31 })).rejects.toThrow(/maxValueBytes/);
  });

  it("closes connections beyond maxConnections", async () => {
    const s = await server({ maxConnections: 2 });
    const peers = [await RawPeer.connect(s.endpoint.port), await RawPeer.connect(s.endpoint.port)];
    const third = await RawPeer.connect(s.endpoint.port);
    await third.closed;
    peers[0]?.sendFrame({ op: Op.PING, requestId: 1 });
    expect((await (peers[0] as RawPeer).waitFrames(1))[0]?.header.status).toBe(Status.OK);
    for (const p of peers) p.close();
  });
});
