/**
 * Runs inside workerd (vitest-pool-workers): the cost of one routing decision for an 8k-token
 * prompt over 64 nodes, the worker-side cost of hashing that prompt, and how many decisions per
 * second one pool Durable Object sustains over RPC. Prints BENCH_RESULT lines that
 * bench/routing/decision-cost.ts collects.
 */
import { env } from "cloudflare:workers";
import { it } from "vitest";
import { namespaceSeed, prefixBlockHashes } from "../../../protocol/prefix-hash";
import { PoolCore } from "../../../worker/pool/pool-core";
import { parseStrategySpec } from "../../../worker/routing/spec";

const NODES = 64;
const PROMPT_CHARS = 32_000; // ≈ 8k tokens

function text(seed: number): string {
  const words = "the of and to in is you that it he was for on are as with his they at be this have from or one had by word but not what all were we when your can said there use an each which she do how their if will".split(" ");
  let s = "";
  let x = seed;
  while (s.length < PROMPT_CHARS) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    s += `${words[x % words.length]} `;
  }
  return JSON.parse(JSON.stringify(s.slice(0, PROMPT_CHARS))) as string;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

const report = (name: string, value: Record<string, unknown>) => console.log(`BENCH_RESULT ${JSON.stringify({ name, ...value })}`);

it("decision cost and pool throughput", async () => {
  const docs = Array.from({ length: 200 }, (_, i) => text(i + 1));
  const seed = namespaceSeed("t:bench:m");

  // Worker-side hashing of an 8k-token prompt (batches of 200, median batch).
  const hashBatches: number[] = [];
  for (let b = 0; b < 20; b++) {
    const t0 = performance.now();
    for (let i = 0; i < 200; i++) prefixBlockHashes(docs[(b * 200 + i) % docs.length] as string, seed);
    hashBatches.push((performance.now() - t0) / 200);
  }
  report("hash-8k-token-prompt", { medianUs: median(hashBatches.slice(4)) * 1000 });

  const blocks = docs.map((d) => prefixBlockHashes(d, seed));
  for (const strategy of ["prefix-cache", "prefix-cache-preble", "least-request", "prefix-cache:2,least-request"]) {
    const spec = parseStrategySpec(strategy);
    if (!spec.ok) throw new Error(spec.message);
    let now = 0;
    const core = new PoolCore({ staleAfterMs: 1e12, now: () => now });
    for (let n = 0; n < NODES; n++) {
      core.heartbeat({ nodeId: `n${n}`, region: "r", url: "u", drained: false, sentAt: 0, leaving: false, engines: [{ model: "m", engine: "sim", healthy: true, running: 0, waiting: 0, maxConcurrency: 512, kvUsage: 0.3, kvCapacityTokens: 419_152 }] });
    }
    // workerd's clock ticks in whole milliseconds: batches of 500 give 2 µs resolution.
    const batches: number[] = [];
    let id = 0;
    for (let b = 0; b < 30; b++) {
      const t0 = performance.now();
      for (let i = 0; i < 500; i++) {
        now += 5;
        const rid = `r${id++}`;
        core.route({ requestId: rid, tenantId: "t", model: "m", strategies: spec.strategies, prompt: { blocks: blocks[id % blocks.length] as number[], tokens: 8_000, maxTokens: 256 } });
        if (id > 200) core.release({ requestId: `r${id - 200}`, outcome: "completed" });
      }
      batches.push((performance.now() - t0) / 500);
    }
    const steady = batches.slice(6).sort((a, c) => a - c);
    report("decision", { strategy, nodes: NODES, promptTokens: 8_000, blocks: blocks[0]?.length, medianUs: median(steady) * 1000, p90Us: (steady[Math.floor(steady.length * 0.9)] as number) * 1000 });
  }

  // One pool object over RPC: route + release per request, sequentially and 64 at a time.
  const stub = env.POOL.getByName(`bench-${Date.now()}`);
  for (let n = 0; n < NODES; n++) {
    await stub.heartbeat({ nodeId: `n${n}`, region: "r", url: "u", drained: false, sentAt: Date.now(), leaving: false, engines: [{ model: "m", engine: "sim", healthy: true, running: 0, waiting: 0, maxConcurrency: 512, kvUsage: 0.3, kvCapacityTokens: 419_152 }] });
  }
  const strategies = [{ name: "prefix-cache", weight: 1 }];
  const one = async (k: number) => {
    await stub.route({ requestId: `rpc${k}`, tenantId: "t", model: "m", strategies, prompt: { blocks: blocks[k % blocks.length] as number[], tokens: 8_000, maxTokens: 256 } });
    await stub.release({ requestId: `rpc${k}`, outcome: "completed" });
  };
  for (let k = 0; k < 100; k++) await one(k);
  let t0 = performance.now();
  for (let k = 0; k < 1_000; k++) await one(1_000 + k);
  const sequential = 1_000 / ((performance.now() - t0) / 1000);
  t0 = performance.now();
  let next = 10_000;
  await Promise.all(Array.from({ length: 64 }, async () => {
    while (next < 14_000) await one(next++);
  }));
  const concurrent = 4_000 / ((performance.now() - t0) / 1000);
  report("pool-rpc", { requestsPerSecondSequential: sequential, requestsPerSecondConcurrent64: concurrent, rpcsPerRequest: 2 });
}, 300_000);
