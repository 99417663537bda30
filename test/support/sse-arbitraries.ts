/** fast-check inputs for SSE fuzzing, shared by the protocol tests (Node) and the edge's (workerd). */
import fc from "fast-check";

/** Text rich in what SSE cares about: line ends of every style, colons, spaces, field names. */
export const sseText = fc
  .array(fc.oneof(fc.constantFrom("\n", "\r", "\r\n", ":", " ", "data", "event", "id", "retry", "[DONE]", "{", "}", '"'), fc.string({ maxLength: 6 }), fc.string({ unit: "grapheme", maxLength: 4 })), { maxLength: 60 })
  .map((parts) => parts.join(""));

/** Splits a string or byte array into chunks at the given cut points (taken modulo its length + 1). */
export function split<T extends { length: number; slice(a: number, b?: number): T }>(whole: T, cuts: number[]): T[] {
  const points = [...new Set(cuts.map((c) => c % (whole.length + 1)))].sort((a, b) => a - b);
  const out: T[] = [];
  let last = 0;
  for (const p of points) {
    out.push(whole.slice(last, p));
    last = p;
  }
  out.push(whole.slice(last));
  return out;
}
