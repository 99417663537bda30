/** Admin request bodies: JSON parsed strictly and validated, errors naming the offending field. */
import type { Context } from "hono";
import type { z } from "zod";
import { ApiError } from "../../protocol/openai-error";
import { paramPath } from "../../protocol/openai-request";
import { parseJsonBody, readBodyLimited } from "../api/body";

const MAX_ADMIN_BODY = 64 * 1024;

export async function adminBody<S extends z.ZodType>(c: Context, schema: S, { optional = false } = {}): Promise<z.infer<S>> {
  const raw = await readBodyLimited(c.req.raw, MAX_ADMIN_BODY);
  const value = raw.byteLength === 0 && optional ? {} : parseJsonBody(raw);
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const param = issue && issue.path.length > 0 ? paramPath(issue.path) : null;
    throw new ApiError(400, `${param ? `'${param}'` : "body"}: ${issue?.message ?? "invalid"}`, { param, code: "invalid_value" });
  }
  return parsed.data;
}

export function list<T>(data: T[]) {
  return { object: "list" as const, data };
}

export function iso(ms: number | null | undefined): string | null {
  return ms === null || ms === undefined ? null : new Date(ms).toISOString();
}
