/**
 * The llama.cpp engine with the agent's L1 tier, on the generated random-weight model (real
 * llama.cpp, CPU, one thread): a sequence saved when its request ends is restored for a later
 * prompt with the same prefix, giving the same greedy tokens as recomputing it, sooner; chunks of
 * one namespace never serve another; a damaged chunk is a miss, not wrong output.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLlamaCppEngine, type LlamaCppEngine } from "../../../dataplane/engines/llamacpp/adapter";
import { AgentKvTiers } from "../../../dataplane/kvcache/agent-tiers";
import { complete, MODEL_DIR, recordingLogger, text } from "./llamacpp-tiers-support";

const MODEL = "tiny-kv-l1";
const C = 256;
const log = recordingLogger();
let tiers: AgentKvTiers;
let engine: LlamaCppEngine;

beforeAll(async () => {
  tiers = new AgentKvTiers({ chunkTokens: C, l1: { bytes: "64MiB", policy: "lru" } }, { log });
  // One sequence: every new prompt takes the slot from the previous one, so reuse can only come from L1.
  engine = createLlamaCppEngine({ kind: "llamacpp", model: MODEL, generatedModelDir: MODEL_DIR, contextSize: 4096, sequences: 1 }, { kvTiers: tiers.forEngine(MODEL, log) });
  await engine.start();
});

afterAll(async () => {
  await engine?.stop();
  await tiers?.close();
});

const P = text(2000, "shared-prefix");
const Q = text(1200, "another-prompt");
// Prompts are BOS + one token per byte: 2001 tokens, of which 7 full chunks can be restored (the last prompt token is always evaluated).
const restorable = Math.floor(P.length / C) * C;
const BOS = 256;
const tokensOf = (s: string) => [BOS, ...Buffer.from(s, "latin1")];

describe("llama.cpp sequences through L1", () => {
  let cold: Awaited<ReturnType<typeof complete>>;

  it("starts with tiers: a probed layout and a file-hash identity", () => {
    const kv = engine.kvTiers;
    expect(kv).toBeDefined();
    expect(kv?.modelIdentity).toMatch(/^sha256:[0-9a-f]{64}\|llamacpp-kv:[0-9a-f]{16}$/);
  });

  it("saves a finished sequence's full chunks to L1 after the response ends", async () => {
    cold = await complete(engine, MODEL, P, { namespace: "t:a" });
    expect(cold.status).toBe(200);
    expect(cold.cachedTokens).toBe(0);
    await engine.kvTiers?.idle();
    const stats = engine.kvTiers?.stats;
    // 2001 prompt tokens + 7 evaluated completion tokens = 2008 cached: 7 full chunks.
    expect(stats?.savedChunks).toBe(7);
    expect(tiers.l1.stats().entries).toBe(7);
    expect(tiers.l1.stats().bytesUsed).toBeGreaterThan(7 * C * 2048);
  });

  it("restores the prefix for the same prompt after the slot moved on: same tokens, sooner", async () => {
    const other = await complete(engine, MODEL, Q, { namespace: "t:a" });
    expect(other.cachedTokens).toBeLessThanOrEqual(1); // the shared BOS
    await engine.kvTiers?.idle();
    const before = tiers.l1.stats().hits;
    const warm = await complete(engine, MODEL, P, { namespace: "t:a" });
    expect(warm.cachedTokens).toBe(restorable);
    expect(warm.text).toBe(cold.text);
    expect(warm.text.length).toBeGreaterThan(0);
    expect(tiers.l1.stats().hits - before).toBe(7);
    expect(engine.kvTiers?.stats.restores).toBe(1);
    // 208 tokens evaluated after a 1792-token load, against 2000 evaluated.
    expect(warm.ttftMs).toBeLessThan(cold.ttftMs * 0.5);
    const c = tiers.forEngine(MODEL).counters();
    expect(c.l1Tokens).toBe(restorable - 1); // the slot itself still held the BOS
  });

  it("a longer prompt with the same prefix restores the prefix and evaluates the rest", async () => {
    await complete(engine, MODEL, Q, { namespace: "t:a" });
    const longer = await complete(engine, MODEL, P + text(300, "follow-up"), { namespace: "t:a" });
    expect(longer.cachedTokens).toBe(restorable);
  });

  it("never restores another namespace's chunks", async () => {
    await complete(engine, MODEL, Q, { namespace: "t:a" });
    const hitsBefore = tiers.l1.stats().hits;
    const b = await complete(engine, MODEL, P, { namespace: "t:b" });
    expect(b.cachedTokens).toBe(0);
    expect(tiers.l1.stats().hits).toBe(hitsBefore);
    // Same tokens all the same: the model does not care whose prompt it is.
    expect(b.text).toBe(cold.text);
    // And t:b's own copy is now saved under t:b's keys: 7 more entries.
    await engine.kvTiers?.idle();
    expect(tiers.l1.stats().entries).toBeGreaterThanOrEqual(14);
  });

  it("a damaged chunk makes the lookup a miss and the prompt is recomputed correctly", async () => {
    const kv = engine.kvTiers;
    if (!kv) throw new Error("no tiers");
    const keys = tiers.forEngine(MODEL).keys(tokensOf(P), kv.modelIdentity, "t:a");
    const good = tiers.l1.getSync(keys[3] as string) as Buffer;
    const damaged = Buffer.from(good);
    damaged.writeUInt32LE(0xdeadbeef, 0); // not a chunk any more
    tiers.l1.putSync(keys[3] as string, damaged);
    await complete(engine, MODEL, Q, { namespace: "t:a" });
    const failuresBefore = kv.stats.restoreFailures;
    const again = await complete(engine, MODEL, P, { namespace: "t:a" });
    expect(kv.stats.restoreFailures).toBe(failuresBefore + 1);
    expect(again.cachedTokens).toBeLessThanOrEqual(1);
    expect(again.text).toBe(cold.text);
    expect(log.lines.some((l) => l.event === "kv_restore_failed")).toBe(true);
    tiers.l1.putSync(keys[3] as string, good);
  });
});
