/**
 * Load and soak through the whole local stack (issue 9, "Load"): wrangler dev serving a frozen
 * Worker bundle, node agents with the `openai` adapter in front of standalone emulator servers,
 * and the official `openai` client. Three phases, each checked for exact usage and leaked
 * in-flight counts afterwards:
 *
 *   overhead  requests one at a time, alternating between the edge and the same engine reached
 *             directly: what the edge and agent add to TTFT and end-to-end time (p50, p99);
 *   burst     `--concurrency` streaming requests opened at once (1,000 by default), held open by
 *             long outputs, so that they are all streaming at the same time;
 *   soak      `--soak-concurrency` streams kept in flight for `--soak-minutes`, with the resident
 *             memory of every process of the stack sampled throughout.
 *
 *   npx tsx bench/load/run.ts [--concurrency 1000] [--soak-minutes 10] [--out bench/results/load]
 *
 * Loopback only; every phase is bounded in count and time.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { Command, InvalidArgumentError } from "commander";
import OpenAI from "openai";
import { secretVersionOf } from "../../dataplane/agent/inbound-auth";
import { signRequest } from "../../protocol/signing";
import { ROOT, type RunningAgentProcess } from "../../scripts/dev-stack";
import { startLoadStack } from "./load-stack";
import { summarizeValues, type Stats } from "../lib/stats";
import { machineInfo, tenantKey } from "../recipes/common";
import { usageByRole } from "./processes";
import { type StreamResult, streamOnce } from "./stream";

const MODEL = "llama-3-8b";

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError("must be a positive integer");
  return n;
}
function positiveNumber(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError("must be a positive number");
  return n;
}

const program = new Command("bench/load/run.ts")
  .description("Load and soak through the local stack: edge overhead, a burst of concurrent streams, a memory soak")
  .option("--nodes <n>", "agents, each in front of its own emulator server", positiveInt, 4)
  .option("--concurrency <n>", "streams opened at once in the burst", positiveInt, 1000)
  .option("--burst-tokens <n>", "output tokens of each burst stream", positiveInt, 24)
  .option("--overhead-requests <n>", "requests per path (edge, direct) in the overhead phase", positiveInt, 200)
  .option("--soak-minutes <m>", "length of the soak", positiveNumber, 10)
  .option("--soak-concurrency <n>", "streams kept in flight during the soak", positiveInt, 200)
  .option("--time-scale <x>", "emulator speed in the overhead and soak phases (below 1: slower than an H100, so a 2-core box can proxy every token)", positiveNumber, 0.25)
  .option("--edge-logs", "keep wrangler dev's per-request and info logs", false)
  .option("--out <dir>", "results folder", join(ROOT, "bench", "results", "load"));
program.parse();
const opts = program.opts<{ nodes: number; concurrency: number; burstTokens: number; overheadRequests: number; soakMinutes: number; soakConcurrency: number; timeScale: number; edgeLogs: boolean; out: string }>();

const log = (line: string) => process.stderr.write(`[load ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
const round = (x: number | null, d = 1) => (x === null ? null : Math.round(x * 10 ** d) / 10 ** d);
/** Failed requests by error message. */
const tally = (rs: StreamResult[]) => {
  const out: Record<string, number> = {};
  for (const r of rs) if (!r.ok) out[r.error ?? "?"] = (out[r.error ?? "?"] ?? 0) + 1;
  return out;
};
const prompt = (i: number) => `Request ${i}: summarise the operating manual of a freight switchyard, section ${i % 97}, for a new signal operator.`;

// wrangler dev logs one line per request through its own Node process; warnings only, unless
// --edge-logs (the devtools inspector, which costs far more, is off: startDevStack's `inspector`).
if (!opts.edgeLogs) process.env.WRANGLER_LOG = "warn";

const stateDir = join(ROOT, ".switchyard", "bench-load");
mkdirSync(join(stateDir, "logs"), { recursive: true });
mkdirSync(opts.out, { recursive: true });

