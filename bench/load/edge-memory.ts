/**
 * Where the local edge's memory goes under a soak (issue 9): per workerd process resident memory
 * (anonymous, file-backed), the V8 heap of the script each runs (used and allocated, through
 * workerd's own inspector), and the pool object's per-request state (`memory` in
 * `GET /admin/stats`), sampled while streams are kept in flight; with `--gc-every k` a full GC is
 * forced before every k-th sample, and once the load stopped, a GC and one more sample. A heap that
 * comes back to the same size after each GC holds garbage, not leaked objects; resident memory that
 * climbs while it does is the runtime's own (native) memory, not the Worker's objects.
 *
 *   npx tsx bench/load/edge-memory.ts [--minutes 3] [--concurrency 100] [--gc-every 6] [--out /tmp/edge-memory]
 *
 * Writes samples.json (a summary per process, then every sample) to --out.
 *
 * workerd's inspector is reached directly (not through wrangler's proxy, which costs a loopback
 * request per runtime event): wrangler is pointed at a wrapper of the workerd binary
 * (MINIFLARE_WORKERD_PATH) that gives each workerd a known `--inspector-addr`. Only `Runtime.getHeapUsage` and
 * `HeapProfiler.collectGarbage` are sent; no domain that streams events is enabled.
 *
 * Loopback only; bounded in time.
 */
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { createRequire } from "node:module";
import { join } from "node:path";
import { Command, InvalidArgumentError } from "commander";
import OpenAI from "openai";
import { WebSocket } from "undici";
import { freePort, ROOT } from "../../scripts/dev-stack";
import { machineInfo, tenantKey } from "../recipes/common";
import { startLoadStack } from "./load-stack";
import { descendants } from "./processes";
import { streamOnce } from "./stream";

const MODEL = "llama-3-8b";
const positive = (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError("must be a positive number");
  return n;
};
const opts = new Command("bench/load/edge-memory.ts")
  .option("--nodes <n>", "agents, each in front of its own emulator server", positive, 4)
  .option("--minutes <m>", "length of the soak", positive, 3)
  .option("--concurrency <n>", "streams kept in flight", positive, 100)
  .option("--sample-s <s>", "seconds between samples", positive, 10)
  .option("--gc-every <k>", "force a full GC before every k-th sample during the soak (0: only after it)", (v) => Number(v), 0)
  .option("--out <dir>", "results folder", "/tmp/edge-memory")
  .parse()
  .opts<{ nodes: number; minutes: number; concurrency: number; sampleS: number; gcEvery: number; out: string }>();

const log = (line: string) => process.stderr.write(`[edge-memory ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
mkdirSync(opts.out, { recursive: true });
const stateDir = join(ROOT, ".switchyard", "bench-edge-memory");
mkdirSync(join(stateDir, "logs"), { recursive: true });

// Every workerd wrangler starts gets its own inspector port, recorded as "pid port" lines.
const realWorkerd = createRequire(join(ROOT, "node_modules", "miniflare", "package.json"))("workerd").default as string;
const portsFile = join(stateDir, "inspector-ports");
writeFileSync(portsFile, "");
const base = await freePort();
const wrapper = join(stateDir, "workerd-inspected.sh");
writeFileSync(
  wrapper,
  `#!/bin/sh
n=$(wc -l < ${JSON.stringify(portsFile)})
port=$((${base} + 1 + n))
echo "$$ $port" >> ${JSON.stringify(portsFile)}
# miniflare asks for an ephemeral inspector port (and reads the real one back); ours is fixed.
found=
for a do
  shift
  case "$a" in --inspector-addr=*) found=1; a="--inspector-addr=127.0.0.1:$port";; esac
  set -- "$@" "$a"
