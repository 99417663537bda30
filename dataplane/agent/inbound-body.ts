/**
 * Reading an inbound request body with a hard cap. The cap is enforced while reading, not after: a
 * peer that streams an endless chunked body (no Content-Length) is cut off at the cap instead of
 * being buffered until the agent runs out of memory, and the agent answers 413 at once.
 */
import { ApiError } from "../../protocol/openai-error";

function tooLarge(maxBytes: number): ApiError {
  return new ApiError(413, `Request body is larger than ${maxBytes} bytes.`, { code: "request_too_large" });
}

export async function readInboundBody(req: Request, maxBytes: number): Promise<Uint8Array> {
  const declared = Number(req.headers.get("content-length") ?? "0");
  if (declared > maxBytes) throw tooLarge(maxBytes);
  if (!req.body) return new Uint8Array(0);
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => {});
      throw tooLarge(maxBytes);
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
