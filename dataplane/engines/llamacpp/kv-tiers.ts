/**
 * The llama.cpp engine's side of the agent's KV tiers: a sequence's KV goes to the tiers when it
 * finishes a request or is about to be dropped from its slot, and a new request whose prompt
 * prefix is in a tier loads it instead of evaluating it.
 *
 * Mapping. Keys are the chunk keys of the sequence's tokens (kvcache/keys.ts: chunkTokens per
 * chunk, full chunks only, namespaced by the model identity and the request's cache namespace).
 * Chunk i's value is the KV of tokens [i·C, (i+1)·C) cut out of a saved state file
 * (kv-state-codec.ts), so a prefix shared by many sequences is stored once, and a restore joins
 * the longest run of chunks found into one state file and loads it. At least one prompt token is
 * always left to evaluate (it yields the logits of the first new token), so a restore covers at
 * most floor((prompt − 1) / C) chunks.
 *
 * Model identity: the GGUF's SHA-256 (or the name@revision the agent config gives) plus a digest
 * of the context's KV layout (K/V types, row sizes, V transposition, which change with
 * flash attention or a KV type), so contexts that cannot load each other's chunks never share keys.
 * Each chunk also carries its layout and tokens, and both are checked before a state is built:
 * a foreign or damaged chunk is a miss. Loading a mismatched state can abort the process inside
 * llama.cpp, so nothing unchecked ever reaches it.
 *
 * Costs (node-llama-cpp exposes sequence state only through files): a save writes the whole
 * sequence's state to a file in a memory-backed directory (/dev/shm when it exists), reads it
 * back and cuts it; a restore writes one file and loads it. Both are about 1 ms per MB on the
 * dev box, against ~140 ms per 1000 tokens evaluated on one core with the test model. A save runs
 * only when the sequence has full chunks L1 lacks, after the response has ended (the slot stays
 * held until it is done, so the next request cannot overwrite what is being saved).
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { LlamaContextSequence, Token } from "node-llama-cpp";
import type { EngineKvTiers } from "../../kvcache/agent-tiers";
import { modelIdentityFromFile } from "../../kvcache/keys";
import { assembleStateFile, encodeChunk, type KvLayout, parseStateFile, StateFormatError } from "./kv-state-codec";
import type { PoolSlot } from "./sequence-pool";

export interface LlamaCppTierStats {
  /** Saves that wrote chunks to L1 / found every chunk there already / failed. */
  saves: number;
  savesSkipped: number;
  saveFailures: number;
  savedChunks: number;
  /** Restores that loaded a state / failed to build or load one (recomputed instead). */
  restores: number;
  restoreFailures: number;
  restoredTokens: number;
}

/** The phases of the last restore (ms), for benchmarks and debug logs. */
export interface RestoreTiming {
  /** L1 prefix, then L2 PREFIX and GETs (0 when L1 had it all). */
  lookupMs: number;
  /** Checking the chunks and joining them into one state file. */
  assembleMs: number;
  /** Writing the file and loading it into the sequence. */
  loadMs: number;
  stateBytes: number;
  fromL1: number;
  fromL2: number;
}

/** Where state files go: memory-backed when the host has /dev/shm. */
function stateDirBase(): string {
  return existsSync("/dev/shm") ? "/dev/shm" : tmpdir();
}

export class LlamaCppKvTiers {
  readonly stats: LlamaCppTierStats = { saves: 0, savesSkipped: 0, saveFailures: 0, savedChunks: 0, restores: 0, restoreFailures: 0, restoredTokens: 0 };
  private identity = "";
  private layout: KvLayout | undefined;
  private nStream = 0;
  private dir: string | undefined;
  private seq = 0;
  private readonly pending = new Set<Promise<void>>();
  /** Timing of the last restore that loaded a state. */
  lastRestore: RestoreTiming | undefined;

  constructor(readonly tiers: EngineKvTiers) {}

  /** Whether tiers are in use (init succeeded). */
  get enabled(): boolean {
    return this.layout !== undefined;
  }