done
[ -n "$found" ] || set -- "$@" "--inspector-addr=127.0.0.1:$port"
exec ${JSON.stringify(realWorkerd)} "$@"
`,
);
chmodSync(wrapper, 0o755);
process.env.MINIFLARE_WORKERD_PATH = wrapper;
process.env.WRANGLER_LOG = "warn";

/** A minimal CDP session: one request at a time, replies matched by id; events ignored. */
class Cdp {
  private id = 0;
  private readonly waiting = new Map<number, (r: { result?: unknown; error?: unknown }) => void>();
  private constructor(private readonly ws: WebSocket) {
    ws.addEventListener("message", (e) => {
      const msg = JSON.parse(String(e.data)) as { id?: number; result?: unknown; error?: unknown };
      if (msg.id !== undefined) this.waiting.get(msg.id)?.(msg);
    });
  }
  static async open(url: string): Promise<Cdp> {
    const ws = new WebSocket(url);
    await new Promise<void>((ok, fail) => {
      ws.addEventListener("open", () => ok(), { once: true });
      ws.addEventListener("error", (e) => fail(new Error(`inspector ${url}: ${String((e as { message?: string }).message ?? "error")}`)), { once: true });
    });
    return new Cdp(ws);
  }
  async send<T>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    const id = ++this.id;
    const reply = new Promise<{ result?: unknown; error?: unknown }>((ok) => this.waiting.set(id, ok));
    this.ws.send(JSON.stringify({ id, method, params }));
    const r = await reply;
    this.waiting.delete(id);
    if (r.error) throw new Error(`${method}: ${JSON.stringify(r.error)}`);
    return r.result as T;
  }
  close(): void {
    this.ws.close();
  }
}

const { stack, stop } = await startLoadStack({ stateDir, model: MODEL, nodes: opts.nodes, nodePrefix: "mem", maxNumSeqs: Math.ceil(opts.concurrency / opts.nodes) + 16, agentConcurrency: 64, timeScale: 0.25, log });

interface Sample {
  t_s: number;
  phase: string;
  gc: boolean;
  rss_mib: Record<string, Record<string, number>>;
  heap: Record<string, { used_mib: number; total_mib: number }>;
  pool_inflight: unknown;
  pool_memory: unknown;
  requests: number;
}
const samples: Sample[] = [];
let soakResult: Record<string, unknown> = {};
try {
  // The workerd processes below wrangler, each with its inspector; the Worker's is the one whose
  // targets name our script.
  const ports = new Map(readFileSync(portsFile, "utf8").trim().split("\n").map((l) => l.split(" ").map(Number) as [number, number]));
  const workerds = descendants().filter((p) => ports.has(p.pid) || /workerd/.test(p.cmdline));
  const targets: Array<{ pid: number; title: string; cdp: Cdp }> = [];
  for (const p of workerds) {
    const port = ports.get(p.pid);
    if (port === undefined) continue;
    const list = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as Array<{ title?: string; id?: string; webSocketDebuggerUrl: string }>;
    // Scripts of wrangler's and ours ("core:user:<name>"); miniflare's internal services are skipped.
    for (const t of list) if (t.id?.startsWith("core:user:")) targets.push({ pid: p.pid, title: t.id.slice("core:user:".length), cdp: await Cdp.open(t.webSocketDebuggerUrl) });
  }
  log(`workerd processes: ${workerds.map((p) => `${p.pid}`).join(", ")}; inspector targets: ${targets.map((t) => `${t.pid}/${t.title}`).join(", ")}`);
  // A process is named by the script it runs: "ProxyWorker" is wrangler's own, in front of ours.
  const nameOf = (pid: number) => targets.find((t) => t.pid === pid)?.title ?? `workerd ${pid}`;

  const tenant = `mem-${Date.now().toString(36)}`;
  const edge = new OpenAI({ baseURL: `${stack.edgeUrl}/v1`, apiKey: await tenantKey(stack, tenant), maxRetries: 0, timeout: 300_000 });
  const t0 = Date.now();
  const sample = async (phase: string, gc: boolean) => {
    if (gc) for (const t of targets) await t.cdp.send("HeapProfiler.collectGarbage").catch(() => undefined);
    const heaps: Record<string, { used_mib: number; total_mib: number }> = {};
    for (const t of targets) {
      const h = await t.cdp.send<{ usedSize: number; totalSize: number }>("Runtime.getHeapUsage").catch(() => undefined);
      if (h) heaps[t.title] = { used_mib: round(h.usedSize / 2 ** 20), total_mib: round(h.totalSize / 2 ** 20) };
    }
    const rss = Object.fromEntries(descendants().filter((p) => /workerd/.test(p.cmdline) || ports.has(p.pid)).map((p) => [nameOf(p.pid), rssParts(p.pid)]));
    const stats = await stack.admin<{ pools: Array<Record<string, unknown>> }>("GET", "/stats").catch(() => undefined);
    const pool = stats?.body.pools?.[0] as Record<string, unknown> | undefined;
    const s = { t_s: Math.round((Date.now() - t0) / 1000), phase, gc, rss_mib: rss, heap: heaps, pool_inflight: pool?.inflight, pool_memory: pool?.memory, requests: done };
    samples.push(s);
    log(JSON.stringify(s));
  };
  let done = 0;
  const errors: Record<string, number> = {};
  await sample("start", true);
  const end = Date.now() + opts.minutes * 60_000;
  let k = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      await new Promise((r) => setTimeout(r, opts.sampleS * 1000));
      if (!sampling) break;
      k++;
      await sample("soak", opts.gcEvery > 0 && k % opts.gcEvery === 0);
    }
  })();
  let next = 0;
  await Promise.all(
    Array.from({ length: opts.concurrency }, async () => {
      while (Date.now() < end) {
        const i = next++;
        const r = await streamOnce(edge, { model: MODEL, prompt: `Request ${i}: summarise the operating manual of a freight switchyard, section ${i % 97}, for a new signal operator.`, maxTokens: 16 + (i % 48) });
        if (r.ok) done++;
        else errors[r.error ?? "?"] = (errors[r.error ?? "?"] ?? 0) + 1;
      }
    }),
  );
  sampling = false;
  await sampler;
  log(`soak done: ${done} ok, failed: ${JSON.stringify(errors)}`);
  soakResult = { requests_ok: done, errors };
  await new Promise((r) => setTimeout(r, 5_000));
  await sample("idle", false);
  await sample("idle+gc", true);
  await new Promise((r) => setTimeout(r, 20_000));
  await sample("idle+gc+20s", true);
  for (const t of targets) t.cdp.close();
} finally {
  writeFileSync(join(opts.out, "samples.json"), `${JSON.stringify({ opts, machine: machineInfo({ bench: "edge-memory", load_average_end: loadavg().map((x) => Math.round(x * 100) / 100) }), soak: soakResult, summary: summarize(samples), samples }, null, 1)}\n`);
  log(`summary: ${JSON.stringify(summarize(samples))}`);
  await stop();
}

/** Resident memory split as the kernel counts it: anonymous (heaps), file-backed, shared memory (MiB). */
function rssParts(pid: number): Record<string, number> {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
    return { total: round(kb("VmRSS") / 1024), anon: round(kb("RssAnon") / 1024), file: round(kb("RssFile") / 1024), shmem: round(kb("RssShmem") / 1024) };
  } catch {
    return {};
  }
}

/**
 * Per process: resident memory and V8 heap at the start (after a GC), the least-squares slopes
 * (MiB/min) after the first minute of the soak over every sample and over those taken right after
 * a forced GC, and what is left once the load stopped and a GC ran.
 */
function summarize(all: Sample[]) {
  const slope = (pts: Array<[number, number]>) => {
    if (pts.length < 3) return null;
    const mx = pts.reduce((a, p) => a + p[0], 0) / pts.length;
    const my = pts.reduce((a, p) => a + p[1], 0) / pts.length;
    const den = pts.reduce((a, p) => a + (p[0] - mx) ** 2, 0);
    return den === 0 ? 0 : round(pts.reduce((a, p) => a + (p[0] - mx) * (p[1] - my), 0) / den);
  };
  const soak = all.filter((s) => s.phase === "soak" && s.t_s >= 60);
  const names = [...new Set(all.flatMap((s) => Object.keys(s.rss_mib)))];
  return Object.fromEntries(
    names.map((n) => {
      const series = (from: Sample[], f: (s: Sample) => number | undefined) => from.flatMap((s) => (f(s) === undefined ? [] : [[s.t_s / 60, f(s) as number] as [number, number]]));
      const rss = (s: Sample) => s.rss_mib[n]?.total;
      const heap = (s: Sample) => s.heap[n]?.used_mib;
      const start = all.find((s) => s.phase === "start");
      const idle = all.find((s) => s.phase === "idle+gc");
      return [
        n,
        {
          rss_start: start ? rss(start) : null,
          rss_max: Math.max(...all.map((s) => rss(s) ?? 0)),
          rss_slope_mib_per_min: slope(series(soak, rss)),
          rss_after_gc_slope_mib_per_min: slope(series(soak.filter((s) => s.gc), rss)),
          rss_idle_after_gc: idle ? rss(idle) : null,
          heap_used_start: start ? heap(start) : null,
          heap_used_after_gc: soak.filter((s) => s.gc).map((s) => heap(s) ?? null),
          heap_used_after_gc_slope_mib_per_min: slope(series(soak.filter((s) => s.gc), heap)),
          heap_used_idle_after_gc: idle ? heap(idle) : null,
        },
      ];
    }),
  );
}

function round(x: number): number {
  return Math.round(x * 10) / 10;
}