const maxNumSeqs = Math.ceil(opts.concurrency / opts.nodes) + 16;
// The agent sends the engine everything it admits; the edge's per-node limit is this too.
const { stack, engines, stop } = await startLoadStack({ stateDir, model: MODEL, nodes: opts.nodes, nodePrefix: "load", maxNumSeqs, agentConcurrency: maxNumSeqs, timeScale: opts.timeScale, log });

const results: Record<string, unknown> = { parameters: { ...opts, out: undefined, maxNumSeqs, model: MODEL } };
try {
  // Room for the whole burst at the edge: nobody waits past the bound, nobody gets a 429.
  await stack.admin("PUT", `/models/${MODEL}`, { max_queue_wait_ms: 120_000 });
  const tenant = `load-${Date.now().toString(36)}`;
  const apiKey = await tenantKey(stack, tenant);
  const edge = new OpenAI({ baseURL: `${stack.edgeUrl}/v1`, apiKey, maxRetries: 0, timeout: 300_000 });
  const direct = engines.map((e) => new OpenAI({ baseURL: `${e.url}/v1`, apiKey: "unused", maxRetries: 0, timeout: 300_000 }));
  /** The agent reached without the edge: requests signed here with the node's secret, as the edge signs them. */
  const viaAgent = (nodeId: string, a: RunningAgentProcess) => {
    const secret = (JSON.parse(readFileSync(a.configPath, "utf8")) as { edge: { nodeSecret: string } }).edge.nodeSecret;
    return new OpenAI({
      baseURL: `${a.url}/v1`,
      apiKey: "unused",
      maxRetries: 0,
      timeout: 300_000,
      fetch: async (url: string | URL | Request, init?: RequestInit) => {
        const u = new URL(url instanceof Request ? url.url : String(url));
        const body = new TextEncoder().encode(typeof init?.body === "string" ? init.body : "");
        const headers = new Headers(init?.headers);
        const sig = await signRequest({ nodeId, keyVersion: secretVersionOf(secret), secret, method: init?.method ?? "GET", path: u.pathname + u.search, body, tenant });
        for (const [k, v] of Object.entries(sig)) headers.set(k, v);
        return fetch(u, { ...init, headers, body });
      },
    });
  };
  const agentClients = [...stack.agents.entries()].map(([id, a]) => viaAgent(id, a));
  let sent = 0; // through the edge, for the usage check

  /** Usage the ledger holds for the tenant, and whether the pool and nodes hold any request. */
  const ledgerTotals = async () => (await stack.admin<{ totals: { num_model_requests: number; input_tokens: number; output_tokens: number } }>("GET", `/tenants/${tenant}/usage`)).body.totals;
  const edgeInflight = async () => {
    const s = await stack.admin<{ pools: Array<{ inflight: number; waiting: number }> }>("GET", "/stats");
    return s.body.pools.reduce((a, p) => a + p.inflight + p.waiting, 0);
  };
  const nodesInflight = async () => (await stack.admin<{ data: Array<{ live: Array<{ inflight: number }> }> }>("GET", "/nodes")).body.data.flatMap((n) => n.live).reduce((a, l) => a + l.inflight, 0);
  const client = { requests: 0, promptTokens: 0, completionTokens: 0, failed: 0 };
  const account = (r: StreamResult) => {
    if (r.ok) {
      client.requests++;
      client.promptTokens += r.promptTokens;
      client.completionTokens += r.completionTokens;
    } else client.failed++;
  };
  /** After a phase: in-flight counts back to zero and the ledger equal to what clients were told. */
  const check = async (phase: string) => {
    const deadline = Date.now() + 15_000;
    let pool = await edgeInflight();
    let nodes = await nodesInflight();
    while ((pool !== 0 || nodes !== 0) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 500));
      pool = await edgeInflight();
      nodes = await nodesInflight();
    }
    const ledger = await ledgerTotals();
    const exact = ledger.num_model_requests === client.requests && ledger.input_tokens === client.promptTokens && ledger.output_tokens === client.completionTokens;
    const out = { phase, sent, client: { ...client }, ledger, usage_exact: exact, pool_inflight_after: pool, node_inflight_after: nodes };
    log(`${phase}: ${JSON.stringify(out)}`);
    return out;
  };

  // Warm the path (JIT, connections, caches) before anything is measured.
  await Promise.all(Array.from({ length: 8 }, (_, i) => streamOnce(edge, { model: MODEL, prompt: prompt(-i), maxTokens: 4 }).then((r) => (sent++, account(r)))));
  await Promise.all(direct.map((d, i) => streamOnce(d, { model: MODEL, prompt: prompt(-100 - i), maxTokens: 4 })));

  // --- overhead: the same engines with and without the edge, one request at a time -------------
  log(`overhead: ${opts.overheadRequests} requests per path, rotating edge / agent / engine`);
  const viaEdge: StreamResult[] = [];
  const viaDirect: StreamResult[] = [];
  const viaAgentOnly: StreamResult[] = [];
  const paths = ["edge", "agent", "direct"] as const;
  for (let i = 0; i < opts.overheadRequests; i++) {
    // Rotate which goes first, so drift in the machine's load falls on every path alike.
    for (let k = 0; k < paths.length; k++) {
      const path = paths[(i + k) % paths.length];
      // Each path its own prompt: the engine would otherwise serve the second and third from its
      // prefix cache, and the paths would measure different prefills.
      const req = { model: MODEL, prompt: `[${path}] ${prompt(i)}`, maxTokens: 8 };
      if (path === "edge") {
        const r = await streamOnce(edge, req);
        sent++;
        account(r);
        viaEdge.push(r);
      } else if (path === "agent") {
        viaAgentOnly.push(await streamOnce(agentClients[i % agentClients.length] as OpenAI, req));
      } else {
        viaDirect.push(await streamOnce(direct[i % direct.length] as OpenAI, req));
      }
    }
  }
  const stat = (rs: StreamResult[], f: (r: StreamResult) => number | undefined): Stats => summarizeValues(rs.filter((r) => r.ok).map((r) => f(r) ?? Number.NaN));
  const overhead = {
    edge: { ttft_ms: stat(viaEdge, (r) => r.ttftMs), e2e_ms: stat(viaEdge, (r) => r.e2eMs), failed: viaEdge.filter((r) => !r.ok).length },
    agent: { ttft_ms: stat(viaAgentOnly, (r) => r.ttftMs), e2e_ms: stat(viaAgentOnly, (r) => r.e2eMs), failed: viaAgentOnly.filter((r) => !r.ok).length },
    direct: { ttft_ms: stat(viaDirect, (r) => r.ttftMs), e2e_ms: stat(viaDirect, (r) => r.e2eMs), failed: viaDirect.filter((r) => !r.ok).length },
  };
  results.overhead = { ...overhead, check: await check("overhead") };

  // --- burst: every stream open at once ----------------------------------------------------------
  log(`burst: ${opts.concurrency} streams of ${opts.burstTokens} tokens`);
  let streaming = 0;
  let peakStreaming = 0;
  let peakEdge = 0;
  let polling = true;
  const poller = (async () => {
    while (polling) {
      peakEdge = Math.max(peakEdge, await edgeInflight().catch(() => 0));
      await new Promise((r) => setTimeout(r, 250));
    }
  })();
  const burstStart = performance.now();
  const burst = await Promise.all(
    Array.from({ length: opts.concurrency }, async (_, i) => {
      let open = false;
      const r = await streamOnce(edge, {
        model: MODEL,
        prompt: prompt(10_000 + i),
        maxTokens: opts.burstTokens,
        onFirstToken: () => {
          open = true;
          peakStreaming = Math.max(peakStreaming, ++streaming);
        },
      });
      if (open) streaming--;
      sent++;
      account(r);
      return r;
    }),
  );
  const burstSeconds = (performance.now() - burstStart) / 1000;
  polling = false;
  await poller;
  const errors = tally(burst);
  results.burst = {
    streams: opts.concurrency,
    ok: burst.filter((r) => r.ok).length,
    errors,
    peak_streaming_at_client: peakStreaming,
    peak_inflight_at_edge: peakEdge,
    seconds: round(burstSeconds, 2),
    ttft_ms: stat(burst, (r) => r.ttftMs),
    e2e_ms: stat(burst, (r) => r.e2eMs),
    output_tokens_per_s: round(burst.reduce((a, r) => a + r.completionTokens, 0) / burstSeconds, 0),
    check: await check("burst"),
  };

  // --- soak: steady streams for minutes, memory sampled -------------------------------------------
  log(`soak: ${opts.soakConcurrency} streams in flight for ${opts.soakMinutes} min`);
  const soakEnd = Date.now() + opts.soakMinutes * 60_000;
  const soakStart = Date.now();
  const memory: Array<{ t_s: number; rss_mib: Record<string, number>; fds: Record<string, number> }> = [];
  const pids: Record<string, Set<number>> = {};
  const sample = () => {
    const u = Object.entries(usageByRole());
    for (const [role, v] of u) for (const pid of v.pids) (pids[role] ??= new Set()).add(pid);
    memory.push({ t_s: Math.round((Date.now() - soakStart) / 1000), rss_mib: Object.fromEntries(u.map(([k, v]) => [k, round(v.rssBytes / 2 ** 20, 1) as number])), fds: Object.fromEntries(u.map(([k, v]) => [k, v.fds])) });
  };
  sample();
  const sampler = setInterval(sample, 10_000);
  const soak: StreamResult[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: opts.soakConcurrency }, async () => {
      while (Date.now() < soakEnd) {
        const i = next++;
        const r = await streamOnce(edge, { model: MODEL, prompt: prompt(100_000 + i), maxTokens: 16 + (i % 48) });
        sent++;
        account(r);
        soak.push(r);
      }
    }),
  );
  clearInterval(sampler);
  sample();
  const roles = [...new Set(memory.flatMap((m) => Object.keys(m.rss_mib)))].filter((r) => r !== "other");
  // Growth is judged after the first minute (JIT, pools and caches fill first) by a least-squares slope.
  const slope = (role: string) => {
    const pts = memory.filter((m) => m.t_s >= 60 && m.rss_mib[role] !== undefined).map((m) => [m.t_s / 60, m.rss_mib[role] as number] as const);
    if (pts.length < 3) return null;
    const mx = pts.reduce((a, p) => a + p[0], 0) / pts.length;
    const my = pts.reduce((a, p) => a + p[1], 0) / pts.length;
    const num = pts.reduce((a, p) => a + (p[0] - mx) * (p[1] - my), 0);
    const den = pts.reduce((a, p) => a + (p[0] - mx) ** 2, 0);
    return den === 0 ? 0 : num / den;
  };
  const at = (role: string, pick: "first" | "last" | "max") => {
    const vals = memory.filter((m) => m.t_s >= 60 || pick === "max").map((m) => m.rss_mib[role]).filter((v): v is number => v !== undefined);
    if (vals.length === 0) return null;
    return pick === "first" ? vals[0] : pick === "last" ? vals[vals.length - 1] : Math.max(...vals);
  };
  results.soak = {
    minutes: opts.soakMinutes,
    concurrency: opts.soakConcurrency,
    requests: soak.length,
    ok: soak.filter((r) => r.ok).length,
    failed: soak.filter((r) => !r.ok).length,
    errors: tally(soak),
    ttft_ms: stat(soak, (r) => r.ttftMs),
    e2e_ms: stat(soak, (r) => r.e2eMs),
    memory_mib: Object.fromEntries(roles.map((r) => [r, { at_1_min: at(r, "first"), at_end: at(r, "last"), max: at(r, "max"), slope_mib_per_min: round(slope(r), 2) }])),
    processes_seen: Object.fromEntries(Object.entries(pids).map(([r, set]) => [r, set.size])),
    open_fds: Object.fromEntries(roles.map((r) => [r, { at_start: memory[0]?.fds[r] ?? null, at_end: memory[memory.length - 1]?.fds[r] ?? null, max: Math.max(...memory.map((m) => m.fds[r] ?? 0)) }])),
    memory_samples: memory,
    check: await check("soak"),
  };
} finally {
  results.machine = machineInfo({ bench: "load", load_average_end: loadavg().map((x) => Math.round(x * 100) / 100) });
  writeFileSync(join(opts.out, "results.json"), `${JSON.stringify(results, null, 1)}\n`);
  await stop();
}
writeFileSync(join(opts.out, "results.md"), renderMarkdown(results));
log(`wrote ${join(opts.out, "results.md")}`);

