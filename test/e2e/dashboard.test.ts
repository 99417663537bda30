/**
 * The operator's view end to end: the real stack (wrangler dev, two agents — the demo's embedded
 * llama.cpp node, and an `openai` node in front of a vLLM stand-in), driven by traffic from three
 * tenants, watched through the dashboard in headless Chromium: sign in with the admin token, see
 * the nodes healthy and the tenants' rows, open a tenant, take a screenshot. Then one request id is
 * followed from the edge's log through the agent's log to the engine's: the embedded llama.cpp
 * engine logs in its agent's log, the vLLM stand-in in its own.
 *
 * Chromium is Debian's (`apt-get install -y chromium`), driven by playwright-core; without
 * /usr/bin/chromium (or SWITCHYARD_CHROMIUM) the browser part is skipped with a message.
 * `SWITCHYARD_UPDATE_DOCS_SCREENSHOT=1` also writes docs/img/dashboard.png.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { join, resolve } from "node:path";
import { serve, type ServerType } from "@hono/node-server";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSimEngine } from "../../dataplane/engines/sim/adapter";
import { createSimApp } from "../../dataplane/engines/sim/server";
import { createLogger } from "../../dataplane/lib/log";
import { type DevStack, startDevStack } from "../../scripts/dev-stack";
import { tempDir } from "../support/tmp";

const MODEL = "tiny-llama";
const ROOT = resolve(import.meta.dirname, "../..");
const CHROMIUM = process.env.SWITCHYARD_CHROMIUM ?? "/usr/bin/chromium";
const haveChromium = existsSync(CHROMIUM);
const docsShot = process.env.SWITCHYARD_UPDATE_DOCS_SCREENSHOT === "1";
if (!haveChromium) {
  console.warn(`[dashboard e2e] ${CHROMIUM} not found: the browser test is skipped. Install Debian's Chromium (apt-get install -y chromium) or set SWITCHYARD_CHROMIUM to a Chromium binary.`);
}

/** A vLLM stand-in (the emulator's server) whose JSON log lines are kept to look at. */
async function recordingEngine() {
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger({ component: "engine", engine: "sim" }, (line) => lines.push(JSON.parse(line) as Record<string, unknown>));
  const engine = createSimEngine({ kind: "sim", model: MODEL, timeScale: 20, maxNumSeqs: 16, maxConcurrency: 16 }, { log });
  await engine.start();
  const app = createSimApp(engine, { log });
  const server: ServerType = await new Promise((res) => {
    const s = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 }, () => res(s));
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    lines,
    async close() {
      await engine.stop();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

let stack: DevStack;
let engine: Awaited<ReturnType<typeof recordingEngine>>;
const dir = tempDir("dashboard");
const keys: Record<string, string> = {};

beforeAll(async () => {
  engine = await recordingEngine();
  stack = await startDevStack({
    stateDir: dir.path,
    model: MODEL,
    // Stale after 3 missed beats + 1 s = 4 s: the nodes read as healthy even if an agent is
    // starved of CPU for a moment on a loaded box.
    heartbeatIntervalMs: 1_000,
    agents: [
      // node-a runs an L1 tier (as a node with spare host memory would), so its row shows the tiers.
      { nodeId: "node-a", region: "local", engines: [{ kind: "llamacpp", model: MODEL, sequences: 2, contextSize: 1024, threads: 1 }], kvCache: { chunkTokens: 64, l1: { bytes: "4MiB", policy: "lru" } } },
      { nodeId: "node-b", region: "local", engines: [{ kind: "openai", model: MODEL, url: engine.url, maxConcurrency: 16 }] },
    ],
  });
  keys[stack.tenantId] = stack.apiKey;
  // One request per node before requests wait at the edge: the traffic below makes a queue to see.
  expect((await stack.admin("PUT", `/models/${MODEL}`, { node_limit: 1 })).status).toBe(200);
  // Two more tenants: one limited to a few requests a minute (its rejections must show), one heavier.
  for (const t of [{ id: "acme", name: "Acme Corp", rpm_limit: 8, token_budget: 200_000 }, { id: "globex", name: "Globex", weight: 2 }]) {
    expect((await stack.admin("POST", "/tenants", t)).status).toBe(201);
    keys[t.id] = (await stack.admin<{ key: string }>("POST", `/tenants/${t.id}/keys`, { name: "e2e" })).body.key;
  }
});

afterAll(async () => {
  await stack?.stop();
  await engine?.close();
  dir.cleanup();
});

function ask(tenant: string, opts: { requestId?: string; maxTokens?: number; strategy?: string; ignoreEos?: boolean } = {}): Promise<Response> {
  return fetch(`${stack.edgeUrl}/v1/chat/completions`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${keys[tenant]}`,
      "content-type": "application/json",
      ...(opts.requestId ? { "x-request-id": opts.requestId } : {}),
      ...(opts.strategy ? { "routing-strategy": opts.strategy } : {}),
    },
    body: JSON.stringify({ model: MODEL, max_tokens: opts.maxTokens ?? 6, ...(opts.ignoreEos ? { ignore_eos: true } : {}), messages: [{ role: "user", content: `Hello from ${tenant}` }] }),
  });
}

/** Keeps a few requests per tenant going until stopped. */
function traffic(): { stop: () => Promise<void>; statuses: Record<string, number[]> } {
  let running = true;
  const statuses: Record<string, number[]> = {};
  const loop = async (tenant: string, gapMs: number) => {
    statuses[tenant] = [];
    while (running) {
      const r = await ask(tenant, { maxTokens: 8 }).catch(() => undefined);
      if (r) {
        statuses[tenant]?.push(r.status);
        await r.arrayBuffer();
      }
      await new Promise((res) => setTimeout(res, gapMs));
    }
  };
  const loops = [loop(stack.tenantId, 50), loop("globex", 0), loop("globex", 0), loop("globex", 0), loop("acme", 150)];
  return {
    statuses,
    stop: async () => {
      running = false;
      await Promise.all(loops);
    },
  };
}

describe.skipIf(!haveChromium)("operator dashboard in Chromium", () => {
  let browser: Browser;
  let page: Page;
  const consoleErrors: string[] = [];

  beforeAll(async () => {
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    page.on("console", (m) => {
      if (m.type() === "error") consoleErrors.push(m.text());
    });
    page.on("pageerror", (e) => consoleErrors.push(e.message));
  });

  afterAll(async () => {
    await browser?.close();
  });

  it("signs in with the admin token, shows the demo nodes healthy and the tenants' usage and rejections", async () => {
    const load = traffic();
    try {
      await page.goto(`${stack.edgeUrl}/admin/dashboard`);
      await page.locator("#login").waitFor();
      // A wrong token is refused and shows nothing.
      await page.fill("#token", "not-the-admin-token-at-all");
      await page.click("#login button[type=submit]");
      await expect.poll(() => page.textContent("#login-error")).toMatch(/refused/);
      expect(await page.isVisible("#dash-view")).toBe(false);
      consoleErrors.length = 0; // the browser reports that refusal (401) as a console error

      await page.fill("#token", stack.adminToken);
      await page.click("#login button[type=submit]");
      for (const node of ["node-a", "node-b"]) {
        await page.locator(`tr[data-node="${node}"][data-status="healthy"]`).waitFor({ timeout: 30_000 });
      }
      expect(await page.textContent('tr[data-node="node-a"] .status')).toBe("healthy");
      expect(await page.textContent('tr[data-node="node-b"] td:nth-child(4)')).toBe("openai");
      // The KV-tier report of node-a's heartbeats; node-b runs none.
      expect(await page.textContent('tr[data-node="node-a"] td[data-kv-tiers]')).toMatch(/^l1 .* of 4\.0 MiB \(\d+(\.\d)?% used\)$/);
      expect(await page.textContent('tr[data-node="node-b"] td[data-kv-tiers]')).toBe("–");
      // The token is in the tab's session storage, never in the address.
      expect(page.url()).toBe(`${stack.edgeUrl}/admin/dashboard`);
      expect(await page.evaluate("sessionStorage.getItem('switchyard.adminToken')")).toBe(stack.adminToken);

      // Every tenant has a row; the limited one shows its rejections once it ran into its limit.
      for (const t of [stack.tenantId, "acme", "globex"]) await page.locator(`tr[data-tenant="${t}"]`).waitFor({ timeout: 30_000 });
      // Acme needs nine requests served to hit its limit: slow on a loaded box with one slot a node.
      await expect.poll(() => page.textContent('tr[data-tenant="acme"] td:nth-child(12)'), { timeout: 60_000 }).toMatch(/^[1-9]\d* \/ 0 \/ 0$/);
      expect(await page.textContent('tr[data-tenant="acme"] td:nth-child(9)')).toMatch(/^\d+ \/ 8$/);
      await expect.poll(async () => Number(await page.textContent(`tr[data-tenant="${stack.tenantId}"] td:nth-child(6)`)), { timeout: 30_000 }).toBeGreaterThan(0);
      // The charts have drawn lines: in flight over time, tokens/s per tenant.
      await expect.poll(() => page.locator("#chart-tokens path").count(), { timeout: 30_000 }).toBeGreaterThan(0);
      expect(await page.locator("#chart-load path").count()).toBeGreaterThan(0);

      // The page's source, as scripts would read it: both nodes with load and health, the tenants' counters.
      const stats = await stack.admin<{ pools: Array<{ nodes: Array<Record<string, unknown>>; tenants: Array<{ tenant_id: string; vtc_counter: number | null }> }>; tenants: Array<{ id: string; rejections: { limits: { today: { requests: number } } | null } }> }>("GET", "/stats");
      expect(stats.status).toBe(200);
      const nodes = stats.body.pools.flatMap((p) => p.nodes);
      expect(nodes.map((n) => [n.node_id, n.engine, n.status]).sort()).toEqual([["node-a", "llamacpp", "healthy"], ["node-b", "openai", "healthy"]]);
      for (const n of nodes) expect(n).toMatchObject({ node_limit: 1, kv_capacity_tokens: expect.any(Number), heartbeat_age_ms: expect.any(Number) });
      expect(stats.body.pools.flatMap((p) => p.tenants.map((t) => t.tenant_id))).toEqual(expect.arrayContaining(["acme", "globex"]));
      expect(stats.body.tenants.find((t) => t.id === "acme")?.rejections.limits?.today.requests).toBeGreaterThan(0);
      if (docsShot) mkdirSync(join(ROOT, "test-results"), { recursive: true });
      if (docsShot) writeFileSync(join(ROOT, "test-results", "admin-stats.json"), JSON.stringify(stats.body, null, 2));

      // A tenant's own view: exact usage, limits now, its place in the pools.
      await page.click('tr[data-tenant="acme"]');
      await page.locator("#tenant-detail h2", { hasText: "Tenant acme" }).waitFor();
      expect(await page.textContent("#tenant-detail")).toMatch(/Requests \/ min/);
      // Let the charts gather some history for the picture (a longer one for the docs).
      await page.waitForTimeout(docsShot ? 60_000 : 5_000);
    } finally {
      await load.stop();
    }
    expect(load.statuses.acme?.some((s) => s === 429)).toBe(true);
    mkdirSync(join(ROOT, "test-results"), { recursive: true });
    await page.screenshot({ path: join(ROOT, "test-results", "dashboard.png"), fullPage: true });
    if (docsShot) await page.screenshot({ path: join(ROOT, "docs", "img", "dashboard.png"), fullPage: true });
    // No script error, no content-security-policy violation.
    expect(consoleErrors).toEqual([]);
  });

  it("signs out, forgetting the token", async () => {
    await page.click("#logout");
    await page.locator("#login").waitFor();
    expect(await page.evaluate("sessionStorage.getItem('switchyard.adminToken')")).toBeNull();
    await page.reload();
    expect(await page.isVisible("#login")).toBe(true);
    expect(await page.isVisible("#dash-view")).toBe(false);
  });
});

describe("one request id from the edge to the engine", () => {
  /** JSON log lines of a process of the stack that mention `id`. */
  function logLines(file: string, id: string): Array<Record<string, unknown>> {
    return readFileSync(join(dir.path, "logs", file), "utf8")
      .split("\n")
      .filter((l) => l.includes(id))
      .flatMap((l) => {
        try {
          return [JSON.parse(l.slice(l.indexOf("{"))) as Record<string, unknown>];
        } catch {
          return [];
        }
      });
  }

  it("appears in the edge's, the agent's and the engine's JSON logs", async () => {
    const served = new Map<string, string>();
    for (let i = 0; i < 30 && served.size < 2; i++) {
      const id = `trace-${Date.now().toString(36)}-${i}`;
      const r = await ask(stack.tenantId, { requestId: id, maxTokens: 3, strategy: "random", ignoreEos: true });
      expect(r.status).toBe(200);
      expect(r.headers.get("x-request-id")).toBe(id);
      const node = r.headers.get("x-switchyard-node") as string;
      const body = (await r.json()) as { id: string };
      // Both engines name their completion after the request id they were given.
      expect(body.id).toBe(`chatcmpl-${id}`);
      if (!served.has(node)) served.set(node, id);
    }
    expect([...served.keys()].sort()).toEqual(["node-a", "node-b"]);
    for (const [node, id] of served) {
      await expect.poll(() => logLines("edge.log", id).find((l) => l.event === "request_done"), { timeout: 30_000 }).toMatchObject({ component: "edge", requestId: id, node, status: 200 });
      await expect.poll(() => logLines(`${node}.log`, id).find((l) => l.event === "request_done"), { timeout: 30_000 }).toMatchObject({
        component: "agent",
        requestId: id,
        tenant: stack.tenantId,
        status: 200,
        outcome: "completed",
        completionTokens: 3,
      });
    }
    // The embedded engine logs into its agent's log; the vLLM stand-in got the id as vLLM takes it (X-Request-Id).
    const engineDone = { component: "engine", event: "generation_done", completionTokens: 3, outcome: "length" };
    await expect.poll(() => logLines("node-a.log", served.get("node-a") as string).find((l) => l.component === "engine"), { timeout: 30_000 }).toMatchObject({ ...engineDone, engine: "llamacpp" });
    expect(engine.lines.find((l) => l.requestId === served.get("node-b"))).toMatchObject({ ...engineDone, engine: "sim" });
  });
});
