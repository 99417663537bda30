/**
 * Switchyard edge worker: wiring only. Routes: /v1 (OpenAI API, tenant keys), /admin (operator API,
 * admin token), /agent/v1 (node heartbeats, node signatures), /healthz.
 */
import { Hono } from "hono";
import { requestId } from "hono/request-id";
import { ApiError } from "../protocol/openai-error";
import { HeaderNames } from "../protocol/headers";
import { adminAuth } from "./admin/admin-auth";
import { modelRoutes } from "./admin/models";
import { nodeRoutes } from "./admin/nodes";
import { regionRoutes } from "./admin/regions";
import { statsRoutes } from "./admin/stats";
import { tenantRoutes } from "./admin/tenants";
import { openaiRoutes } from "./api/openai-routes";
import { dashboardRoutes } from "./dashboard/routes";
import type { AppEnv } from "./env";
import { log } from "./lib/log";
import { heartbeatRoutes } from "./nodes/heartbeat-route";

export { PoolObject } from "./pool/pool-object";
export { TenantLedger } from "./tenants/tenant-ledger";

const app = new Hono<AppEnv>();

// A sane client-sent id is kept (so callers can correlate); anything else is replaced.
app.use(requestId({ headerName: HeaderNames.requestId, limitLength: 128 }));

app.get("/healthz", (c) => c.json({ ok: true }));

app.route("/", openaiRoutes);
app.route("/", heartbeatRoutes);

const admin = new Hono<AppEnv>();
admin.use("*", adminAuth);
admin.route("/", tenantRoutes);
admin.route("/", modelRoutes);
admin.route("/", nodeRoutes);
admin.route("/", regionRoutes);
admin.route("/", statsRoutes);
// The dashboard page holds no data and asks for the admin token itself, so it comes before the auth.
app.route("/admin/dashboard", dashboardRoutes);
app.route("/admin", admin);

app.notFound((c) => new ApiError(404, `No route for ${c.req.method} ${new URL(c.req.url).pathname}.`, { code: "unknown_route" }).toResponse({ [HeaderNames.requestId]: c.get("requestId") ?? "" }));

app.onError((err, c) => {
  const id = c.get("requestId") ?? "";
  if (err instanceof ApiError) return err.toResponse({ [HeaderNames.requestId]: id });
  log("error", "unhandled_error", { requestId: id, error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  return new ApiError(500, "Internal error; quote the request id when reporting it.", { code: "internal_error" }).toResponse({ [HeaderNames.requestId]: id });
});

export default app;