function renderMarkdown(r: Record<string, unknown>): string {
  // biome-ignore lint: the shape is the one written above.
  const o = r as any;
  const m = o.machine;
  const ms = (x: number | null) => (x === null ? "–" : x.toFixed(1));
  const checkRow = (c: any) => `| ${c.phase} | ${c.client.requests} | ${c.ledger.num_model_requests} | ${c.client.promptTokens} / ${c.ledger.input_tokens} | ${c.client.completionTokens} / ${c.ledger.output_tokens} | ${c.usage_exact ? "yes" : "**no**"} | ${c.pool_inflight_after} | ${c.node_inflight_after} |`;
  const oh = o.overhead;
  const diff = (from: "edge" | "agent", to: "agent" | "direct", k: "p50" | "p99", f: "ttft_ms" | "e2e_ms") => ms(oh[from][f][k] - oh[to][f][k]);
  const diffRow = (label: string, from: "edge" | "agent", to: "agent" | "direct") => `| ${label} | ${diff(from, to, "p50", "ttft_ms")} | ${diff(from, to, "p99", "ttft_ms")} | ${diff(from, to, "p50", "e2e_ms")} | ${diff(from, to, "p99", "e2e_ms")} | |`;
  const lines = [
    "# Load and soak through the local stack",
    "",
    `Generated by \`npx tsx bench/load/run.ts\` on ${String(m.date).slice(0, 10)}: ${m.cpu_model}, ${m.cpu_cores} cores, ${m.memory_gib} GiB, ${m.os}; Node ${m.node}; wrangler ${m.packages.wrangler}, workerd ${m.packages.workerd}; commit ${String(m.commit).slice(0, 7)}${m.dirty ? " (dirty)" : ""}. Load average at the end ${m.load_average_end.join(", ")} — the box is shared with other work, so read medians and ratios.`,
    "",
    `Stack: wrangler dev serving a frozen bundle of the Worker (workerd, local D1 and Durable Objects), ${o.parameters.nodes} node agents (\`openai\` adapter), each in front of its own standalone emulator server (\`dataplane/engines/sim/main.ts\`, Llama-3-8B on H100 calibration at time scale ${o.parameters.timeScale}, max_num_seqs ${o.parameters.maxNumSeqs}); the official \`openai\` client, streaming with \`include_usage\`. All on loopback.`,
    "",
    "## What the edge and agent add",
    "",
    `${o.parameters.overheadRequests} streaming requests (8 output tokens) per path, one at a time, rotating between the edge, the agents reached directly, and the engines reached directly.`,
    "",
    "| path | TTFT p50 (ms) | TTFT p99 (ms) | E2E p50 (ms) | E2E p99 (ms) | failed |",
    "| --- | ---: | ---: | ---: | ---: | ---: |",
    `| direct to the engine | ${ms(oh.direct.ttft_ms.p50)} | ${ms(oh.direct.ttft_ms.p99)} | ${ms(oh.direct.e2e_ms.p50)} | ${ms(oh.direct.e2e_ms.p99)} | ${oh.direct.failed} |`,
    `| client → agent → engine (signed here) | ${ms(oh.agent.ttft_ms.p50)} | ${ms(oh.agent.ttft_ms.p99)} | ${ms(oh.agent.e2e_ms.p50)} | ${ms(oh.agent.e2e_ms.p99)} | ${oh.agent.failed} |`,
    `| client → edge → agent → engine | ${ms(oh.edge.ttft_ms.p50)} | ${ms(oh.edge.ttft_ms.p99)} | ${ms(oh.edge.e2e_ms.p50)} | ${ms(oh.edge.e2e_ms.p99)} | ${oh.edge.failed} |`,
    diffRow("added by the agent (agent − direct)", "agent", "direct"),
    diffRow("added by the edge (edge − agent)", "edge", "agent"),
    diffRow("added by edge + agent (edge − direct)", "edge", "direct"),
    "",
    "Differences are between the paths' own percentiles (p99 − p99), not percentiles of per-request differences. Under wrangler dev the edge path has one more hop than production: wrangler's proxy worker in a second workerd in front of the Worker.",
    "",
    "## Burst",
    "",
    `${o.burst.streams} streams opened at once, ${o.parameters.burstTokens} output tokens each: ${o.burst.ok} completed, peak ${o.burst.peak_streaming_at_client} streaming at the same time at the client (${o.burst.peak_inflight_at_edge} in flight or waiting at the edge), ${o.burst.seconds} s in all, ${o.burst.output_tokens_per_s} output tokens/s. Errors: ${Object.keys(o.burst.errors).length === 0 ? "none" : JSON.stringify(o.burst.errors)}. TTFT p50 ${ms(o.burst.ttft_ms.p50)} ms, p99 ${ms(o.burst.ttft_ms.p99)} ms; end to end p50 ${ms(o.burst.e2e_ms.p50)} ms, p99 ${ms(o.burst.e2e_ms.p99)} ms.`,
    "",
    "## Soak",
    "",
    `${o.soak.concurrency} streams kept in flight for ${o.soak.minutes} min: ${o.soak.requests} requests, ${o.soak.failed} failed${o.soak.failed > 0 ? ` (${JSON.stringify(o.soak.errors)})` : ""}; TTFT p50 ${ms(o.soak.ttft_ms.p50)} ms, p99 ${ms(o.soak.ttft_ms.p99)} ms. Resident memory (MiB) of the stack's processes, sampled every 10 s; growth is the least-squares slope after the first minute. Processes seen during the soak (more than were started means one restarted): ${JSON.stringify(o.soak.processes_seen)}.`,
    "",
    "| process | RSS at 1 min | RSS at end | RSS max | RSS slope (MiB/min) | open fds at start / end / max |",
    "| --- | ---: | ---: | ---: | ---: | ---: |",
    ...Object.entries(o.soak.memory_mib).map(([role, v]: [string, any]) => `| ${role} | ${v.at_1_min} | ${v.at_end} | ${v.max} | ${v.slope_mib_per_min} | ${o.soak.open_fds[role].at_start} / ${o.soak.open_fds[role].at_end} / ${o.soak.open_fds[role].max} |`),
    "",
    "## Usage and in-flight counts after each phase",
    "",
    "Cumulative over the run: what the client was told (final usage chunk of each successful stream) against the tenant's ledger (`GET /admin/tenants/:id/usage`), and the pool's and nodes' in-flight counts once the phase ended.",
    "",
    "| after | client requests | ledger requests | prompt tokens client / ledger | completion tokens client / ledger | exact | pool in flight | nodes in flight |",
    "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
    checkRow(o.overhead.check),
    checkRow(o.burst.check),
    checkRow(o.soak.check),
    "",
  ];
  return lines.join("\n");
}
