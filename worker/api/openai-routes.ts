/** The public OpenAI-compatible surface under /v1. */
import { Hono } from "hono";
import { ApiError } from "../../protocol/openai-error";
import { tenantAuth } from "../auth/tenant-auth";
import { openDb } from "../db/client";
import type { AppEnv } from "../env";
import { listModels, tenantMayUse } from "../models/catalog";
import { usageReport } from "../tenants/usage-report";
import { proxyGeneration } from "./proxy";

export const openaiRoutes = new Hono<AppEnv>()
  .use("/v1/*", tenantAuth)
  .post("/v1/chat/completions", (c) => proxyGeneration(c, "chat"))
  .post("/v1/completions", (c) => proxyGeneration(c, "completions"))
  // The caller's own usage: the tenant comes from the key, so no other tenant can be named.
  .get("/v1/usage", async (c) => c.json(await usageReport(c.env, c.get("tenant").tenantId, c.req.query())))
  .get("/v1/models", async (c) => {
    const tenantId = c.get("tenant").tenantId;
    const models = (await listModels(openDb(c.env.DB))).filter((m) => tenantMayUse(m, tenantId));
    return c.json({
      object: "list",
      data: models.map((m) => ({ id: m.name, object: "model", created: Math.floor(m.createdAt / 1000), owned_by: "switchyard" })),
    });
  })
  .get("/v1/models/:model{.+}", async (c) => {
    const name = c.req.param("model");
    const tenantId = c.get("tenant").tenantId;
    const m = (await listModels(openDb(c.env.DB))).find((x) => x.name === name && tenantMayUse(x, tenantId));
    if (!m) throw new ApiError(404, `The model '${name}' does not exist.`, { param: "model", code: "model_not_found" });
    return c.json({ id: m.name, object: "model", created: Math.floor(m.createdAt / 1000), owned_by: "switchyard" });
  });
