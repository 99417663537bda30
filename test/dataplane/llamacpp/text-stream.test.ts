import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { IncrementalDetokenizer, StopMatcher, type TextPiece } from "../../../dataplane/engines/llamacpp/text-stream";

/** A byte-level "model": token = byte, decoded like llama.cpp's string reaches JS (invalid bytes → U+FFFD). */
const byteDetokenize = (tokens: readonly number[]) => Buffer.from(tokens).toString("utf8");

function stream(bytes: readonly number[]): TextPiece[] {
  const d = new IncrementalDetokenizer(byteDetokenize);
  const out: TextPiece[] = [];
  for (const b of bytes) {
    const piece = d.push(b);
    if (piece) out.push(piece);
  }
  const rest = d.flush();
  if (rest) out.push(rest);
  return out;
}

const joined = (pieces: TextPiece[]) => pieces.map((p) => p.text).join("");
const tokenCount = (pieces: TextPiece[]) => pieces.reduce((n, p) => n + p.tokens, 0);

describe("IncrementalDetokenizer", () => {
  it("never splits a multi-byte character across pieces", () => {
    const text = "héllo € 😀 日本";
    const pieces = stream([...Buffer.from(text)]);
    expect(joined(pieces)).toBe(text);
    for (const p of pieces) expect(p.text).not.toContain("\uFFFD");
    expect(tokenCount(pieces)).toBe(Buffer.byteLength(text));
  });

  it("emits invalid bytes as U+FFFD without losing the valid characters after them", () => {
    expect(joined(stream([0xff, 0xff, 0xe2, 0x82, 0xac]))).toBe("\uFFFD\uFFFD€");
    expect(joined(stream([0xc3, 0xa9, 0xf0, 0x9f, 0x98, 0x80]))).toBe("é😀");
    expect(joined(stream([0x41, 0xe2, 0x82]))).toBe("A\uFFFD");
    expect(joined(stream([0x80, 0x41]))).toBe("\uFFFDA");
  });

  it("holds an incomplete character until its last byte arrives", () => {
    const d = new IncrementalDetokenizer(byteDetokenize);
    expect(d.push(0xe2)).toBeNull();
    expect(d.push(0x82)).toBeNull();
    expect(d.push(0xac)).toEqual({ text: "€", tokens: 3 });
    expect(d.flush()).toBeNull();
  });

  it("passes the preceding tokens as context", () => {
    const seen: number[][] = [];
    const d = new IncrementalDetokenizer((toks, last) => {
      seen.push([...last]);
      return byteDetokenize(toks);
    }, [1, 2, 3, 4, 5]);
    d.push(0x41);
    d.push(0x42);
    expect(seen).toEqual([
      [3, 4, 5],
      [4, 5, 0x41],
    ]);
  });

  it("reproduces any valid UTF-8 text exactly, and keeps every piece well-formed for any bytes", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 40 }), (text) => {
        const bytes = [...Buffer.from(text)];
        const pieces = stream(bytes);
        expect(joined(pieces)).toBe(Buffer.from(text).toString("utf8"));
        expect(tokenCount(pieces)).toBe(bytes.length);
      }),
    );
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 40 }), (bytes) => {
        const pieces = stream(bytes);
        for (const p of pieces) expect(p.text.isWellFormed()).toBe(true);
        expect(tokenCount(pieces)).toBe(bytes.length);
        expect(joined(pieces).replaceAll("\uFFFD", "")).toBe(byteDetokenize(bytes).replaceAll("\uFFFD", ""));
      }),
    );
  });
});

function scanAll(stops: string[], chunks: string[]) {
  const m = new StopMatcher(stops);
  let text = "";
  for (const c of chunks) {
    const r = m.push(c);
    text += r.text;
    if (r.stopped) return { text, stopped: true };
  }
  return { text: text + m.flush(), stopped: false };
}

describe("StopMatcher", () => {
  it("stops before a stop string, even one split across chunks", () => {
    expect(scanAll(["END"], ["abc E", "N", "D more"])).toEqual({ text: "abc ", stopped: true });
    expect(scanAll(["\n\n"], ["a\n", "\nb"])).toEqual({ text: "a", stopped: true });
  });

  it("holds back only what could still become a stop string", () => {
    const m = new StopMatcher(["STOP"]);
    expect(m.push("xxST")).toEqual({ text: "xx", stopped: false });
    expect(m.push("AX")).toEqual({ text: "STAX", stopped: false });
    expect(m.push("S")).toEqual({ text: "", stopped: false });
    expect(m.flush()).toBe("S");
  });

  it("picks the earliest of several stop strings", () => {
    expect(scanAll(["cd", "b"], ["abcd"])).toEqual({ text: "a", stopped: true });
  });

  it("ignores stop strings while inactive (before min_tokens)", () => {
    const m = new StopMatcher(["x"]);
    expect(m.push("axb", false)).toEqual({ text: "axb", stopped: false });
    expect(m.push("cxd", true)).toEqual({ text: "c", stopped: true });
  });

  it("passes everything through without stop strings", () => {
    expect(scanAll([], ["a", "b"])).toEqual({ text: "ab", stopped: false });
  });
});
