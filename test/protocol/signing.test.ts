/**
 * Edge ↔ agent request signing: what a receiver accepts and, above all, what it refuses.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { HeaderNames } from "../../protocol/headers";
import { NonceCache, signRequest, verifyRequest, type SignInput, type VerifyInput } from "../../protocol/signing";

const SECRET = "sy_ns_3_abcdefghijklmnopqrstuvwxyz012345";
const OTHER_SECRET = "sy_ns_4_ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ";
const NOW = 1_750_000_000_000;
const enc = new TextEncoder();

function baseInput(over: Partial<SignInput> = {}): SignInput {
  return {
    nodeId: "gpu-1",
    keyVersion: 3,
    secret: SECRET,
    method: "POST",
    path: "/v1/chat/completions?x=1",
    body: enc.encode('{"model":"m","messages":[{"role":"user","content":"hi"}]}'),
    timestampMs: NOW,
    nonce: "nonce-1",
    ...over,
  };
}

/** What the receiver sees: the headers as sent, plus the request line and body it received. */
interface Received {
  method: string;
  path: string;
  body: Uint8Array;
  headers: Record<string, string>;
}

async function signed(over: Partial<SignInput> = {}): Promise<Received> {
  const input = baseInput(over);
  return { method: input.method, path: input.path, body: input.body, headers: await signRequest(input) };
}

function verify(r: Received, over: Partial<VerifyInput> = {}) {
  const h = new Headers(r.headers);
  return verifyRequest({
    method: r.method,
    path: r.path,
    body: r.body,
    headers: h,
    secretFor: (node, version) => (node === "gpu-1" && version === 3 ? SECRET : undefined),
    nowMs: NOW,
    ...over,
  });
}