  /** The key namespace of this engine's chunks (after init). */
  get modelIdentity(): string {
    return this.identity;
  }

  get chunkTokens(): number {
    return this.tiers.chunkTokens;
  }

  /**
   * Learns the context's KV layout by saving a one-token state of `probe` (then clears it), and
   * fixes the model identity. Returns false, with a warning, when this model's states cannot be
   * cut into chunks (sliding-window or recurrent models): the engine then runs without tiers.
   */
  async init(probe: LlamaContextSequence, modelPath: string, probeToken: Token): Promise<boolean> {
    const log = this.tiers.log;
    if (probe.needsCheckpoints) {
      log.warn("kv_tiers_disabled", { reason: "the model's KV cannot be reused by prefix (sliding-window or recurrent): no tiers for it" });
      return false;
    }
    this.dir = await mkdtemp(join(stateDirBase(), "switchyard-kv-"));
    const file = join(this.dir, "probe.bin");
    try {
      await probe.evaluateWithoutGeneratingNewTokens([probeToken]);
      await probe.saveStateToFile(file);
      const parsed = parseStateFile(await readFile(file));
      const base = this.tiers.configuredIdentity ?? (await modelIdentityFromFile(modelPath));
      const layoutDigest = createHash("sha256")
        .update(`v${parsed.layout.stateVersion}/ext${parsed.layout.extBytes}/`)
        .update(parsed.layout.signature)
        .digest("hex")
        .slice(0, 16);
      this.identity = `${base}|llamacpp-kv:${layoutDigest}`;
      this.nStream = parsed.nStream;
      this.layout = parsed.layout;
      log.info("kv_tiers_ready", { chunkTokens: this.chunkTokens, bytesPerToken: parsed.layout.bytesPerToken, layout: layoutDigest });
      return true;
    } catch (err) {
      log.warn("kv_tiers_disabled", { reason: err instanceof Error ? err.message : String(err) });
      return false;
    } finally {
      await probe.clearHistory().catch(() => {});
      await rm(file, { force: true });
    }
  }

  private tempFile(kind: string): string {
    return join(this.dir as string, `${kind}-${++this.seq}.bin`);
  }

  /**
   * Saves the full chunks of `slot`'s cached tokens that L1 lacks (a finished request, or tokens
   * about to be dropped). Never throws; counts the outcome.
   */
  async saveSlot(slot: PoolSlot): Promise<void> {
    const layout = this.layout;
    const seq = slot.sequence;
    if (!layout || seq.disposed) return;
    const C = this.chunkTokens;
    const tokens = seq.contextTokens;
    const n = Math.floor(tokens.length / C);
    if (n === 0) return;
    const keys = this.tiers.keys(tokens.slice(0, n * C), this.identity, slot.namespace);
    const missing: number[] = [];
    keys.forEach((k, i) => {
      if (!this.tiers.inL1(k)) missing.push(i);
    });
    if (missing.length === 0) {
      this.stats.savesSkipped++;
      return;
    }
    const file = this.tempFile(`save-${slot.id}`);
    try {
      await seq.saveStateToFile(file);
      const parsed = parseStateFile(await readFile(file));
      if (parsed.tokens.length < n * C) throw new StateFormatError(`the saved state holds ${parsed.tokens.length} tokens, expected ${tokens.length}`);
      for (let t = 0; t < n * C; t++) if (parsed.tokens[t] !== tokens[t]) throw new StateFormatError(`the saved state's token ${t} differs from the sequence's`);
      if (!parsed.layout.signature.equals(layout.signature) || parsed.layout.extBytes !== layout.extBytes) throw new StateFormatError("the saved state's layout differs from the probe's");
      const values = missing.map((i) => encodeChunk(parsed, i * C, C));
      const stored = this.tiers.store(
        missing.map((i) => keys[i] as string),
        values,
      );
      this.stats.saves++;
      this.stats.savedChunks += stored;
    } catch (err) {
      this.stats.saveFailures++;
      if (!seq.disposed) this.tiers.log.warn("kv_save_failed", { slot: slot.id, error: err instanceof Error ? err.message : String(err) });
    } finally {
      await rm(file, { force: true }).catch(() => {});
    }
  }

