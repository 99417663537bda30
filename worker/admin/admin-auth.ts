/** `/admin` authentication: the ADMIN_TOKEN Worker secret, compared in constant time. */
import { createMiddleware } from "hono/factory";
import { sha256Hex } from "../../protocol/encoding";
import { ApiError } from "../../protocol/openai-error";
import { bearerToken } from "../auth/tenant-auth";
import type { AppEnv } from "../env";

async function sameSecret(a: string, b: string): Promise<boolean> {
  // Hashing first makes the comparison length-independent.
  const [ha, hb] = await Promise.all([sha256Hex(a), sha256Hex(b)]);
  let diff = 0;
  for (let i = 0; i < ha.length; i++) diff |= ha.charCodeAt(i) ^ hb.charCodeAt(i);
  return diff === 0;
}

export const adminAuth = createMiddleware<AppEnv>(async (c, next) => {
  const expected = c.env.ADMIN_TOKEN;
  if (!expected || expected.length < 16) {
    throw new ApiError(503, "The admin API is disabled: set the ADMIN_TOKEN secret (at least 16 characters).", { code: "admin_disabled" });
  }
  const token = bearerToken(c.req.header("authorization"));
  if (!token || !(await sameSecret(token, expected))) {
    throw new ApiError(401, "A valid admin token is required.", { code: "invalid_admin_token" });
  }
  await next();
});
