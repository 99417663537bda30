/**
 * The edge's stream meter fuzzed with fast-check inside workerd, its real runtime: whatever bytes an
 * agent sends back (broken SSE, invalid UTF-8, JSON or not, cut anywhere), the meter never throws,
 * reports the body's end exactly once, forwards a whole stream and a JSON body unchanged, and tells the
 * client when a stream was cut short.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type MeterResult, meterBody } from "../../worker/api/stream-meter";
import { split, sseText } from "../support/sse-arbitraries";

const enc = new TextEncoder();
const dec = new TextDecoder();

describe("the edge's stream meter on hostile upstream bodies (fuzz)", () => {
  async function meter(chunks: Uint8Array[], opts: { sse: boolean; stripUsageChunk?: boolean }): Promise<{ out: string; bytes: Uint8Array; results: MeterResult[] }> {
    const results: MeterResult[] = [];
    const upstream = new ReadableStream<Uint8Array>({
      start(c) {
        for (const ch of chunks) c.enqueue(ch);
        c.close();
      },
    });
    const body = meterBody(upstream, { sse: opts.sse, stripUsageChunk: opts.stripUsageChunk ?? false, onEnd: (r) => void results.push(r) });
    const bytes = new Uint8Array(await new Response(body).arrayBuffer());
    return { out: dec.decode(bytes), bytes, results };
  }

  it("forwards any text stream that ends in [DONE] unchanged, ends once, and never throws", async () => {
    await fc.assert(
      fc.asyncProperty(sseText, fc.array(fc.nat(), { maxLength: 6 }), async (garbage, cuts) => {
        // Whatever came before, a final complete [DONE] event: the stream is whole.
        const text = `${garbage}\n\ndata: [DONE]\n\n`;
        const { out, results } = await meter(split(enc.encode(text), cuts), { sse: true });
        expect(out).toBe(text);
        expect(results).toHaveLength(1);
      }),
      { numRuns: 200 },
    );
  });

  it("any bytes at all (invalid UTF-8, broken JSON, no [DONE]) end once, with the client told when it was cut short", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 400 }), fc.array(fc.nat(), { maxLength: 6 }), fc.boolean(), async (bytes, cuts, sse) => {
        const { out, bytes: forwarded, results } = await meter(split(bytes, cuts), { sse, stripUsageChunk: true });
        expect(results).toHaveLength(1);
        if (sse) {
          // A stream without [DONE] and without an error event was cut short: failed, and said so.
          const sawDone = dec.decode(bytes).split(/\r\n|\r|\n/).some((l) => /^data: ?\[DONE\]$/.test(l));
          if (!sawDone && !out.includes('"error"')) expect(results[0]?.outcome).toBe("failed");
          if (results[0]?.outcome === "failed" && !sawDone) expect(out).toMatch(/upstream_stream_broken|"error"/);
        } else {
          // A JSON body is passed through byte for byte, whatever it holds.
          expect(forwarded).toEqual(bytes);
        }
      }),
      { numRuns: 200 },
    );
  });
});

