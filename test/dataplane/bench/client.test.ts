/**
 * The benchmark client against a scripted SSE server: measured TTFT/TPOT/ITL match the delays the
 * server actually produced, arrivals stay on schedule when answers are slow (open loop), the
 * concurrency bound holds, aborting keeps partial results, sessions wait for answers and replay
 * history, tenants use their own keys, failures are recorded with their kind.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { loadRun, runFileFor } from "../../../bench/client/records";
import { runToFiles } from "../../../bench/client/run-files";
import { runWorkload } from "../../../bench/client/runner";
import { BenchUsageError } from "../../../bench/lib/errors";
import type { Workload, WorkloadRequest } from "../../../bench/workloads/format";
import { tempDir } from "../../support/tmp";
import { evenChunks, type Script, ScriptedServer } from "./scripted-server";

function memWorkload(reqs: Array<Partial<WorkloadRequest> & { timestampMs: number }>): Workload {
  return {
    file: "memory",
    header: undefined,
    requests: reqs.map((r, index) => ({ index, line: index + 1, prompt: `prompt ${index}`, ...r })),
  };
}

let script: (body: Record<string, unknown>) => Script = () => ({ chunks: evenChunks(3, 10, 5), usage: { prompt_tokens: 10, completion_tokens: 3 } });
const server = new ScriptedServer((body) => script(body));
const dir = tempDir("bench-client");

beforeAll(() => server.start());
afterAll(async () => {
  await server.stop();
  dir.cleanup();
});
afterEach(() => {
  server.requests.length = 0;
  server.maxInflight = 0;
});

describe("timing", () => {
  it("measures TTFT, TPOT and inter-token latencies of a scripted stream within a few ms", async () => {
    // First token 120 ms after arrival, then one every 25 ms: 8 tokens.
    script = () => ({ chunks: evenChunks(8, 120, 25), usage: { prompt_tokens: 50, completion_tokens: 8, cached_tokens: 32 }, headers: { "x-switchyard-node": "gpu-1", "x-switchyard-region": "eu", "x-switchyard-routing-strategy": "prefix-cache", "x-switchyard-prefix-blocks": "2/3" } });
    const res = await runWorkload(memWorkload([{ timestampMs: 0, outputLength: 8 }]), { baseUrl: server.url, model: "m", apiKey: "k" });
    const r = res.records[0];
    const seen = server.requests[0];
    expect(r && seen).toBeTruthy();
    if (!r || !seen) return;
    expect(r.status).toBe("ok");
    // Against what the server actually did (same clock): the first token left the server at
    // writes[0]; the client saw it within loopback time of that (a few ms; the bound leaves room
    // for a loaded CI box, where the process shares two cores with the rest of the suite).
    const sentAt = res.clockOrigin + r.sent_ms;
    const firstTokenSeen = sentAt + (r.ttft_ms as number);
    expect(firstTokenSeen - (seen.writes[0] as number)).toBeGreaterThanOrEqual(-0.5);
    expect(firstTokenSeen - (seen.writes[0] as number)).toBeLessThan(25);
    // Against the script: never early; late only by as much as the server's timers (loose, as a
    // busy machine runs timers late).
    expect(r.ttft_ms as number).toBeGreaterThanOrEqual(119);
    expect(r.ttft_ms as number).toBeLessThan(400);
    expect(r.itl_ms).toHaveLength(7);
    const actualGaps = seen.writes.slice(1).map((w, i) => w - (seen.writes[i] as number));
    r.itl_ms.forEach((gap, i) => expect(Math.abs(gap - (actualGaps[i] as number))).toBeLessThan(25));
    // The mean gap and TPOT agree with the server's own mean gap (≈ 25 ms as scripted).
    const meanItl = r.itl_ms.reduce((s, x) => s + x, 0) / r.itl_ms.length;
    const actualMeanGap = actualGaps.reduce((s, x) => s + x, 0) / actualGaps.length;
    expect(actualMeanGap).toBeGreaterThan(22);
    expect(Math.abs(meanItl - actualMeanGap)).toBeLessThan(5);
    // TPOT = (end − first token)/(tokens − 1).
    expect(Math.abs((r.tpot_ms as number) - actualMeanGap)).toBeLessThan(5);
    expect(r.e2e_ms as number).toBeGreaterThanOrEqual(r.ttft_ms as number);
    expect(r).toMatchObject({ prompt_tokens: 50, completion_tokens: 8, cached_tokens: 32, node: "gpu-1", region: "eu", routing_strategy: "prefix-cache", prefix_blocks: "2/3", http_status: 200, stream: true, expected_output_tokens: 8 });
    // What was sent: the OpenAI request.
    expect(seen.body).toMatchObject({ model: "m", stream: true, stream_options: { include_usage: true }, max_tokens: 8, messages: [{ role: "user", content: "prompt 0" }] });
    expect(seen.headers.authorization).toBe("Bearer k");
  });

  it("times non-streaming requests end to end (no TTFT)", async () => {
    script = () => ({ chunks: [{ atMs: 0, content: "whole answer" }], endAtMs: 80, usage: { prompt_tokens: 5, completion_tokens: 2 } });
    const res = await runWorkload(memWorkload([{ timestampMs: 0 }]), { baseUrl: `${server.url}/v1`, model: "m", stream: false, recordText: true });
    const r = res.records[0];
    expect(r?.status).toBe("ok");
    expect(r?.ttft_ms).toBeNull();
    expect(r?.e2e_ms as number).toBeGreaterThanOrEqual(79);
    // Late only by timer and loopback delays (loose: a busy machine runs timers late).
    expect(r?.e2e_ms as number).toBeLessThan(400);
    expect(r?.output).toBe("whole answer");
    expect(r?.completion_tokens).toBe(2);
    expect(server.requests[0]?.headers.authorization).toBeUndefined();
  });
});

describe("open loop", () => {
  it("sends on schedule while answers take far longer than the gaps", async () => {
    script = () => ({ chunks: evenChunks(2, 800, 10), usage: { prompt_tokens: 5, completion_tokens: 2 } });
    const times = Array.from({ length: 12 }, (_, i) => i * 50);
    const t0 = performance.now();
    const res = await runWorkload(memWorkload(times.map((t) => ({ timestampMs: t }))), { baseUrl: server.url, model: "m" });
    expect(res.ok).toBe(12);
    // Never early, and late by timer delays only: a client that waited for an answer (800 ms)
    // would be late by hundreds of ms. Typically a few ms; the bounds leave room for a loaded box.
    const lateness = res.records.map((r) => r.sent_ms - r.scheduled_ms).sort((a, b) => a - b);
    for (const r of res.records) {
      expect(r.scheduled_ms).toBeCloseTo(r.timestamp_ms, 6);
      expect(r.sent_ms - r.scheduled_ms).toBeGreaterThanOrEqual(-1);
      expect(r.sent_ms - r.scheduled_ms).toBeLessThan(250);
    }
    expect(lateness[6] as number).toBeLessThan(50);
    // The server saw them arrive 50 ms apart, all before the first answer came back.
    const arrivals = server.requests.map((s) => s.arrivedAt - t0).sort((a, b) => a - b);
    arrivals.forEach((a, i) => expect(Math.abs(a - (times[i] as number))).toBeLessThan(250));
    expect(server.maxInflight).toBe(12);
  });

  it("compresses time with timeScale", async () => {
    script = () => ({ chunks: evenChunks(1, 5, 1) });
    const res = await runWorkload(memWorkload([{ timestampMs: 0 }, { timestampMs: 400 }, { timestampMs: 800 }]), { baseUrl: server.url, model: "m", timeScale: 4 });
    expect(res.records.every((r) => r.scheduled_ms === r.timestamp_ms / 4)).toBe(true);
    // Sent on the compressed schedule: the last at 200 ms, never early, late by timer delays only
    // (loose for a loaded box; unscaled it would be 800 ms).
    for (const r of res.records) {
      expect(r.sent_ms - r.scheduled_ms).toBeGreaterThanOrEqual(-1);
      expect(r.sent_ms - r.scheduled_ms).toBeLessThan(250);
    }
  });

  it("never has more than maxConcurrency requests in flight, and records the wait", async () => {
    script = () => ({ chunks: evenChunks(1, 100, 1), usage: { prompt_tokens: 1, completion_tokens: 1 } });
    const res = await runWorkload(memWorkload(Array.from({ length: 9 }, () => ({ timestampMs: 0 }))), { baseUrl: server.url, model: "m", maxConcurrency: 3 });
    expect(res.ok).toBe(9);
    expect(server.maxInflight).toBe(3);
    const lags = res.records.map((r) => r.sent_ms - r.scheduled_ms).sort((a, b) => a - b);
    // Three waves of three: the last three waited about two answers, the first none (less than one
    // answer's 100 ms, with room for a loaded box).
    expect(lags[8] as number).toBeGreaterThan(180);
    expect(lags[0] as number).toBeLessThan(90);
  });
});

describe("stopping", () => {
  it("keeps finished requests, marks in-flight ones cancelled, and sends nothing more after an abort", async () => {
    script = (body) => {
      const slow = String((body.messages as Array<{ content: string }>)[0]?.content).endsWith("slow");
      return slow ? { chunks: evenChunks(50, 50, 20), usage: { prompt_tokens: 1, completion_tokens: 50 } } : { chunks: evenChunks(2, 10, 5), usage: { prompt_tokens: 1, completion_tokens: 2 } };
    };
    const ac = new AbortController();
    const w = memWorkload([
      { timestampMs: 0, prompt: "fast" },
      { timestampMs: 0, prompt: "slow" },
      { timestampMs: 5000, prompt: "never sent" },
    ]);
    setTimeout(() => ac.abort(), 300);
    const out = join(dir.path, "abort.jsonl");
    const t = performance.now();
    const { meta, result } = await runToFiles(w, { output: out, system: "s", baseUrl: server.url, model: "m", signal: ac.signal, keepRecords: true });
    // Stopped at the abort, without waiting for the request scheduled at 5 s (room for a loaded box).
    expect(performance.now() - t).toBeLessThan(4000);
    expect(result.interrupted).toBe(true);
    expect(meta).toMatchObject({ interrupted: true, ok: 1, cancelled: 1, not_sent: 1, sent: 2, requests_total: 3 });
    const loaded = await loadRun(out);
    expect(loaded.records.map((r) => r.status).sort()).toEqual(["cancelled", "ok"]);
    const cancelled = loaded.records.find((r) => r.status === "cancelled");
    expect(cancelled?.ttft_ms as number).toBeGreaterThan(40);
    expect(cancelled?.completion_tokens as number).toBeGreaterThan(3);
    expect(cancelled?.error_type).toBe("cancelled");
    expect(JSON.parse(readFileSync(runFileFor(out), "utf8"))).toMatchObject({ interrupted: true, cancelled: 1 });
    expect(server.requests.some((s) => s.aborted)).toBe(true);
  });
});

describe("sessions and tenants", () => {
  it("sends the next turn only after the previous answer plus think time, with the history", async () => {
    let turn = 0;
    script = () => ({ chunks: [{ atMs: 60, content: `answer ${turn++}` }], usage: { prompt_tokens: 1, completion_tokens: 1 } });
    const w = memWorkload([
      { timestampMs: 0, sessionId: "s1", turn: 0, prompt: "first" },
      { timestampMs: 0, sessionId: "s1", turn: 1, prompt: "second", thinkTimeMs: 100 },
      { timestampMs: 0, sessionId: "s1", turn: 2, prompt: "third", thinkTimeMs: 0 },
    ]);
    const res = await runWorkload(w, { baseUrl: server.url, model: "m", salt: "[run 1]" });
    expect(res.ok).toBe(3);
    const byTurn = [...res.records].sort((a, b) => (a.turn as number) - (b.turn as number));
    const end0 = (byTurn[0]?.sent_ms as number) + (byTurn[0]?.e2e_ms as number);
    expect(byTurn[1]?.sent_ms as number).toBeGreaterThanOrEqual(end0 + 99);
    // Think time once, not twice (200 ms); the rest is timer delay, loose for a loaded box.
    expect(byTurn[1]?.sent_ms as number).toBeLessThan(end0 + 180);
    expect(byTurn[1]?.think_time_ms).toBe(100);
    const third = server.requests[2]?.body.messages;
    expect(third).toEqual([
      { role: "user", content: "[run 1]\nfirst" },
      { role: "assistant", content: "answer 0" },
      { role: "user", content: "second" },
      { role: "assistant", content: "answer 1" },
      { role: "user", content: "third" },
    ]);
    expect(server.requests[0]?.headers["x-session-key"]).toBe("-/s1");
  });

  it("keeps many sessions in their think time at once without Node's listener-leak warning", async () => {
    script = () => ({ chunks: [{ atMs: 5, content: "ok" }], usage: { prompt_tokens: 1, completion_tokens: 1 } });
    const w = memWorkload(Array.from({ length: 24 }, (_, i) => [{ timestampMs: 0, sessionId: `s${i}`, turn: 0 }, { timestampMs: 0, sessionId: `s${i}`, turn: 1, thinkTimeMs: 150 }]).flat());
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
    process.on("warning", onWarning);
    try {
      const ac = new AbortController();
      const res = await runWorkload(w, { baseUrl: server.url, model: "m", signal: ac.signal });
      expect(res.ok).toBe(48);
      // Warnings are emitted on the next tick.
      await new Promise((r) => setImmediate(r));
    } finally {
      process.off("warning", onWarning);
    }
    expect(warnings.filter((x) => x.startsWith("MaxListenersExceededWarning"))).toEqual([]);
  });

  it("ends a session at a failed turn", async () => {
    script = () => ({ status: 503, body: { error: { message: "no healthy node", code: "no_capacity" } } });
    const res = await runWorkload(memWorkload([{ timestampMs: 0, sessionId: "a", turn: 0 }, { timestampMs: 0, sessionId: "a", turn: 1 }]), { baseUrl: server.url, model: "m" });
    expect(res).toMatchObject({ errors: 1, notSent: 1, sent: 1 });
    expect(res.records[0]).toMatchObject({ status: "error", error_type: "http", http_status: 503, error_code: "no_capacity" });
    expect(res.records[0]?.error_message).toContain("no healthy node");
  });

  it("uses each tenant's key and refuses tenants without one", async () => {
    script = () => ({ chunks: evenChunks(1, 1, 1) });
    const w = memWorkload([{ timestampMs: 0, tenant: "acme" }, { timestampMs: 0, tenant: "globex" }]);
    await runWorkload(w, { baseUrl: server.url, model: "m", tenantKeys: { acme: "ka", globex: "kg" } });
    expect(server.requests.map((s) => s.headers.authorization).sort()).toEqual(["Bearer ka", "Bearer kg"]);
    await expect(runWorkload(w, { baseUrl: server.url, model: "m", tenantKeys: { acme: "ka" } })).rejects.toThrow(BenchUsageError);
    await expect(runWorkload(w, { baseUrl: server.url, model: "m", tenantKeys: { acme: "ka" } })).rejects.toThrow(/globex/);
  });
});

describe("failures", () => {
  it("records truncated streams, timeouts and refused connections by kind", async () => {
    script = () => ({ chunks: evenChunks(2, 5, 5), truncate: true });
    const truncated = await runWorkload(memWorkload([{ timestampMs: 0 }]), { baseUrl: server.url, model: "m" });
    expect(truncated.records[0]?.status).toBe("error");
    expect(["protocol", "network"]).toContain(truncated.records[0]?.error_type);
    script = () => ({ chunks: evenChunks(1, 2000, 1) });
    const timedOut = await runWorkload(memWorkload([{ timestampMs: 0 }]), { baseUrl: server.url, model: "m", timeoutMs: 100 });
    expect(timedOut.records[0]).toMatchObject({ status: "error", error_type: "timeout" });
    const refused = await runWorkload(memWorkload([{ timestampMs: 0 }]), { baseUrl: "http://127.0.0.1:9", model: "m" });
    expect(refused.records[0]).toMatchObject({ status: "error", error_type: "network" });
  });

  it("writes the results file and its run file as it goes", async () => {
    script = () => ({ chunks: evenChunks(2, 5, 5), usage: { prompt_tokens: 3, completion_tokens: 2 } });
    const out = join(dir.path, "sub", "run.jsonl");
    const { meta } = await runToFiles(memWorkload([{ timestampMs: 0 }, { timestampMs: 10 }]), { output: out, system: "sys", workloadLabel: "W", qps: 3, baseUrl: server.url, model: "m", modelTimeScale: 4 });
    expect(existsSync(out)).toBe(true);
    expect(meta).toMatchObject({ schema: "switchyard.bench.run.v1", system: "sys", workload: "W", qps: 3, ok: 2, model_time_scale: 4, interrupted: false });
    expect(readFileSync(out, "utf8").trim().split("\n")).toHaveLength(2);
  });
});
