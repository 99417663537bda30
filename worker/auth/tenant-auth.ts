/**
 * `/v1` authentication: `Authorization: Bearer sk-sy-…` → tenant. Failures are OpenAI's 401 so
 * SDKs raise AuthenticationError.
 */
import { createMiddleware } from "hono/factory";
import { ApiError } from "../../protocol/openai-error";
import { openDb } from "../db/client";
import { type AppEnv, numberVar } from "../env";
import { authenticateKey, configureKeyCache } from "./key-lookup";

export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m?.[1];
}

export const tenantAuth = createMiddleware<AppEnv>(async (c, next) => {
  const token = bearerToken(c.req.header("authorization"));
  if (!token) {
    throw new ApiError(401, "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.", { code: "missing_api_key", param: "api_key" });
  }
  configureKeyCache(numberVar(c.env.KEY_CACHE_TTL_MS, 5_000));
  const check = await authenticateKey(openDb(c.env.DB), token);
  if (!check.ok) {
    const message = check.reason === "expired" ? "The API key has expired." : "Incorrect API key provided.";
    throw new ApiError(401, message, { code: check.reason === "expired" ? "expired_api_key" : "invalid_api_key", param: "api_key" });
  }
  c.set("tenant", check.tenant);
  await next();
});