describe("signRequest / verifyRequest", () => {
  it("round-trips and reports who signed", async () => {
    const r = await signed();
    expect(r.headers[HeaderNames.signature]).toMatch(/^v1=[0-9a-f]{64}$/);
    const v = await verify(r);
    expect(v).toEqual({ ok: true, nodeId: "gpu-1", keyVersion: 3, nonce: "nonce-1", timestampMs: NOW });
  });

  it("generates a fresh nonce and the current time when none is given", async () => {
    const a = await signRequest({ ...baseInput(), nonce: undefined, timestampMs: undefined });
    const b = await signRequest({ ...baseInput(), nonce: undefined, timestampMs: undefined });
    expect(a[HeaderNames.sigNonce]).not.toBe(b[HeaderNames.sigNonce]);
    expect(Math.abs(Number(a[HeaderNames.sigTimestamp]) - Date.now())).toBeLessThan(5_000);
  });

  it("method case does not matter but the method does", async () => {
    const r = await signed();
    expect((await verify({ ...r, method: "post" })).ok).toBe(true);
    expect(await verify({ ...r, method: "PUT" })).toEqual({ ok: false, reason: "bad_signature" });
  });

  it("refuses any change to path, query, or body", async () => {
    const r = await signed();
    expect(await verify({ ...r, path: "/v1/completions?x=1" })).toEqual({ ok: false, reason: "bad_signature" });
    expect(await verify({ ...r, path: "/v1/chat/completions?x=2" })).toEqual({ ok: false, reason: "bad_signature" });
    expect(await verify({ ...r, path: "/v1/chat/completions" })).toEqual({ ok: false, reason: "bad_signature" });
    const body = new Uint8Array(r.body);
    body[body.length - 2] = body[body.length - 2]! ^ 1;
    expect(await verify({ ...r, body })).toEqual({ ok: false, reason: "bad_signature" });
    expect(await verify({ ...r, body: r.body.subarray(0, r.body.length - 1) })).toEqual({ ok: false, reason: "bad_signature" });
  });

  it("refuses a changed timestamp, nonce or node id header", async () => {
    const r = await signed();
    const tamper = (name: string, value: string) => verify({ ...r, headers: { ...r.headers, [name]: value } });
    expect(await tamper(HeaderNames.sigTimestamp, String(NOW + 1))).toEqual({ ok: false, reason: "bad_signature" });
    expect(await tamper(HeaderNames.sigNonce, "nonce-2")).toEqual({ ok: false, reason: "bad_signature" });
    // Another node with the same secret (the lookup says yes) still cannot reuse the signature.
    const anyNode = { secretFor: () => SECRET };
    expect(await verify({ ...r, headers: { ...r.headers, [HeaderNames.sigNode]: "gpu-2" } }, anyNode)).toEqual({ ok: false, reason: "bad_signature" });
    // Unknown node: no secret.
    expect(await tamper(HeaderNames.sigNode, "gpu-2")).toEqual({ ok: false, reason: "unknown_key_version" });
  });

  it("binds the tenant header: a request re-addressed to another tenant does not verify", async () => {
    const body = enc.encode("{}");
    const headers = await signRequest({ nodeId: "gpu-1", keyVersion: 1, secret: SECRET, method: "POST", path: "/v1/chat/completions", body, tenant: "acme", timestampMs: NOW, nonce: "n-tenant" });
    expect(headers[HeaderNames.tenant]).toBe("acme");
    const check = (h: Record<string, string>) =>
      verifyRequest({ method: "POST", path: "/v1/chat/completions", body, headers: new Headers(h), nowMs: NOW, secretFor: () => SECRET });
    expect((await check(headers)).ok).toBe(true);
    expect(await check({ ...headers, [HeaderNames.tenant]: "globex" })).toEqual({ ok: false, reason: "bad_signature" });
    const { [HeaderNames.tenant]: _dropped, ...withoutTenant } = headers;
    expect(await check(withoutTenant)).toEqual({ ok: false, reason: "bad_signature" });
  });

  it("binds the priority header: one changed, added or removed in transit does not verify", async () => {
    const check = (r: Received) => verify(r);
    const marked = await signed({ tenant: "acme", priority: "normal" });
    expect(marked.headers[HeaderNames.priority]).toBe("normal");
    expect((await check(marked)).ok).toBe(true);
    expect(await check({ ...marked, headers: { ...marked.headers, [HeaderNames.priority]: "high" } })).toEqual({ ok: false, reason: "bad_signature" });
    expect(await check({ ...marked, headers: { ...marked.headers, [HeaderNames.priority]: "" } })).toEqual({ ok: false, reason: "bad_signature" });
    const { [HeaderNames.priority]: _dropped, ...unmarked } = marked.headers;
    expect(await check({ ...marked, headers: unmarked })).toEqual({ ok: false, reason: "bad_signature" });
    // Signed without a mark (heartbeats, older edges): verifies as before, and a mark added does not.
    const plain = await signed({ tenant: "acme" });
    expect(plain.headers).not.toHaveProperty(HeaderNames.priority);
    expect((await check(plain)).ok).toBe(true);
    expect(await check({ ...plain, headers: { ...plain.headers, [HeaderNames.priority]: "high" } })).toEqual({ ok: false, reason: "bad_signature" });
  });

  it("says unknown_node when the receiver does not know the signing node at all", async () => {
    const body = enc.encode("{}");
    const headers = await signRequest({ nodeId: "gpu-9", keyVersion: 1, secret: SECRET, method: "POST", path: "/x", body, timestampMs: NOW });
    const verdict = await verifyRequest({ method: "POST", path: "/x", body, headers: new Headers(headers), nowMs: NOW, secretFor: () => null });
    expect(verdict).toEqual({ ok: false, reason: "unknown_node" });
  });

  it("refuses timestamps outside the window on either side, accepts the edges", async () => {
    const r = await signed();
    expect((await verify(r, { nowMs: NOW + 30_000 })).ok).toBe(true);
    expect((await verify(r, { nowMs: NOW - 30_000 })).ok).toBe(true);
    expect(await verify(r, { nowMs: NOW + 30_001 })).toEqual({ ok: false, reason: "expired_timestamp" });
    expect(await verify(r, { nowMs: NOW - 30_001 })).toEqual({ ok: false, reason: "expired_timestamp" });
    expect(await verify(r, { nowMs: NOW + 5_001, windowMs: 5_000 })).toEqual({ ok: false, reason: "expired_timestamp" });
  });

  it("refuses a wrong or unknown key version", async () => {
    // Signed with version 3's secret but claiming version 4: the receiver uses 4's secret.
    const r = await signed({ keyVersion: 4 });
    const both = { secretFor: (_n: string, v: number) => (v === 3 ? SECRET : v === 4 ? OTHER_SECRET : undefined) };
    expect(await verify(r, both)).toEqual({ ok: false, reason: "bad_signature" });
    expect(await verify(r)).toEqual({ ok: false, reason: "unknown_key_version" });
    // Right version, wrong secret.
    const wrong = await signed({ secret: OTHER_SECRET });
    expect(await verify(wrong)).toEqual({ ok: false, reason: "bad_signature" });
  });

  it("refuses missing and malformed headers", async () => {
    const r = await signed();
    for (const name of [HeaderNames.sigNode, HeaderNames.sigTimestamp, HeaderNames.sigNonce, HeaderNames.sigKeyVersion, HeaderNames.signature]) {
      const headers = { ...r.headers };
      delete headers[name];
      expect(await verify({ ...r, headers }), name).toEqual({ ok: false, reason: "missing_signature" });
    }
    expect(await verify({ ...r, headers: {} })).toEqual({ ok: false, reason: "missing_signature" });
    const mac = r.headers[HeaderNames.signature]!.slice(3);
    const bad: Array<[string, string]> = [
      [HeaderNames.signature, mac], // no scheme
      [HeaderNames.signature, `v2=${mac}`],
      [HeaderNames.signature, `v1=${mac.slice(0, 63)}`], // odd length
      [HeaderNames.signature, `v1=${mac.slice(0, 62)}`], // too short
      [HeaderNames.signature, `v1=${mac}00`], // too long
      [HeaderNames.signature, `v1=${"zz"}${mac.slice(2)}`], // not hex
      [HeaderNames.sigTimestamp, "soon"],
      [HeaderNames.sigTimestamp, "1.5"],
      [HeaderNames.sigKeyVersion, "three"],
      [HeaderNames.sigNonce, "n".repeat(129)],
      [HeaderNames.sigNode, "g".repeat(129)],
    ];
    for (const [name, value] of bad) {
      expect(await verify({ ...r, headers: { ...r.headers, [name]: value } }), `${name}: ${value}`).toEqual({ ok: false, reason: "malformed_signature" });
    }
  });

  it("accepts an upper-case hex signature (same bytes)", async () => {
    const r = await signed();
    const upper = `v1=${r.headers[HeaderNames.signature]!.slice(3).toUpperCase()}`;
    expect((await verify({ ...r, headers: { ...r.headers, [HeaderNames.signature]: upper } })).ok).toBe(true);
  });

  it("refuses a replay through NonceCache, but only after the signature checks out", async () => {
    const cache = new NonceCache();
    const remember = { rememberNonce: (n: string, nonce: string, ts: number) => cache.remember(n, nonce, ts, NOW) };
    const r = await signed();
    // A forged request with the same nonce must not burn the nonce.
    const forged = { ...r, body: enc.encode("{}") };
    expect(await verify(forged, remember)).toEqual({ ok: false, reason: "bad_signature" });
    expect(cache.size).toBe(0);
    expect((await verify(r, remember)).ok).toBe(true);
    expect(await verify(r, remember)).toEqual({ ok: false, reason: "replayed_nonce" });
    // Same nonce from another node is a different request.
    const other = await signed({ nodeId: "gpu-2" });
    expect((await verify(other, { ...remember, secretFor: () => SECRET })).ok).toBe(true);
  });

  it("property: verify(sign(x)) holds and one flipped body byte breaks it", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ minLength: 1, maxLength: 512 }),
        fc.webPath(),
        fc.constantFrom("GET", "POST", "DELETE"),
        fc.nat(),
        fc.integer({ min: 0, max: 7 }),
        async (body, rawPath, method, pos, bit) => {
          const path = rawPath.startsWith("/") ? rawPath : `/${rawPath}`;
          const r = await signed({ body, path, method });
          expect((await verify(r)).ok).toBe(true);
          const flipped = new Uint8Array(body);
          flipped[pos % body.length] = flipped[pos % body.length]! ^ (1 << bit);
          expect(await verify({ ...r, body: flipped })).toEqual({ ok: false, reason: "bad_signature" });
        },
      ),
      { numRuns: 150 },
    );
  });
});

