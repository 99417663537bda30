/** Reading JSON request bodies: declared type checked, hard size limit, strict UTF-8/JSON decoding. */
import { readBoundedBody } from "../../protocol/bounded-body";
import { ApiError } from "../../protocol/openai-error";

/**
 * Media types a JSON body may be declared as. No header and `text/plain` are accepted because
 * `fetch` and many minimal clients send a string body as `text/plain;charset=UTF-8`; the body is
 * parsed as strict JSON whatever the header says. Form and multipart encodings are refused: they mean
 * the client is not sending JSON (curl's `-d` without `-H 'Content-Type: application/json'`), and a
 * clear 415 beats the confusing "not valid JSON" that would follow.
 */
function acceptsAsJson(contentType: string | null): boolean {
  if (contentType === null || contentType.trim() === "") return true;
  const type = (contentType.split(";")[0] ?? "").trim().toLowerCase();
  return type === "application/json" || /^application\/[a-z0-9.+-]+\+json$/.test(type) || type === "text/plain";
}

/** Reads a JSON request's body, refusing non-JSON media types (415) and bodies over `maxBytes` (413). */
export async function readBodyLimited(request: Request, maxBytes: number): Promise<Uint8Array> {
  const contentType = request.headers.get("content-type");
  if (!acceptsAsJson(contentType)) {
    throw new ApiError(415, `Content-Type '${contentType?.slice(0, 100)}' is not supported; send the body as JSON with 'Content-Type: application/json'.`, {
      param: "content-type",
      code: "unsupported_media_type",
    });
  }
  return readBoundedBody(request, maxBytes);
}


const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

export function parseJsonBody(bytes: Uint8Array): unknown {
  if (bytes.byteLength === 0) throw new ApiError(400, "The request body is empty; expected a JSON object.", { code: "invalid_body" });
  let text: string;
  try {
    text = strictUtf8.decode(bytes);
  } catch {
    throw new ApiError(400, "The request body is not valid UTF-8.", { code: "invalid_body" });
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ApiError(400, `The request body is not valid JSON: ${err instanceof Error ? err.message : "parse error"}.`, { code: "invalid_json" });
  }
}
