/**
 * OpenAI's error body, `{error: {message, type, param, code}}`, used at every HTTP boundary
 * (edge API, admin API, agent) so every client library maps our failures the way it maps OpenAI's.
 */
export type OpenAIErrorType =
  | "invalid_request_error"
  | "authentication_error"
  | "permission_error"
  | "not_found_error"
  | "rate_limit_error"
  // OpenAI's own types for 429s: a per-minute request or token limit, or a spent quota.
  | "requests"
  | "tokens"
  | "insufficient_quota"
  | "overloaded_error"
  | "server_error";

export interface OpenAIErrorBody {
  error: { message: string; type: OpenAIErrorType; param: string | null; code: string | null };
}

export interface ApiErrorInit {
  param?: string | null;
  code?: string | null;
  type?: OpenAIErrorType;
  headers?: Record<string, string>;
}

const defaultType: Record<number, OpenAIErrorType> = {
  400: "invalid_request_error",
  401: "authentication_error",
  403: "permission_error",
  404: "invalid_request_error",
  405: "invalid_request_error",
  409: "invalid_request_error",
  413: "invalid_request_error",
  415: "invalid_request_error",
  429: "rate_limit_error",
  502: "server_error",
  503: "overloaded_error",
  504: "server_error",
};

/** An error that knows its HTTP status and renders as OpenAI's error body. */
export class ApiError extends Error {
  readonly type: OpenAIErrorType;
  readonly param: string | null;
  readonly code: string | null;
  readonly headers: Record<string, string>;

  constructor(
    readonly status: number,
    message: string,
    init: ApiErrorInit = {},
  ) {
    super(message);
    this.name = "ApiError";
    this.type = init.type ?? defaultType[status] ?? "server_error";
    this.param = init.param ?? null;
    this.code = init.code ?? null;
    this.headers = init.headers ?? {};
  }

  body(): OpenAIErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }

  toResponse(extraHeaders: Record<string, string> = {}): Response {
    return new Response(JSON.stringify(this.body()), {
      status: this.status,
      headers: { "content-type": "application/json", ...this.headers, ...extraHeaders },
    });
  }
}

export function isOpenAIErrorBody(value: unknown): value is OpenAIErrorBody {
  if (typeof value !== "object" || value === null) return false;
  const err = (value as { error?: unknown }).error;
  return typeof err === "object" && err !== null && typeof (err as { message?: unknown }).message === "string";
}
