/**
 * HTTP client for the edge's /admin API: bearer admin token, JSON in and out. API failures (OpenAI
 * error bodies) become an {@link AdminApiError} naming the HTTP status and the offending field;
 * network failures a {@link CliError} naming the URL. Both print as one line and exit 2.
 */
import { CliError } from "./cli-error";

export const DEFAULT_EDGE_URL = "http://127.0.0.1:8787";
const DEFAULT_TIMEOUT_MS = 30_000;

export interface AdminConnection {
  /** Edge base URL, e.g. https://edge.example.com (the client appends /admin/...). */
  edgeUrl: string;
  adminToken: string;
  timeoutMs?: number;
}

/** The API answered with an error status. */
export class AdminApiError extends CliError {
  constructor(
    message: string,
    readonly status: number,
    readonly param: string | null,
    readonly code: string | null,
    readonly body: unknown,
    /** The API's own message, when it sent an OpenAI error body. */
    readonly apiMessage: string | null = null,
  ) {
    super(message);
    this.name = "AdminApiError";
  }

  /** The same error with the CLI option or argument that fed `param` named next to it. */
  naming(option: string): AdminApiError {
    if (this.apiMessage === null) return this;
    return new AdminApiError(renderApiError(this.apiMessage, this.status, this.param, this.code, option), this.status, this.param, this.code, this.body, this.apiMessage);
  }
}

function renderApiError(message: string, status: number, param: string | null, code: string | null, option?: string): string {
  const detail = [param ? `param: ${param}${option ? ` (${option})` : ""}` : null, code ? `code: ${code}` : null].filter(Boolean).join(", ");
  let text = `${message} (HTTP ${status}${detail ? `; ${detail}` : ""})`;
  if (status === 401) text += "; check --admin-token / SWITCHYARD_ADMIN_TOKEN";
  return text;
}

type HttpMethod = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

/** Validates the edge URL (an http(s) URL) and the admin token (present, one line). */
export function resolveConnection(opts: { edgeUrl?: string | undefined; adminToken?: string | undefined }): AdminConnection {
  const edgeUrl = (opts.edgeUrl ?? DEFAULT_EDGE_URL).trim();
  let parsed: URL;
  try {
    parsed = new URL(edgeUrl);
  } catch {
    throw new CliError(`--edge-url: '${edgeUrl}' is not a URL (expected e.g. https://edge.example.com)`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new CliError(`--edge-url: '${edgeUrl}' must be an http:// or https:// URL`);
  }
  if (parsed.search || parsed.hash) throw new CliError(`--edge-url: '${edgeUrl}' must not have a query or fragment`);
  const adminToken = opts.adminToken?.trim() ?? "";
  if (adminToken === "") {
    throw new CliError("an admin token is required: pass --admin-token <token> or set SWITCHYARD_ADMIN_TOKEN (the edge's ADMIN_TOKEN secret)");
  }
  if (/[\s\0]/.test(adminToken)) throw new CliError("--admin-token: the token must not contain whitespace or control characters");
  // Tolerate an edge URL given with the /admin prefix; the client appends it itself.
  return { edgeUrl: parsed.href.replace(/\/+$/, "").replace(/\/admin$/, ""), adminToken };
}

/** What went wrong under fetch's "fetch failed": the socket error's code and message. */
function describeNetworkError(err: unknown, timeoutMs: number): string {
  if (err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError")) return `no answer within ${timeoutMs / 1000}s`;
  const pick = (e: unknown): string | undefined => {
    if (!e || typeof e !== "object") return undefined;
    const { code, message, errors } = e as { code?: unknown; message?: unknown; errors?: unknown };
    const text = typeof message === "string" && message.length > 0 ? message : undefined;
    if (typeof code === "string") return text === undefined ? code : text.includes(code) ? text : `${code}: ${text}`;
    // Happy-eyeballs connects fail with an AggregateError of one error per address.
    if (Array.isArray(errors) && errors.length > 0) return pick(errors[0]);
    return text;
  };
  const cause = err instanceof Error ? (err as Error & { cause?: unknown }).cause : undefined;
  return pick(cause) ?? (err instanceof Error ? err.message : String(err));
}

function errorMessage(method: string, url: string, status: number, body: unknown, raw: string): AdminApiError {
  const e = body && typeof body === "object" ? (body as { error?: unknown }).error : undefined;
  if (e && typeof e === "object" && typeof (e as { message?: unknown }).message === "string") {
    const { message, param, code } = e as { message: string; param?: unknown; code?: unknown };
    const p = typeof param === "string" && param.length > 0 ? param : null;
    const c = typeof code === "string" && code.length > 0 ? code : null;
    return new AdminApiError(renderApiError(message, status, p, c), status, p, c, body, message);
  }
  const snippet = raw.replace(/\s+/g, " ").trim().slice(0, 200);
  return new AdminApiError(`${method} ${url} failed: HTTP ${status}${snippet ? `: ${snippet}` : ""}`, status, null, null, body ?? raw);
}

export class AdminClient {
  constructor(
    readonly connection: AdminConnection,
    private readonly fetchImpl: typeof fetch = fetch,
  ) {}

  url(path: string): string {
    return `${this.connection.edgeUrl}/admin${path}`;
  }

  async request<T>(method: HttpMethod, path: string, body?: unknown): Promise<T> {
    const url = this.url(path);
    const headers: Record<string, string> = { authorization: `Bearer ${this.connection.adminToken}`, accept: "application/json" };
    if (body !== undefined) headers["content-type"] = "application/json";
    const timeoutMs = this.connection.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    let res: Response;
    let raw: string;
    try {
      res = await this.fetchImpl(url, {
        method,
        headers,
        body: body === undefined ? null : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
        redirect: "manual",
      });
      raw = await res.text();
    } catch (err) {
      throw new CliError(`cannot reach the edge at ${url}: ${describeNetworkError(err, timeoutMs)} (check --edge-url / SWITCHYARD_EDGE_URL)`);
    }
    let parsed: unknown;
    try {
      parsed = raw.length > 0 ? JSON.parse(raw) : undefined;
    } catch {
      parsed = undefined;
    }
    if (res.status >= 300 && res.status < 400) {
      throw new AdminApiError(`${method} ${url} was redirected (HTTP ${res.status}) to ${res.headers.get("location") ?? "?"}; use that address as --edge-url`, res.status, null, null, raw);
    }
    if (!res.ok) throw errorMessage(method, url, res.status, parsed, raw);
    if (parsed === undefined) throw new CliError(`${method} ${url}: the edge answered HTTP ${res.status} without a JSON body`);
    return parsed as T;
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>("GET", path);
  }
  post<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>("POST", path, body);
  }
  put<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>("PUT", path, body);
  }
  patch<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>("PATCH", path, body);
  }
  delete<T>(path: string): Promise<T> {
    return this.request<T>("DELETE", path);
  }
}

/** One URL path segment: ids and model names (which may hold '/') travel percent-encoded. */
export function seg(value: string): string {
  return encodeURIComponent(value);
}
