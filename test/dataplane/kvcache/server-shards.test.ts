/**
 * A cache server on several cores (ShardedCacheServer: worker threads, one port each) and the
 * client that routes keys to shards: every key lands on exactly its shard, the capacity is split,
 * `/metrics` sums the shards, and a shard that dies costs only its keys (misses, i.e. recompute)
 * until it is restarted.
 */
import { afterEach, describe, expect, it } from "vitest";
import { L2Client } from "../../../dataplane/kvcache/l2/l2-client";
import { keyToBytes, Op, Status, shardOf } from "../../../dataplane/kvcache/l2/protocol";
import { ShardedCacheServer } from "../../../dataplane/kvcache/server/sharded-server";
import { bytes, key, quietLogger, RawPeer, sleep } from "./l2-test-support";

const MiB = 1024 * 1024;
const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((c) => c()));
});

async function sharded(shards: number, capacityBytes: number, restartDelayMs = 200): Promise<ShardedCacheServer> {
  const s = await ShardedCacheServer.start({ port: 0, shards, capacityBytes, metricsPort: 0, logger: quietLogger, restartDelayMs });
  closers.push(() => s.close({ graceMs: 0 }));
  return s;
}

function client(s: ShardedCacheServer): L2Client {
  // Only the advertised endpoint, as agents get it from config or the edge.
  const c = new L2Client({ servers: [`127.0.0.1:${s.endpoint.port}`], logger: quietLogger, downMs: 100, maxDownMs: 200, statsRefreshMs: 0 });
  closers.push(() => c.close());
  return c;
}

const same = (a: Uint8Array | undefined, b: Uint8Array) => a !== undefined && Buffer.from(a).equals(Buffer.from(b));

async function waitUntil(cond: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > timeoutMs) throw new Error("condition not met in time");
    await sleep(20);
  }
}

describe("sharded cache server", () => {
  it("routes every key to its shard from one advertised address, splits the capacity, and sums /metrics", async () => {
    const s = await sharded(3, 30 * MiB);
    expect(new Set(s.endpoints.map((e) => e.port)).size).toBe(3);
    const c = client(s);
    const n = 60;
    await Promise.all(Array.from({ length: n }, (_, i) => c.put(key(i), bytes(64 * 1024, i + 1))));
    for (let i = 0; i < n; i++) expect(same(await c.get(key(i)), bytes(64 * 1024, i + 1))).toBe(true);
    expect(c.clientStats()).toMatchObject({ putFailures: 0, errors: 0 });
    expect(c.clientStats().servers[0]?.shards.map((h) => h.id)).toEqual(s.endpoints.map((e) => `127.0.0.1:${e.port}`));

    // Each key is held by exactly its shard: the others answer WRONG_SHARD, never store or serve it.
    const peers = await Promise.all(s.endpoints.map((e) => RawPeer.connect(e.port)));
    for (let i = 0; i < 6; i++) {
      const kb = keyToBytes(key(i));
      for (const [idx, p] of peers.entries()) {
        p.sendFrame({ op: Op.GET, requestId: 100 + i, keys: [kb] });
        const f = (await p.waitFrames(i + 1))[i];
        expect(f?.header.status).toBe(idx === shardOf(kb, 3) ? Status.OK : Status.WRONG_SHARD);
      }
    }
    for (const p of peers) p.close();

    const remote = (await c.refreshServerStats()).get(`127.0.0.1:${s.endpoint.port}`);
    expect(remote).toMatchObject({ objects: n, capacityBytes: 30 * MiB, bytesUsed: n * 64 * 1024 });
    const metrics = await (await fetch(`http://127.0.0.1:${s.metricsPort}/metrics`)).text();
    expect(metrics).toMatch(/^switchyard_kvcache_server_capacity_bytes 31457280$/m);
    expect(metrics).toMatch(new RegExp(`^switchyard_kvcache_server_objects ${n}$`, "m"));
    expect(metrics).toMatch(/^switchyard_kvcache_server_shards_up 3$/m);
  });

  it("evicts within each shard's share: a full server holds about its capacity, not shards × capacity", async () => {
    const s = await sharded(2, 8 * MiB);
    const c = client(s);
    for (let i = 0; i < 64; i++) await c.put(key(`fill-${i}`), bytes(512 * 1024, i + 1));
    const remote = (await c.refreshServerStats()).get(`127.0.0.1:${s.endpoint.port}`);
    expect(remote?.capacityBytes).toBe(8 * MiB);
    expect(remote?.bytesUsed).toBeLessThanOrEqual(8 * MiB);
    expect(remote?.evictions).toBeGreaterThan(40);
  });

  it("a dead shard costs only its keys (misses, never wrong data) and serves again once restarted", async () => {
    const s = await sharded(2, 32 * MiB, 300);
    const c = client(s);
    const keys = Array.from({ length: 40 }, (_, i) => key(`d${i}`));
    await Promise.all(keys.map((k, i) => c.put(k, bytes(32 * 1024, i + 1))));
    const onDead = keys.filter((k) => shardOf(keyToBytes(k), 2) === 1);
    const onLive = keys.filter((k) => shardOf(keyToBytes(k), 2) === 0);
    expect(onDead.length).toBeGreaterThan(5);

    await s.terminateShard(1);
    const got = await Promise.all(keys.map((k) => c.get(k)));
    keys.forEach((k, i) => {
      if (onDead.includes(k)) expect(got[i]).toBeUndefined();
      else expect(same(got[i], bytes(32 * 1024, i + 1))).toBe(true);
    });
    expect(c.clientStats().servers[0]?.shards.map((h) => h.up)).toEqual([true, false]);
    expect(onLive.length + onDead.length).toBe(keys.length);

    // Restarted empty on the same port: the client finds it again after its down period.
    await waitUntil(async () => {
      await c.put(onDead[0] as string, bytes(1000, 7));
      return same(await c.get(onDead[0] as string), bytes(1000, 7));
    });
    expect(await c.get(onDead[1] as string)).toBeUndefined(); // its old contents are gone
    const metrics = await (await fetch(`http://127.0.0.1:${s.metricsPort}/metrics`)).text();
    expect(metrics).toMatch(/^switchyard_kvcache_server_shard_restarts_total 1$/m);
  });

  it("longestPrefix across shards: keys grouped per shard, the prefix ending at the first gap", async () => {
    const s = await sharded(3, 16 * MiB);
    const c = client(s);
    const keys = Array.from({ length: 30 }, (_, i) => key(`p${i}`));
    await Promise.all(keys.slice(0, 21).map((k) => c.put(k, bytes(100, 1))));
    expect(await c.longestPrefix(keys)).toBe(21);
    expect(await c.longestPrefix(keys.slice(0, 10))).toBe(10);
  });
});
