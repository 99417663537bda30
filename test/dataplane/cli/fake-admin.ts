/**
 * A stand-in for the edge's /admin API (node:http on 127.0.0.1:0) that records every request and
 * answers canned JSON, plus a runner for the real CLI as a child process.
 */
import { spawn } from "node:child_process";
import { createServer, type Server } from "node:http";
import { createServer as createNetServer } from "node:net";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const BIN = resolve(ROOT, "bin", "switchyard.mjs");

export interface RecordedRequest {
  method: string;
  /** Raw request path, percent-encoding as sent. */
  path: string;
  authorization: string | undefined;
  contentType: string | undefined;
  rawBody: string;
  body: unknown;
}

interface Canned {
  status: number;
  body: unknown;
  contentType?: string;
}

export function openAIError(message: string, param: string | null, code: string | null, type = "invalid_request_error") {
  return { error: { message, type, param, code } };
}

export class FakeAdmin {
  readonly requests: RecordedRequest[] = [];
  private readonly routes = new Map<string, Canned>();
  private server: Server | undefined;
  url = "";

  constructor(readonly token: string) {}

  on(method: string, path: string, status: number, body: unknown, contentType = "application/json"): this {
    this.routes.set(`${method} ${path}`, { status, body, contentType });
    return this;
  }

  /** Requests for `method path` (path as sent, e.g. /admin/models/a%2Fb). */
  find(method: string, path: string): RecordedRequest[] {
    return this.requests.filter((r) => r.method === method && r.path === path);
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const rawBody = Buffer.concat(chunks).toString("utf8");
        let body: unknown;
        try {
          body = rawBody.length > 0 ? JSON.parse(rawBody) : undefined;
        } catch {
          body = rawBody;
        }
        const path = req.url ?? "/";
        this.requests.push({ method: req.method ?? "", path, authorization: req.headers.authorization, contentType: req.headers["content-type"], rawBody, body });
        let canned: Canned;
        if (req.headers.authorization !== `Bearer ${this.token}`) {
          canned = { status: 401, body: openAIError("A valid admin token is required.", null, "invalid_admin_token", "authentication_error") };
        } else {
          canned = this.routes.get(`${req.method} ${path}`) ?? { status: 404, body: openAIError(`No route for ${req.method} ${path}.`, null, "unknown_route") };
        }
        const text = typeof canned.body === "string" ? canned.body : JSON.stringify(canned.body);
        res.writeHead(canned.status, { "content-type": canned.contentType ?? "application/json" });
        res.end(text);
      });
    });
    await new Promise<void>((ok) => this.server?.listen(0, "127.0.0.1", ok));
    const addr = this.server.address();
    if (!addr || typeof addr === "string") throw new Error("no address");
    this.url = `http://127.0.0.1:${addr.port}`;
  }

  async stop(): Promise<void> {
    await new Promise<void>((ok) => (this.server ? this.server.close(() => ok()) : ok()));
  }
}

/** A port nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const srv = createNetServer();
  await new Promise<void>((ok) => srv.listen(0, "127.0.0.1", ok));
  const addr = srv.address();
  await new Promise<void>((ok) => srv.close(() => ok()));
  if (!addr || typeof addr === "string") throw new Error("no address");
  return addr.port;
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `switchyard ...args` (cwd: the repo root) with SWITCHYARD_* taken only from `env`. */
export function runCli(args: string[], env: Record<string, string | undefined> = {}): Promise<CliResult> {
  const base: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("SWITCHYARD_")) base[k] = v;
  for (const [k, v] of Object.entries(env)) if (v !== undefined) base[k] = v;
  return new Promise((ok, fail) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: base, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.on("error", fail);
    child.on("close", (code) => ok({ code, stdout, stderr }));
  });
}

/** Runs many CLI invocations, `limit` at a time, results in order. */
export async function runAll(invocations: Array<{ args: string[]; env?: Record<string, string | undefined> }>, limit = 4): Promise<CliResult[]> {
  const results: CliResult[] = new Array(invocations.length);
  let next = 0;
  const worker = async () => {
    while (next < invocations.length) {
      const i = next++;
      const inv = invocations[i] as { args: string[]; env?: Record<string, string | undefined> };
      results[i] = await runCli(inv.args, inv.env);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, invocations.length) }, worker));
  return results;
}

/** Counts non-overlapping occurrences of `needle` in `text`. */
export function count(text: string, needle: string): number {
  return text.split(needle).length - 1;
}
