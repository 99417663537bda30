/**
 * Work each node was given recently, over a sliding time window: what `throughput` ranks by and
 * what Preble calls a node's load L (prefill + decode time of the requests it served in the window).
 * Fed at decision time (estimates) and corrected at release (the engine's real token counts).
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
}

export class NodeLoad {
  private readonly byNode = new Map<string, Entry[]>();
  private readonly byRequest = new Map<string, { nodeId: string; entry: Entry }>();

  constructor(readonly windowMs: number) {}

  private prune(list: Entry[], now: number): void {
    let drop = 0;
    while (drop < list.length && now - (list[drop] as Entry).at > this.windowMs) {
      this.byRequest.delete((list[drop] as Entry).requestId);
      drop++;
    }
    if (drop > 0) list.splice(0, drop);
  }

  /** A request was sent to `nodeId` with this estimated shape. */
  add(nodeId: string, requestId: string, now: number, est: { promptTokens: number; cachedTokens: number; completionTokens: number }): void {
    let list = this.byNode.get(nodeId);
    if (!list) this.byNode.set(nodeId, (list = []));
    this.prune(list, now);
    const entry: Entry = { at: now, requestId, ...est, costMs: cost(est) };
    list.push(entry);
    this.byRequest.set(requestId, { nodeId, entry });
  }

  /** The request finished: replace estimates by what the engine reported. */
  settle(requestId: string, real: { promptTokens: number; cachedTokens: number; completionTokens: number }): void {
    const found = this.byRequest.get(requestId);
    if (!found) return;
    Object.assign(found.entry, real);
    found.entry.costMs = cost(real);
  }

  /** Sum of estimated compute ms over the window (Preble's L). */
  loadMs(nodeId: string, now: number): number {
    const list = this.byNode.get(nodeId);
    if (!list) return 0;
    this.prune(list, now);
    let total = 0;
    for (const e of list) total += e.costMs;
    return total;
  }

  /** Requests given to the node over the window. */
  count(nodeId: string, now: number): number {
    const list = this.byNode.get(nodeId);
    if (!list) return 0;
    this.prune(list, now);
    return list.length;
  }

  /** Tokens per second processed over the window, prompt tokens weighted 2 (AIBrix `throughput`). */
  weightedTokensPerSecond(nodeId: string, now: number): number {
    const list = this.byNode.get(nodeId);
    if (!list) return 0;
    this.prune(list, now);
    let tokens = 0;
    for (const e of list) tokens += 2 * (e.promptTokens - e.cachedTokens) + e.completionTokens;
    return tokens / (this.windowMs / 1000);
  }

  removeNode(nodeId: string): void {
    for (const e of this.byNode.get(nodeId) ?? []) this.byRequest.delete(e.requestId);
    this.byNode.delete(nodeId);
  }
}

function cost(x: { promptTokens: number; cachedTokens: number; completionTokens: number }): number {
  return prefillMs(Math.max(0, x.promptTokens - x.cachedTokens), x.cachedTokens) + x.completionTokens * DECODE_STEP_MS;
}
