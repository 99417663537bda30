/**
 * Chunk keys: the chained SHA-256 format, determinism, isolation by model and namespace, the prefix
 * relation, and model identities (file digest cached in a sidecar, names at revisions).
 */
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chunkKeys, DEFAULT_CHUNK_TOKENS, KV_KEY_DOMAIN, modelIdentityFromFile, modelIdentityFromName } from "../../../dataplane/kvcache/keys";

const M = "sha256:" + "ab".repeat(32);
const NS = "t:acme:llama-3-8b";
const seq = (n: number, from = 0) => Array.from({ length: n }, (_, i) => (from + i * 7919) % 128_256);

describe("chunkKeys", () => {
  it("follows the documented format: key_0 over domain, length-prefixed model and namespace; key_i over key_{i-1}", () => {
    const tokens = seq(2 * 256 + 17);
    const keys = chunkKeys(tokens, { modelIdentity: M, namespace: NS });
    expect(keys).toHaveLength(2); // the 17-token tail is not keyed
    const u32 = (xs: number[]) => {
      const b = Buffer.alloc(xs.length * 4);
      xs.forEach((x, i) => b.writeUInt32LE(x, i * 4));
      return b;
    };
    const lp = (s: string) => {
      const b = Buffer.from(s, "utf8");
      const l = Buffer.alloc(4);
      l.writeUInt32LE(b.length);
      return Buffer.concat([l, b]);
    };
    const k0 = createHash("sha256").update(Buffer.concat([Buffer.from(KV_KEY_DOMAIN), lp(M), lp(NS), u32(tokens.slice(0, 256))])).digest();
    const k1 = createHash("sha256").update(Buffer.concat([k0, u32(tokens.slice(256, 512))])).digest();
    expect(keys).toEqual([k0.toString("hex"), k1.toString("hex")]);
    expect(keys[0]).toMatch(/^[0-9a-f]{64}$/);
  });

  it("is deterministic and accepts number[] and Uint32Array alike", () => {
    const tokens = seq(1000, 5);
    const a = chunkKeys(tokens, { modelIdentity: M, namespace: NS });
    const b = chunkKeys(Uint32Array.from(tokens), { modelIdentity: M, namespace: NS });
    // A Uint32Array view at an offset into a larger buffer.
    const big = new Uint32Array(1003);
    big.set(tokens, 3);
    const c = chunkKeys(big.subarray(3), { modelIdentity: M, namespace: NS });
    expect(b).toEqual(a);
    expect(c).toEqual(a);
    expect(chunkKeys(tokens, { modelIdentity: M, namespace: NS, chunkTokens: DEFAULT_CHUNK_TOKENS })).toEqual(a);
  });

  it("gives disjoint keys for another namespace or another model", () => {
    const tokens = seq(256 * 6);
    const base = new Set(chunkKeys(tokens, { modelIdentity: M, namespace: NS }));
    for (const other of [
      chunkKeys(tokens, { modelIdentity: M, namespace: "t:other:llama-3-8b" }),
      chunkKeys(tokens, { modelIdentity: M, namespace: "" }),
      chunkKeys(tokens, { modelIdentity: "sha256:" + "cd".repeat(32), namespace: NS }),
      // Length prefixes: moving a character between model and namespace changes the keys.
      chunkKeys(tokens, { modelIdentity: M + "t", namespace: ":acme:llama-3-8b" }),
    ]) {
      expect(other).toHaveLength(6);
      for (const k of other) expect(base.has(k)).toBe(false);
    }
  });

  it("keys a prefix with a prefix of the keys, and one changed token changes its chunk's key and all after", () => {
    fc.assert(
      fc.property(fc.array(fc.nat({ max: 0xffff_ffff }), { minLength: 0, maxLength: 40 * 8 }), fc.nat({ max: 40 * 8 }), fc.integer({ min: 1, max: 40 }), (tokens, cut, chunkTokens) => {
        const opts = { modelIdentity: M, namespace: NS, chunkTokens };
        const all = chunkKeys(tokens, opts);
        const prefix = chunkKeys(tokens.slice(0, cut), opts);
        expect(all.slice(0, prefix.length)).toEqual(prefix);
        expect(all).toHaveLength(Math.floor(tokens.length / chunkTokens));
        if (cut < tokens.length) {
          const changed = [...tokens];
          changed[cut] = ((changed[cut] as number) + 1) >>> 0;
          const k2 = chunkKeys(changed, opts);
          const firstChanged = Math.floor(cut / chunkTokens);
          expect(k2.slice(0, firstChanged)).toEqual(all.slice(0, firstChanged));
          for (let i = firstChanged; i < all.length; i++) expect(k2[i]).not.toBe(all[i]);
        }
      }),
      { numRuns: 200 },
    );
  });

  it("refuses tokens that are not u32 integers and bad options", () => {
    const bad = seq(256);
    bad[10] = -1;
    expect(() => chunkKeys(bad, { modelIdentity: M, namespace: NS })).toThrow(RangeError);
    bad[10] = 1.5;
    expect(() => chunkKeys(bad, { modelIdentity: M, namespace: NS })).toThrow(RangeError);
    bad[10] = 2 ** 32;
    expect(() => chunkKeys(bad, { modelIdentity: M, namespace: NS })).toThrow(RangeError);
    expect(() => chunkKeys(seq(10), { modelIdentity: M, namespace: NS, chunkTokens: 0 })).toThrow(RangeError);
    expect(() => chunkKeys(seq(10), { modelIdentity: "", namespace: NS })).toThrow(RangeError);
    expect(chunkKeys([], { modelIdentity: M, namespace: NS })).toEqual([]);
  });

  it("keys a 32k-token prompt quickly", () => {
    const tokens = Uint32Array.from(seq(32_768));
    const t0 = performance.now();
    for (let i = 0; i < 20; i++) chunkKeys(tokens, { modelIdentity: M, namespace: NS });
    const perPrompt = (performance.now() - t0) / 20;
    expect(perPrompt).toBeLessThan(20); // ~0.3 ms on a laptop; generous for CI
  });
});

