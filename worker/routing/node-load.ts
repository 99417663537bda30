/**
 * Work each node was given recently, over a sliding time window: what `throughput` ranks by and
 * what Preble calls a node's load L (prefill + decode time of the requests it served in the window).
 * Fed at decision time (estimates) and corrected at release (the engine's real token counts).
 * Sums are kept running, so reading a node's load costs O(1) plus the entries that age out.
 */
import { DECODE_STEP_MS, prefillMs } from "./prefill-cost";

interface Entry {
  at: number;
  requestId: string;
  promptTokens: number;
  cachedTokens: number;
  completionTokens: number;
  /** Estimated compute time (ms) of this request on the node. */
  costMs: number;
  /** 2 × uncached prompt tokens + completion tokens (AIBrix's throughput weighting). */
  weightedTokens: number;
}

interface Window {
  entries: Entry[];
  head: number;
  costMs: number;
  weightedTokens: number;
}

type Shape = { promptTokens: number; cachedTokens: number; completionTokens: number };

export class NodeLoad {
  private readonly byNode = new Map<string, Window>();
  private readonly byRequest = new Map<string, { window: Window; entry: Entry }>();

  constructor(readonly windowMs: number) {}

  /** Entries held in memory, including aged-out ones not yet reclaimed from the arrays' fronts. */
  get heldEntries(): number {
    let n = 0;
    for (const w of this.byNode.values()) n += w.entries.length;
    return n;
  }

  private window(nodeId: string): Window {
    let w = this.byNode.get(nodeId);
    if (!w) this.byNode.set(nodeId, (w = { entries: [], head: 0, costMs: 0, weightedTokens: 0 }));
    return w;
  }

  private prune(w: Window, now: number): void {
    while (w.head < w.entries.length && now - (w.entries[w.head] as Entry).at > this.windowMs) {
      const e = w.entries[w.head++] as Entry;
      w.costMs -= e.costMs;
      w.weightedTokens -= e.weightedTokens;
      this.byRequest.delete(e.requestId);
    }
    // Reclaim the consumed front of the array now and then, not on every pop.
    if (w.head > 1024 && w.head * 2 > w.entries.length) {
      w.entries = w.entries.slice(w.head);
      w.head = 0;
    }
    if (w.head === w.entries.length) {
      w.costMs = 0;
      w.weightedTokens = 0;
    }
  }

  /** A request was sent to `nodeId` with this estimated shape. */
  add(nodeId: string, requestId: string, now: number, est: Shape): void {
    const w = this.window(nodeId);
    this.prune(w, now);
    const entry: Entry = { at: now, requestId, ...est, costMs: cost(est), weightedTokens: weighted(est) };
    w.entries.push(entry);
    w.costMs += entry.costMs;
    w.weightedTokens += entry.weightedTokens;
    this.byRequest.set(requestId, { window: w, entry });
  }

  /** The request finished: replace estimates by what the engine reported. */
  settle(requestId: string, real: Shape): void {
    const found = this.byRequest.get(requestId);
    if (!found) return;
    const { window: w, entry } = found;
    w.costMs -= entry.costMs;
    w.weightedTokens -= entry.weightedTokens;
    Object.assign(entry, real);
    entry.costMs = cost(real);
    entry.weightedTokens = weighted(real);
    w.costMs += entry.costMs;
    w.weightedTokens += entry.weightedTokens;
  }

  /** Sum of estimated compute ms over the window (Preble's L). */
  loadMs(nodeId: string, now: number): number {
    const w = this.byNode.get(nodeId);
    if (!w) return 0;
    this.prune(w, now);
    return Math.max(0, w.costMs);
  }

  /** Requests given to the node over the window. */
  count(nodeId: string, now: number): number {
    const w = this.byNode.get(nodeId);
    if (!w) return 0;
    this.prune(w, now);
    return w.entries.length - w.head;
  }

  /** Tokens per second processed over the window, prompt tokens weighted 2 (AIBrix `throughput`). */
  weightedTokensPerSecond(nodeId: string, now: number): number {
    const w = this.byNode.get(nodeId);
    if (!w) return 0;
    this.prune(w, now);
    return Math.max(0, w.weightedTokens) / (this.windowMs / 1000);
  }

  removeNode(nodeId: string): void {
    const w = this.byNode.get(nodeId);
    if (w) for (let i = w.head; i < w.entries.length; i++) this.byRequest.delete((w.entries[i] as Entry).requestId);
    this.byNode.delete(nodeId);
  }
}

function cost(x: Shape): number {
  return prefillMs(Math.max(0, x.promptTokens - x.cachedTokens), x.cachedTokens) + x.completionTokens * DECODE_STEP_MS;
}

function weighted(x: Shape): number {
  return 2 * Math.max(0, x.promptTokens - x.cachedTokens) + x.completionTokens;
}
