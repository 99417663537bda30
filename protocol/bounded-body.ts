/**
 * Reading a request body with a hard byte cap, shared by the edge (workerd) and the agents (Node).
 * The cap holds while reading, not after: a peer streaming an endless chunked body (no
 * Content-Length) is cut off at the cap instead of being buffered until memory runs out.
 */
import { ApiError } from "./openai-error";

export function bodyTooLarge(maxBytes: number): ApiError {
  return new ApiError(413, `Request body is larger than ${maxBytes} bytes.`, { code: "request_too_large" });
}

/** The body's bytes, or a 413 ApiError as soon as the declared length or the bytes read pass `maxBytes`. */
export async function readBoundedBody(request: Request, maxBytes: number): Promise<Uint8Array> {
  const declared = request.headers.get("content-length");
  if (declared !== null && Number(declared) > maxBytes) throw bodyTooLarge(maxBytes);
  if (!request.body) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => {});
      throw bodyTooLarge(maxBytes);
    }
    chunks.push(value);
  }
  const out = new Uint8Array(total);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.byteLength;
  }
  return out;
}