  /** Runs `saveSlot` in the background and then `after` (the slot's release); `idle()` waits for it. */
  saveThen(slot: PoolSlot, after: () => void): void {
    const p = this.saveSlot(slot).finally(() => {
      this.pending.delete(p);
      after();
    });
    this.pending.add(p);
  }

  /** Resolves when background saves have finished. */
  async idle(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  /**
   * Loads the longest prefix of `tokens` the tiers hold into `slot` (held by the caller, already
   * lined up with `local` tokens of its own cache) when that beats what the slot has. Returns the
   * number of prompt tokens now cached in the slot. A failed build or load leaves the slot empty
   * (returns 0): the prompt is evaluated in full, never with wrong KV.
   */
  async restore(slot: PoolSlot, tokens: readonly Token[], namespace: string, local: number, loadState: (file: string) => Promise<void>, signal?: AbortSignal): Promise<number> {
    const layout = this.layout;
    if (!layout || signal?.aborted) return local;
    const C = this.chunkTokens;
    const maxChunks = Math.floor((tokens.length - 1) / C);
    // Loading rewrites the whole sequence: worth it only for at least a quarter chunk more than the slot has.
    const minGain = Math.max(1, Math.floor(C / 4));
    if (maxChunks * C - local < minGain) return local;
    const keys = this.tiers.keys(tokens.slice(0, maxChunks * C), this.identity, namespace);
    const queried = maxChunks * C - local;
    const t0 = performance.now();
    const found = await this.tiers.lookup(keys, signal);
    const t1 = performance.now();
    const restored = found.values.length * C;
    if (restored - local < minGain || signal?.aborted) {
      found.done();
      this.tiers.record(queried, 0, 0);
      return local;
    }
    const state = assembleStateFile(found.values, layout, this.nStream, tokens);
    found.done();
    const t2 = performance.now();
    if (!state) {
      // Chunks of another layout or prompt under these keys (a collision or a bug): the slot's own cache still stands.
      this.stats.restoreFailures++;
      this.tiers.record(queried, 0, 0);
      this.tiers.log.warn("kv_restore_failed", { slot: slot.id, error: "the chunks found do not form this prompt's prefix in this context's layout" });
      return local;
    }
    const file = this.tempFile(`load-${slot.id}`);
    try {
      await writeFile(file, state);
      await loadState(file);
      const seq = slot.sequence;
      if (seq.nextTokenIndex !== restored) throw new StateFormatError(`the restored sequence holds ${seq.nextTokenIndex} tokens, expected ${restored}`);
      const l1Tokens = Math.max(0, found.fromL1 * C - local);
      this.tiers.record(queried, l1Tokens, restored - local - l1Tokens);
      this.stats.restores++;
      this.stats.restoredTokens += restored;
      const timing = { lookupMs: t1 - t0, assembleMs: t2 - t1, loadMs: performance.now() - t2, stateBytes: state.length, fromL1: found.fromL1, fromL2: found.fromL2 };
      this.lastRestore = timing;
      this.tiers.log.debug("kv_restored", { slot: slot.id, tokens: restored, ...timing });
      return restored;
    } catch (err) {
      this.stats.restoreFailures++;
      this.tiers.record(queried, 0, 0);
      this.tiers.log.warn("kv_restore_failed", { slot: slot.id, error: err instanceof Error ? err.message : String(err) });
      await slot.sequence.clearHistory().catch(() => {});
      return 0;
    } finally {
      await rm(file, { force: true }).catch(() => {});
    }
  }

  async close(): Promise<void> {
    await this.idle();
    if (this.dir) await rm(this.dir, { recursive: true, force: true }).catch(() => {});
    this.dir = undefined;
    this.layout = undefined;
  }
}
