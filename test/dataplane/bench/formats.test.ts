/**
 * Input files: AIBrix's dataset and workload files load as they are (JSONL and JSON arrays, with
 * Python's NaN), ShareGPT dumps, Azure trace CSVs and client logs convert, our own output converts
 * back to a dataset and replays; and every bad input names its file, line and field.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadRun } from "../../../bench/client/records";
import { convertClientLog } from "../../../bench/datasets/client-log";
import { loadDataset, toEntry } from "../../../bench/datasets/format";
import { convertShareGpt } from "../../../bench/datasets/sharegpt";
import { BenchInputError } from "../../../bench/lib/errors";
import { readJsonArray } from "../../../bench/lib/jsonl";
import { loadSummaries } from "../../../bench/report/compare";
import { readAzureTrace } from "../../../bench/workloads/azure";
import { buildAzure, buildReplay, writeWorkload } from "../../../bench/workloads/build";
import { loadWorkload } from "../../../bench/workloads/format";
import { loadTenantFile, parseTenantSpec } from "../../../bench/workloads/tenants";
import { tempDir } from "../../support/tmp";

const FIX = join(import.meta.dirname, "fixtures");
const dir = tempDir("bench-formats");
afterAll(() => dir.cleanup());

function file(name: string, text: string): string {
  const p = join(dir.path, name);
  writeFileSync(p, text);
  return p;
}

async function inputError(p: Promise<unknown> | (() => unknown)): Promise<BenchInputError> {
  try {
    await (typeof p === "function" ? p() : p);
  } catch (err) {
    expect(err).toBeInstanceOf(BenchInputError);
    return err as BenchInputError;
  }
  throw new Error("expected a BenchInputError");
}

describe("AIBrix files load as they are", () => {
  it("plain and session datasets", async () => {
    const plain = await loadDataset(join(FIX, "aibrix-plain.jsonl"));
    expect(plain).toHaveLength(3);
    expect(plain[0]).toMatchObject({ kind: "prompt", prompt: "What is the capital of France? Answer in one word.", completion: "Paris.", line: 1 });
    const sessions = await loadDataset(join(FIX, "aibrix-sessions.jsonl"));
    expect(sessions[0]).toMatchObject({ kind: "session", sessionId: 0, prompts: ["Hello, who are you?", "What can you do?"], completions: ["I am an assistant.", "Many things."] });
    expect(sessions[1]).toMatchObject({ kind: "session", sessionId: 1, prompts: ["Write a haiku about the sea."] });
  });

  it("JSONL workloads with NaN lengths and sessions", async () => {
    const w = await loadWorkload(join(FIX, "aibrix-workload.jsonl"));
    expect(w.header).toBeUndefined();
    expect(w.requests.map((r) => [r.timestampMs, r.sessionId, r.outputLength, r.promptLength])).toEqual([
      [0, undefined, undefined, 8],
      [250, "0", 18, 6],
      [250, "1", undefined, 8],
      [1000, "0", 12, 5],
    ]);
  });

  it("JSON-array workloads (json.dump with indent)", async () => {
    const w = await loadWorkload(join(FIX, "aibrix-workload.json"));
    expect(w.requests).toHaveLength(3);
    expect(w.requests[1]).toMatchObject({ timestampMs: 1000, prompt: "Summarize: the quick brown fox.", outputLength: 32, line: 12 });
  });

  it("AIBrix client output converts to a timed dataset (sessions regrouped, history stripped)", async () => {
    const records = await convertClientLog(join(FIX, "aibrix-client-output.jsonl"), { statuses: ["success"] });
    expect(records).toEqual([
      { session_id: 0, prompts: ["Hello, who are you?", "What can you do?"], completions: ["I am an assistant.", "Many things."], output_lengths: [6, 4], think_time_ms: [0, 1500], timestamp_ms: 0 },
      { messages: [{ role: "user", content: "What is 2+2?" }], completion: "4", output_length: 2, timestamp_ms: 500 },
    ]);
  });
});

describe("conversions", () => {
  it("ShareGPT: sessions from human/gpt exchanges, leading answers skipped, unanswered conversations dropped", async () => {
    const stats = { read: 0, written: 0, skipped: 0 };
    const out = [];
    for await (const r of convertShareGpt(join(FIX, "sharegpt.json"), {}, stats)) out.push(r);
    expect(stats).toEqual({ read: 3, written: 2, skipped: 1 });
    expect(out[0]).toMatchObject({ session_id: "conv-a", prompts: ["How do I bake bread?", "How long should it rise?"], completions: ["Mix flour, water, salt and yeast, knead, let it rise, then bake.", "About an hour, until it doubles in size."] });
    expect(out[1]).toMatchObject({ session_id: "conv-b", prompts: ["Name three rivers in Europe."] });
    const single = [];
    for await (const r of convertShareGpt(join(FIX, "sharegpt.json"), { singleTurn: true, maxSessions: 1 })) single.push(r);
    expect(single).toEqual([{ prompt: "How do I bake bread?", completion: "Mix flour, water, salt and yeast, knead, let it rise, then bake.", prompt_length: expect.any(Number), output_length: expect.any(Number) }]);
  });

  it("streams JSON arrays element by element with their line numbers, across chunk boundaries", async () => {
    const big = file("big.json", `[\n${Array.from({ length: 3000 }, (_, i) => `  {"i": ${i}, "s": "${"x".repeat(500)} \\" ] , {"}`).join(",\n")}\n]\n`);
    let n = 0;
    for await (const { value, line, index } of readJsonArray(big)) {
      expect(value).toMatchObject({ i: index });
      expect(line).toBe(index + 2);
      n++;
    }
    expect(n).toBe(3000);
  });

  it("Azure trace: times from the first row, token counts; workloads of exact lengths", async () => {
    const rows = await readAzureTrace(join(FIX, "azure.csv"));
    expect(rows.map((r) => [Math.round(r.timestampMs), r.contextTokens, r.generatedTokens])).toEqual([
      [0, 374, 44],
      [4315, 396, 109],
      [4319, 879, 31],
      [8073, 91, 7],
    ]);
    const windowed = await readAzureTrace(join(FIX, "azure.csv"), { startMs: 4000, durationMs: 1000 });
    expect(windowed.map((r) => r.contextTokens)).toEqual([396, 879]);
    const built = buildAzure({ rows, seed: 1 });
    const reqs = built.entries.flatMap((e) => e.requests);
    expect(reqs.map((r) => [r.prompt_length, r.output_length])).toEqual([
      [374, 44],
      [396, 109],
      [879, 31],
      [91, 7],
    ]);
    const { countTokens } = await import("../../../bench/datasets/text");
    expect(reqs.map((r) => countTokens(r.prompt as string))).toEqual([374, 396, 879, 91]);
  });

  it("our own results → dataset → replay workload at the original times", async () => {
    const results = file(
      "log.jsonl",
      [
        { request_id: "a", index: 0, status: "ok", tenant: "acme", session_id: null, turn: null, timestamp_ms: 100, sent_ms: 1, e2e_ms: 50, prompt: "first prompt", output: "answer", completion_tokens: 7 },
        { request_id: "b", index: 1, status: "ok", tenant: "acme", session_id: "s1", turn: 0, timestamp_ms: 300, sent_ms: 2, e2e_ms: 50, prompt: "turn zero", output: "r0", completion_tokens: 2 },
        { request_id: "c", index: 2, status: "ok", tenant: "acme", session_id: "s1", turn: 1, think_time_ms: 700, timestamp_ms: 1000, sent_ms: 3, e2e_ms: 50, prompt: "turn one", output: "r1", completion_tokens: 3 },
      ]
        .map((r) => JSON.stringify(r))
        .join("\n"),
    );
    const records = await convertClientLog(results);
    expect(records).toEqual([
      { prompt: "first prompt", completion: "answer", output_length: 7, tenant: "acme", timestamp_ms: 0 },
      { session_id: "s1", prompts: ["turn zero", "turn one"], completions: ["r0", "r1"], output_lengths: [2, 3], think_time_ms: [0, 700], tenant: "acme", timestamp_ms: 200 },
    ]);
    const entries = records.map((r, i) => toEntry(r, "log", i + 1));
    const built = buildReplay({ seed: 1, datasets: new Map([["", entries]]) });
    const w = file("replay.jsonl", "");
    writeWorkload(w, built);
    const loaded = await loadWorkload(w);
    expect(loaded.header?.tenants).toEqual([{ id: "acme" }]);
    expect(loaded.requests.map((r) => [r.timestampMs, r.prompt, r.sessionId, r.turn, r.thinkTimeMs, r.outputLength])).toEqual([
      [0, "first prompt", undefined, undefined, undefined, 7],
      [200, "turn zero", "0", 0, undefined, 2],
      [900, "turn one", "0", 1, 700, 3],
    ]);
  });
});

describe("bad input files name file, line and field", () => {
  it("datasets", async () => {
    const bad = file("bad-dataset.jsonl", '{"prompt": "ok"}\n\n{"prompt": "x", "output_length": -3}\n');
    const e = await inputError(loadDataset(bad));
    expect(e.message).toBe(`${bad}:3: output_length: Too small: expected number to be >=0`);
    const notJson = file("not-json.jsonl", '{"prompt": "ok"}\n{"prompt": "x",\n');
    expect((await inputError(loadDataset(notJson))).message).toMatch(new RegExp(`^${notJson}:2: not valid JSON`));
    const sess = file("bad-session.jsonl", '{"session_id": 1, "prompts": ["a", "b"], "output_lengths": [3]}\n');
    expect((await inputError(loadDataset(sess))).message).toBe(`${sess}:1: output_lengths: has 1 entries for 2 prompts`);
    const neither = file("neither.jsonl", '{"text": "hello"}\n');
    expect((await inputError(loadDataset(neither))).message).toBe(`${neither}:1: prompt: a prompt record needs 'prompt' (a string) or 'messages'`);
    expect((await inputError(loadDataset(join(dir.path, "missing.jsonl")))).message).toBe(`${join(dir.path, "missing.jsonl")}: no such file`);
  });

  it("workloads", async () => {
    const bad = file("bad-workload.jsonl", '{"timestamp": 0, "requests": [{"prompt": "a"}]}\n{"timestamp": 10, "requests": [{"prompt": "b"}, {"prompt": 5}]}\n');
    expect((await inputError(loadWorkload(bad))).message).toBe(`${bad}:2: requests[1].prompt: Invalid input: expected string, received number`);
    const neg = file("neg.jsonl", '{"timestamp": -1, "requests": []}\n');
    expect((await inputError(loadWorkload(neg))).message).toBe(`${neg}:1: timestamp: must be ≥ 0 (milliseconds from the start)`);
    const stray = file("stray.jsonl", '{"schema": "switchyard.workload.v1", "tenants": [{"id": "a"}]}\n{"timestamp": 0, "requests": [{"prompt": "x", "tenant": "b"}]}\n');
    expect((await inputError(loadWorkload(stray))).message).toBe(`${stray}:2: tenant: 'b' is not in the tenant table of the first line`);
    const badTenant = file("bad-tenant.jsonl", '{"schema": "switchyard.workload.v1", "tenants": [{"id": "a", "rate": -2}]}\n{"timestamp": 0, "requests": [{"prompt": "x"}]}\n');
    expect((await inputError(loadWorkload(badTenant))).message).toBe(`${badTenant}:1: tenants[0].rate: Too small: expected number to be >0`);
    const arr = file("bad-array.json", '[\n  {"timestamp": 0, "requests": [{"prompt": "x"}]},\n  {"timestamp": 5, "requests": [{"prompt": null}]}\n]\n');
    expect((await inputError(loadWorkload(arr))).message).toBe(`${arr}:3: [1].requests[0].prompt: a request needs 'prompt' (a string) or 'messages'`);
  });

  it("ShareGPT, Azure CSV, tenant tables, results and summaries", async () => {
    const sg = await inputError(async () => {
      for await (const _ of convertShareGpt(join(FIX, "sharegpt-bad.json"))) void _;
    });
    expect(sg.message).toBe(`${join(FIX, "sharegpt-bad.json")}:9: [1].conversations[1].value: Invalid input: expected string, received number`);
    expect((await inputError(readAzureTrace(join(FIX, "azure-bad.csv")))).message).toBe(`${join(FIX, "azure-bad.csv")}:3: ContextTokens: 'lots' is not a positive integer`);
    const noCol = file("nocol.csv", "TIME,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,1,1\n");
    expect((await inputError(readAzureTrace(noCol))).message).toMatch(/:1: TIMESTAMP: missing column/);
    const tenants = file("tenants.json", '{"tenants": [{"id": "a", "weight": 1}, {"id": "b", "api_key_env": "not a var"}]}');
    expect((await inputError(() => loadTenantFile(tenants))).message).toBe(`${tenants}: tenants[1].api_key_env: must be an environment variable name`);
    expect(() => parseTenantSpec("acme:rate=fast")).toThrow(/--tenant 'acme:rate=fast': rate/);
    const results = file("bad-results.jsonl", `${JSON.stringify({ request_id: "a", index: 0, status: "ok", tenant: null, timestamp_ms: 0, scheduled_ms: 0, sent_ms: 0, ttft_ms: 1, tpot_ms: null, e2e_ms: 2, prompt_tokens: 1, completion_tokens: 1, cached_tokens: 0 })}\n${JSON.stringify({ request_id: "b", index: 1, status: "done" })}\n`);
    expect((await inputError(loadRun(results))).message).toBe(`${results}:2: status: Invalid option: expected one of "ok"|"error"|"cancelled"`);
    const notSummary = file("not-summary.json", '{"runs": []}');
    expect((await inputError(() => loadSummaries([notSummary]))).message).toMatch(new RegExp(`^${notSummary}: schema: not a run summary`));
  });
});
