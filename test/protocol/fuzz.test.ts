/**
 * Property-based fuzzing (fast-check) of the parsers and hashers that untrusted bytes reach: the SSE
 * framer and event parser (the edge's stream meter, fuzzed inside workerd in
 * test/worker/stream-meter-fuzz.test.ts, is built on them), the edge's prompt
 * prefix hasher and the agent's KV chunk keys (tenant isolation rests on both). Complements the
 * example-based sse.test.ts, prefix-hash.test.ts and kvcache/keys.test.ts; the cache-server
 * protocol is fuzzed in kvcache/l2-protocol.test.ts and kvcache/server-protocol.test.ts.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { chunkKeys } from "../../dataplane/kvcache/keys";
import { namespaceSeed, prefixBlockHashes, renderChat } from "../../protocol/prefix-hash";
import { parseSseEvent, SseFramer } from "../../protocol/sse";
import { split, sseText } from "../support/sse-arbitraries";

describe("SSE framing and parsing (fuzz)", () => {
  it("the framer loses and invents nothing: events + rest rebuild any input, however it is chunked", () => {
    fc.assert(
      fc.property(sseText, fc.array(fc.nat(), { maxLength: 8 }), (text, cuts) => {
        const f = new SseFramer();
        const events: string[] = [];
        for (const part of split(text, cuts)) events.push(...f.push(part));
        const rest = f.rest();
        expect(events.join("") + rest).toBe(text);
        // Each event ends with a blank line (two line ends), and none is empty.
        for (const e of events) expect(e).toMatch(/(\r\n|\r|\n)(\r\n|\r|\n)$/);
        // Chunking does not change the events (a trailing lone \r may wait for more in both).
        const whole = new SseFramer();
        expect(whole.push(text)).toEqual(events);
      }),
      { numRuns: 500 },
    );
  });

  it("parseSseEvent never throws and reads back data it was given, on any block", () => {
    fc.assert(
      fc.property(sseText, (block) => {
        const ev = parseSseEvent(block);
        expect(ev.data === undefined || typeof ev.data === "string").toBe(true);
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.array(fc.string().filter((s) => !/[\r\n]/.test(s)), { minLength: 1, maxLength: 5 }), (lines) => {
        const block = `${lines.map((l) => `data: ${l}`).join("\n")}\n\n`;
        expect(parseSseEvent(block).data).toBe(lines.join("\n"));
      }),
    );
  });
});

describe("prompt prefix hashing (fuzz)", () => {
  const B = 16;
  const tenant = fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,20}$/);

  it("is deterministic, and the hashes of a prefix are a prefix of the hashes (the chain property)", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme", maxLength: 300 }), fc.nat(), tenant, (text, cut, t) => {
        const seed = namespaceSeed(`t:${t}:m`);
        const all = prefixBlockHashes(text, seed, B);
        expect(prefixBlockHashes(text, seed, B)).toEqual(all);
        const prefix = text.slice(0, cut % (text.length + 1));
        const head = prefixBlockHashes(prefix, seed, B);
        expect(all.slice(0, head.length)).toEqual(head);
        expect(head.length).toBe(Math.floor(prefix.length / B));
      }),
      { numRuns: 300 },
    );
  });

  it("keeps tenants apart: two tenants' hashes of the same text share no value at any position", () => {
    fc.assert(
      fc.property(fc.string({ minLength: B, maxLength: 400 }), tenant, tenant, fc.string({ minLength: 1, maxLength: 30 }), (text, a, b, model) => {
        fc.pre(a !== b);
        const ha = prefixBlockHashes(text, namespaceSeed(`t:${a}:${model}`), B);
        const hb = new Set(prefixBlockHashes(text, namespaceSeed(`t:${b}:${model}`), B));
        expect(ha.some((h) => hb.has(h))).toBe(false);
      }),
      { numRuns: 300 },
    );
  });

  it("a conversation's next turn extends its rendering, so its blocks extend the previous turn's", () => {
    const message = fc.record({ role: fc.constantFrom("system", "user", "assistant", "tool"), content: fc.oneof(fc.string({ maxLength: 80 }), fc.array(fc.record({ type: fc.constant("text"), text: fc.string({ maxLength: 20 }) }), { maxLength: 3 })) });
    fc.assert(
      fc.property(fc.array(message, { maxLength: 6 }), message, (history, next) => {
        const before = renderChat(history);
        const after = renderChat([...history, next]);
        expect(after.startsWith(before)).toBe(true);
        const seed = namespaceSeed("t:x:m");
        const hb = prefixBlockHashes(before, seed, B);
        expect(prefixBlockHashes(after, seed, B).slice(0, hb.length)).toEqual(hb);
      }),
      { numRuns: 300 },
    );
  });
});

describe("KV chunk keys (fuzz)", () => {
  const tokens = fc.array(fc.nat({ max: 2 ** 32 - 1 }), { maxLength: 64 });

  it("are deterministic and chained: a token prefix's keys are a prefix of the keys", () => {
    fc.assert(
      fc.property(tokens, fc.nat(), (toks, cut) => {
        const opts = { chunkTokens: 4, modelIdentity: "m", namespace: "t:a:m" };
        const keys = chunkKeys(toks, opts);
        expect(chunkKeys(Uint32Array.from(toks), opts)).toEqual(keys);
        const head = chunkKeys(toks.slice(0, cut % (toks.length + 1)), opts);
        expect(keys.slice(0, head.length)).toEqual(head);
      }),
      { numRuns: 300 },
    );
  });

  it("never let one tenant's namespace address another's KV, even with namespaces built to collide", () => {
    fc.assert(
      fc.property(fc.array(fc.nat({ max: 2 ** 32 - 1 }), { minLength: 4, maxLength: 64 }), fc.string({ maxLength: 12 }), fc.string({ maxLength: 12 }), fc.string({ minLength: 1, maxLength: 8 }), (toks, a, b, model) => {
        fc.pre(a !== b);
        const ka = chunkKeys(toks, { chunkTokens: 4, modelIdentity: model, namespace: `t:${a}:${model}` });
        const kb = new Set(chunkKeys(toks, { chunkTokens: 4, modelIdentity: model, namespace: `t:${b}:${model}` }));
        expect(ka.some((k) => kb.has(k))).toBe(false);
        // Moving bytes between model identity and namespace does not collide either (length prefixes).
        const shifted = new Set(chunkKeys(toks, { chunkTokens: 4, modelIdentity: `${model}t`, namespace: `:${a}:${model}` }));
        expect(ka.some((k) => shifted.has(k))).toBe(false);
      }),
      { numRuns: 300 },
    );
  });
});
