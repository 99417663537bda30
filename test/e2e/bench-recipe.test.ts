/**
 * One benchmark recipe end to end at `tiny` scale through the real local stack: wrangler dev (edge
 * worker, local D1 and Durable Objects), node agents with emulator engines, the benchmark client,
 * and the report — raw results, summaries, charts and machine.json on disk.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadRun } from "../../bench/client/records";
import { routingRecipe } from "../../bench/recipes/routing";
import { tempDir } from "../support/tmp";

const dir = tempDir("bench-recipe");
afterAll(() => dir.cleanup());

describe("bench recipe routing --scale tiny", () => {
  it("runs strategies against the local stack and writes results, summary, comparison, charts and machine.json", async () => {
    const lines: string[] = [];
    const t0 = Date.now();
    const result = await routingRecipe.run({ scale: "tiny", outDir: dir.path, log: (l) => lines.push(l) });
    const elapsed = Date.now() - t0;
    expect(elapsed).toBeLessThan(60_000);
    expect(result.interrupted).toBe(false);
    expect(result.runs.map((r) => r.label)).toEqual(["random @ 4", "prefix-cache @ 4"]);
    for (const run of result.runs) {
      expect(run.counts.ok).toBeGreaterThan(5);
      expect(run.counts.error).toBe(0);
      expect(run.ttft_ms.n).toBe(run.counts.ok);
      expect(run.cache_hit_rate).not.toBeNull();
    }
    for (const f of ["summary.json", "summary.md", "compare.md", "machine.json", "recipe.json", "charts/ttft-vs-qps.svg", "charts/ttft-vs-qps.png", "charts/ttft-cdf.png", "charts/tenant-service.png", "raw/random-qps4.jsonl", "raw/prefix-cache-qps4.run.json", "raw/shared-prefix-qps4.workload.jsonl"]) {
      expect(existsSync(join(dir.path, f)), f).toBe(true);
    }
    // Every record came through the edge: node, region, strategy and request id headers.
    const raw = await loadRun(join(dir.path, "raw", "prefix-cache-qps4.jsonl"));
    expect(raw.meta).toMatchObject({ system: "prefix-cache", routing_strategy: "prefix-cache", qps: 4, interrupted: false });
    for (const r of raw.records) {
      expect(r.status).toBe("ok");
      expect(r.node).toMatch(/^sim-[01]$/);
      expect(r.region).toBe("local");
      expect(r.routing_strategy).toBe("prefix-cache");
      expect(r.prefix_blocks).toMatch(/^\d+\/\d+$/);
      expect(r.request_id).toBeTruthy();
      expect(r.completion_tokens).toBe(16);
      expect(r.ttft_ms as number).toBeGreaterThan(0);
      // The prompt the engine counted: the dataset's tokens + chat template + salt (within a few %).
      expect(Math.abs((r.prompt_tokens as number) - (r.expected_prompt_tokens as number)) / (r.expected_prompt_tokens as number)).toBeLessThan(0.03);
    }
    const machine = JSON.parse(readFileSync(join(dir.path, "machine.json"), "utf8")) as Record<string, unknown>;
    expect(machine).toMatchObject({ recipe: "routing", scale: "tiny", node: process.version, packages: { wrangler: expect.any(String), workerd: expect.any(String) } });
    expect(machine.cpu_cores).toBeGreaterThan(0);
    expect(readFileSync(join(dir.path, "compare.md"), "utf8")).toContain("| shared-prefix | 4 |");
    expect(lines.some((l) => l.startsWith("prefix-cache-qps4:"))).toBe(true);
  });
});
