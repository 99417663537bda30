/**
 * SSE framing: events come out whole, as early as possible, whatever the chunking of the input.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { parseSseEvent, sseData, SseFramer } from "../../protocol/sse";

describe("SseFramer", () => {
  it.each([
    ["\\n\\n", "\n"],
    ["\\r\\n\\r\\n", "\r\n"],
    ["\\r\\r", "\r"],
  ])("splits events terminated by %s", (_name, eol) => {
    const f = new SseFramer();
    const a = `data: one${eol}${eol}`;
    const b = `event: x${eol}data: two${eol}${eol}`;
    // The \r\r style needs a following byte to be sure the second \r is not half of \r\n.
    const tail = eol === "\r" ? "d" : "";
    expect(f.push(a + b + tail)).toEqual([a, b]);
    expect(f.rest()).toBe(tail);
  });

  it("emits an event the moment its blank line completes, and not before", () => {
    const f = new SseFramer();
    expect(f.push("data: {\"a\":")).toEqual([]);
    expect(f.push("1}\n")).toEqual([]);
    expect(f.pending).toBe("data: {\"a\":1}\n".length);
    expect(f.push("\n")).toEqual(['data: {"a":1}\n\n']);
    expect(f.pending).toBe(0);
  });

  it("holds a trailing lone \\r until it knows whether \\n follows", () => {
    const f = new SseFramer();
    expect(f.push("data: a\r\n\r")).toEqual([]);
    expect(f.push("\n")).toEqual(["data: a\r\n\r\n"]);
    expect(f.push("data: b\r")).toEqual([]);
    expect(f.push("\r")).toEqual([]);
    // The \n belongs to the terminator, not to the next event.
    expect(f.push("\ndata: c\n\n")).toEqual(["data: b\r\r\n", "data: c\n\n"]);
  });

  it("rest() returns the unterminated tail once and clears it", () => {
    const f = new SseFramer();
    expect(f.push("data: done\n\ndata: trunc")).toEqual(["data: done\n\n"]);
    expect(f.rest()).toBe("data: trunc");
    expect(f.rest()).toBe("");
    expect(f.pending).toBe(0);
  });

  it("does not treat a single line end as an event end", () => {
    const f = new SseFramer();
    expect(f.push("data: a\ndata: b\r\ndata: c\r")).toEqual([]);
    expect(f.push("data: d\n\n")).toEqual(["data: a\ndata: b\r\ndata: c\rdata: d\n\n"]);
  });

  it("property: any chunking of an event sequence yields exactly the same blocks", () => {
    const lineText = fc.string({ maxLength: 20 }).map((s) => s.replace(/[\r\n]/g, ""));
    const line = fc.oneof(
      lineText.map((t) => `data: ${t}`),
      lineText.map((t) => `data:${t}`),
      lineText.map((t) => `: ${t}`),
      lineText.map((t) => `event: ${t}`),
    );
    // One line-end style per event: mixing "\r" with a following "\n" would make "\r\n" (one line end).
    const event = fc.record({ lines: fc.array(line, { minLength: 1, maxLength: 4 }), eol: fc.constantFrom("\n", "\r\n", "\r") }).map(({ lines, eol }) => lines.join(eol) + eol + eol);
    fc.assert(
      fc.property(fc.array(event, { minLength: 1, maxLength: 8 }), fc.array(fc.nat(), { maxLength: 20 }), (events, cutsRaw) => {
        const text = events.join("");
        const cuts = [...new Set(cutsRaw.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
        const f = new SseFramer();
        const out: string[] = [];
        let prev = 0;
        for (const c of [...cuts, text.length]) {
          out.push(...f.push(text.slice(prev, c)));
          prev = c;
        }
        // A final "\r\r" is held (the last \r might be half of \r\n); the rest then holds it.
        const rest = f.rest();
        if (rest) out.push(rest);
        expect(out).toEqual(events);
      }),
      { numRuns: 500 },
    );
  });
});

describe("parseSseEvent", () => {
  it("joins multi-line data with \\n and reads event and id", () => {
    expect(parseSseEvent("event: delta\nid: 7\ndata: line 1\ndata: line 2\n\n")).toEqual({ event: "delta", id: "7", data: "line 1\nline 2" });
  });

  it("handles data: without a space and keeps further spaces", () => {
    expect(parseSseEvent("data:{\"x\":1}\n\n").data).toBe('{"x":1}');
    expect(parseSseEvent("data:  two spaces\n\n").data).toBe(" two spaces");
    expect(parseSseEvent("data\n\n").data).toBe("");
  });

  it("ignores comments and unknown fields; keep-alives have no data", () => {
    expect(parseSseEvent(": keep-alive\n\n")).toEqual({ event: undefined, data: undefined, id: undefined });
    expect(parseSseEvent(": c\nretry: 10\nfoo: bar\ndata: x\n\n")).toEqual({ event: undefined, data: "x", id: undefined });
  });

  it("accepts any line-end style", () => {
    expect(parseSseEvent("data: a\r\ndata: b\r\n\r\n").data).toBe("a\nb");
    expect(parseSseEvent("data: a\rdata: b\r\r").data).toBe("a\nb");
  });

  it("round-trips sseData", () => {
    const block = sseData({ a: "b\nc" });
    expect(new SseFramer().push(block)).toEqual([block]);
    expect(JSON.parse(parseSseEvent(block).data!)).toEqual({ a: "b\nc" });
    expect(sseData("[DONE]")).toBe("data: [DONE]\n\n");
  });
});
