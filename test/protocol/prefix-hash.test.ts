import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { hashBlock, namespaceSeed, prefixBlockHashes, renderChat, renderCompletionPrompt } from "../../protocol/prefix-hash";

const B = 16;

describe("prefix block hashes", () => {
  it("two texts share their first k block hashes exactly when they share their first k blocks", () => {
    fc.assert(
      fc.property(fc.string({ minLength: 0, maxLength: 200 }), fc.string({ maxLength: 80 }), fc.string({ maxLength: 80 }), (common, x, y) => {
        const seed = namespaceSeed("t:acme:m");
        const a = prefixBlockHashes(common + x, seed, B);
        const b = prefixBlockHashes(common + y, seed, B);
        const sharedBlocks = Math.floor(common.length / B);
        for (let i = 0; i < Math.min(sharedBlocks, a.length, b.length); i++) expect(a[i]).toBe(b[i]);
        // Beyond the common text, a block equals only if its text (and everything before) does.
        const ta = common + x;
        const tb = common + y;
        for (let i = 0; i < Math.min(a.length, b.length); i++) {
          const sameText = ta.slice(0, (i + 1) * B) === tb.slice(0, (i + 1) * B);
          expect(a[i] === b[i]).toBe(sameText);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("hashes only full blocks and stays a safe integer", () => {
    const h = prefixBlockHashes("x".repeat(5 * B + 3), 1, B);
    expect(h).toHaveLength(5);
    for (const v of h) expect(Number.isSafeInteger(v) && v >= 0).toBe(true);
  });

  it("never matches across namespaces", () => {
    const text = "You are a helpful assistant. ".repeat(20);
    const a = prefixBlockHashes(text, namespaceSeed("t:acme:m"), B);
    const b = prefixBlockHashes(text, namespaceSeed("t:globex:m"), B);
    expect(a.some((h, i) => h === b[i])).toBe(false);
  });

  it("spreads: a million distinct blocks hash to distinct values", () => {
    const seen = new Set<number>();
    for (let i = 0; i < 1_000_000; i++) {
      const s = `block-${i}-padding-to-sixteen`;
      seen.add(hashBlock(s, 0, s.length, 42));
    }
    expect(seen.size).toBe(1_000_000);
  });
});

describe("canonical prompt rendering", () => {
  it("a conversation's next turn extends the previous rendering", () => {
    const turn1 = [
      { role: "system", content: "Be brief." },
      { role: "user", content: "Hi" },
    ];
    const turn2 = [...turn1, { role: "assistant", content: "Hello!" }, { role: "user", content: "How are you?" }];
    expect(renderChat(turn2).startsWith(renderChat(turn1))).toBe(true);
  });

  it("distinguishes roles and reads text parts", () => {
    expect(renderChat([{ role: "user", content: "x" }])).not.toBe(renderChat([{ role: "system", content: "x" }]));
    expect(renderChat([{ role: "user", content: [{ type: "text", text: "a" }, { type: "text", text: "b" }] }])).toBe(renderChat([{ role: "user", content: "ab" }]));
  });

  it("renders completion prompts so that token-id prefixes stay prefixes", () => {
    expect(renderCompletionPrompt("abc")).toBe("abc");
    expect(renderCompletionPrompt(["abc"])).toBe("abc");
    expect(renderCompletionPrompt([1, 2, 3]).startsWith(renderCompletionPrompt([1, 2]))).toBe(true);
  });
});
