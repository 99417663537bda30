/**
 * `GET /admin/dashboard`: the operator dashboard, served by the Worker itself — HTML, script and
 * stylesheet are strings in the bundle, nothing is loaded from elsewhere.
 *
 * The page is public and holds no data; the operator signs in with the admin token, which the
 * script keeps in sessionStorage (this tab only, gone when it closes) and sends as a bearer token
 * to `/admin/stats*` — never in a URL, never in a cookie, so no request the browser makes on its
 * own carries it and cross-site requests cannot ride on it. The content security policy allows
 * this origin's script, style and fetches only.
 */
import { Hono } from "hono";
import type { AppEnv } from "../env";
import { DASHBOARD_JS } from "./client-script";
import { DASHBOARD_HTML } from "./page";
import { DASHBOARD_CSS } from "./styles";

const SECURITY_HEADERS: Record<string, string> = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  // Small and versioned with the Worker: revalidating costs nothing and avoids stale scripts after a deploy.
  "cache-control": "no-cache",
};

function asset(body: string, contentType: string): Response {
  return new Response(body, { headers: { "content-type": contentType, ...SECURITY_HEADERS } });
}

export const dashboardRoutes = new Hono<AppEnv>()
  .get("/", () => asset(DASHBOARD_HTML, "text/html; charset=utf-8"))
  .get("/app.js", () => asset(DASHBOARD_JS, "text/javascript; charset=utf-8"))
  .get("/app.css", () => asset(DASHBOARD_CSS, "text/css; charset=utf-8"));