describe("model identities", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "sy-kvkeys-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("hashes a file's contents once and records the digest in a sidecar keyed by size and mtime", async () => {
    const path = join(dir, "model.gguf");
    const body = Buffer.alloc(3 * 1024 * 1024 + 5, 7);
    await writeFile(path, body);
    const id = await modelIdentityFromFile(path);
    expect(id).toBe(`sha256:${createHash("sha256").update(body).digest("hex")}`);
    const sidecar = JSON.parse(await readFile(`${path}.sha256`, "utf8"));
    const st = await stat(path, { bigint: true });
    expect(sidecar).toEqual({ v: 1, size: String(st.size), mtimeNs: String(st.mtimeNs), sha256: id.slice(7) });
    expect(await modelIdentityFromFile(path)).toBe(id);

    // Another size: hashed again, sidecar rewritten.
    await writeFile(path, Buffer.concat([body, Buffer.from("x")]));
    const id2 = await modelIdentityFromFile(path);
    expect(id2).not.toBe(id);
    expect(JSON.parse(await readFile(`${path}.sha256`, "utf8")).sha256).toBe(id2.slice(7));
  });

  it("trusts a sidecar that matches size and mtime (the file is not read again)", async () => {
    const path = join(dir, "big.gguf");
    await writeFile(path, "weights");
    const st = await stat(path, { bigint: true });
    const fake = "0".repeat(64);
    await writeFile(`${path}.sha256`, JSON.stringify({ v: 1, size: String(st.size), mtimeNs: String(st.mtimeNs), sha256: fake }));
    expect(await modelIdentityFromFile(path)).toBe(`sha256:${fake}`);
    // Touching the file (same size, new mtime) invalidates the sidecar.
    const later = new Date(Date.now() + 60_000);
    await utimes(path, later, later);
    expect(await modelIdentityFromFile(path)).toBe(`sha256:${createHash("sha256").update("weights").digest("hex")}`);
  });

  it("names models unambiguously by name and revision", () => {
    const a = modelIdentityFromName("meta-llama/Llama-3.1-8B-Instruct", "0e9e39f");
    expect(a).toBe(modelIdentityFromName("meta-llama/Llama-3.1-8B-Instruct", "0e9e39f"));
    expect(a).not.toBe(modelIdentityFromName("meta-llama/Llama-3.1-8B-Instruct", "5206a32"));
    expect(modelIdentityFromName("a@b", "c")).not.toBe(modelIdentityFromName("a", "b@c"));
    expect(() => modelIdentityFromName("m", "")).toThrow();
    expect(() => modelIdentityFromName("", "r")).toThrow();
  });
});