describe("NonceCache", () => {
  it("remembers per node and refuses a repeat", () => {
    const c = new NonceCache(30_000, 10);
    expect(c.remember("a", "n1", NOW, NOW)).toBe(true);
    expect(c.remember("a", "n1", NOW, NOW)).toBe(false);
    expect(c.remember("b", "n1", NOW, NOW)).toBe(true);
    expect(c.size).toBe(2);
  });

  it("forgets entries older than two windows when it prunes", () => {
    const c = new NonceCache(1_000, 100);
    c.remember("a", "old", NOW, NOW);
    c.remember("a", "new", NOW + 1_500, NOW + 1_500);
    c.prune(NOW + 2_001);
    expect(c.size).toBe(1);
    expect(c.remember("a", "new", NOW + 1_500, NOW + 2_001)).toBe(false);
    expect(c.remember("a", "old", NOW, NOW + 2_001)).toBe(true);
  });

  it("never grows past its cap under a flood of fresh nonces, and a dropped nonce still cannot be replayed", () => {
    const cap = 1_000;
    const c = new NonceCache(30_000, cap);
    let max = 0;
    // One signed request per millisecond for 20 s: all inside the window, 20x the cap.
    for (let i = 0; i < 20_000; i++) {
      expect(c.remember("n", `flood-${i}`, NOW + i, NOW + i)).toBe(true);
      max = Math.max(max, c.size);
    }
    expect(max).toBe(cap);
    // The most recent nonces are still refused (the oldest were dropped first).
    expect(c.remember("n", "flood-19999", NOW + 19_999, NOW + 20_000)).toBe(false);
    expect(c.remember("n", `flood-${20_000 - cap}`, NOW + 20_000 - cap, NOW + 20_000)).toBe(false);
    // The dropped ones too, though the cache no longer holds them: their timestamps are at or below the floor.
    expect(c.remember("n", "flood-0", NOW, NOW + 20_000)).toBe(false);
    expect(c.remember("n", `flood-${20_000 - cap - 1}`, NOW + 20_000 - cap - 1, NOW + 20_000)).toBe(false);
    // Fresh requests keep flowing, and another node is not held back by this one's floor.
    expect(c.remember("n", "fresh", NOW + 20_001, NOW + 20_001)).toBe(true);
    expect(c.remember("other", "old-but-fine", NOW, NOW + 20_001)).toBe(true);
  });

  it("a flood within one millisecond fails closed rather than forgetting live nonces", () => {
    const c = new NonceCache(30_000, 10);
    for (let i = 0; i < 10; i++) expect(c.remember("n", `same-ms-${i}`, NOW, NOW)).toBe(true);
    expect(c.remember("n", "same-ms-10", NOW, NOW)).toBe(true); // drops same-ms-0, floor = NOW
    expect(c.remember("n", "same-ms-0", NOW, NOW)).toBe(false); // the replay of the dropped one
    expect(c.remember("n", "same-ms-11", NOW, NOW)).toBe(false); // refused, not remembered-and-forgotten
    expect(c.remember("n", "next-ms", NOW + 1, NOW + 1)).toBe(true);
  });

  it("forgets a node's floor once it is two windows old", () => {
    const c = new NonceCache(1_000, 2);
    c.remember("n", "a", NOW, NOW);
    c.remember("n", "b", NOW, NOW);
    c.remember("n", "c", NOW + 1, NOW + 1);
    expect(c.remember("n", "late", NOW, NOW + 1)).toBe(false);
    c.prune(NOW + 2_100);
    expect(c.remember("n", "late", NOW + 2_050, NOW + 2_100)).toBe(true);
  });

  it("a full default-size cache stays cheap per nonce under sustained load", () => {
    // Default cap (200k). Once full of live nonces, each new one must not rescan the whole map.
    const c = new NonceCache();
    for (let i = 0; i < 200_000; i++) c.remember("n", `fill-${i}`, NOW, NOW);
    const t0 = performance.now();
    for (let i = 0; i < 5_000; i++) c.remember("n", `more-${i}`, NOW, NOW + (i % 900));
    const ms = performance.now() - t0;
    expect(c.size).toBe(200_000);
    // A full scan per nonce is ~10^9 map visits here (seconds); bounded pruning is milliseconds.
    expect(ms).toBeLessThan(1_000);
  });

  it("a full cache prunes expired entries before evicting live ones", () => {
    const c = new NonceCache(1_000, 3);
    c.remember("n", "stale-1", NOW, NOW);
    c.remember("n", "stale-2", NOW, NOW);
    c.remember("n", "live", NOW + 2_500, NOW + 2_500);
    // Full; both stale entries are past two windows, so they go and "live" survives.
    c.remember("n", "x", NOW + 2_500, NOW + 2_500);
    expect(c.size).toBe(2);
    expect(c.remember("n", "live", NOW + 2_500, NOW + 2_500)).toBe(false);
  });
});
