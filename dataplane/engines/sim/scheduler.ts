/**
 * vLLM V1's scheduling policy over the emulated KV cache: a FCFS waiting queue and a running list;
 * each step has a token budget (`maxNumBatchedTokens`) and a sequence cap (`maxNumSeqs`). Running
 * requests are served first (one token each when decoding, the next chunk of their prompt when still
 * prefilling: chunked prefill), then waiting requests are admitted while the budget, the cap and KV
 * memory allow. When a running request cannot get a block, the most recently admitted running request
 * is preempted (recompute: its blocks are freed and it goes back to the front of the queue); no
 * request is admitted in a step that preempted. Full blocks are cached when they are scheduled, as
 * vLLM does.
 *
 * vLLM's `--scheduling-policy priority`: the queue is ordered by (priority, arrival), smaller first,
 * and the preemption victim is the running request of the largest (priority, arrival). vLLM's
 * `--long-prefill-token-threshold`: no request gets more prompt tokens than that in one step.
 * `priorityPrefill` is Switchyard's extension, not vLLM's (docs/fairness.md): requests of priority
 * above 0 compute at most `chunkTokens` prompt tokens a step between them, and none while a request
 * of a smaller priority prefills. A prioritised prompt then arrives to a short step and runs in
 * steps of its own (decodes continue).
 */
import type { KvCache } from "./kv-cache";
import { blockHashes, hashBlock } from "./kv-cache";
import type { OutputTextGenerator } from "./text-generator";

export type FinishReason = "stop" | "length" | "abort";

export const WAITING = 0;
/** Loading a prefix from the lower KV tier (holds its blocks; counted as waiting, like vLLM's WAITING_FOR_REMOTE_KVS). */
export const LOADING = 1;
export const RUNNING = 2;
export const FINISHED = 3;
export type RequestState = typeof WAITING | typeof LOADING | typeof RUNNING | typeof FINISHED;

/** Callbacks for one request; all times in ms of model time. */
export interface SimRequestObserver {
  /** The request left the waiting queue for the first time. */
  onScheduled?(req: SimRequest, atMs: number): void;
  /** The first output token is out (time to first token = atMs − arrivalMs). */
  onFirstToken?(req: SimRequest, atMs: number): void;
  /** Each output token; the end-of-turn token comes with empty text. */
  onToken?(req: SimRequest, text: string, atMs: number): void;
  /** The request ended; its blocks are already free. */
  onFinish?(req: SimRequest, reason: FinishReason, atMs: number): void;
}

/** One request inside the engine. Fields are public for observers and harnesses; treat them as read-only. */
export class SimRequest {
  state: RequestState = WAITING;
  /** Prompt plus generated tokens. */
  tokens: Int32Array;
  numTokens: number;
  /** Hashes of the full blocks of `tokens` (computed as blocks fill), chained from `hashSeed`. */
  hashes: Float64Array;
  numHashes: number;
  /** Tokens whose KV is computed. */
  computed = 0;
  /** Blocks held, in order. */
  readonly blocks: number[] = [];
  /** blocks[0..numStored) are cached or were hits. */
  numStored = 0;
  /** Output tokens generated. */
  output = 0;
  /** vLLM's request priority (smaller first under the priority policy). */
  priority = 0;
  preemptions = 0;
  /** Prompt tokens served from cache (GPU hit + lower tier) at first admission; -1 before. */
  cachedTokens = -1;
  /** Of those, tokens loaded from the lower tier. */
  tierTokens = 0;
  firstScheduledMs = -1;
  firstTokenMs = -1;
  lastTokenMs = -1;
  finishedMs = -1;
  finishReason: FinishReason | undefined;

  constructor(
    readonly id: string | undefined,
    readonly seq: number,
    prompt: ArrayLike<number>,
    hashes: Float64Array | undefined,
    blockSize: number,
    /** Root of the request's hash chain: `namespaceSeed(cacheNamespace)` (ROOT_HASH without one). */
    readonly hashSeed: number,
    readonly maxTokens: number,
    readonly minTokens: number,
    /** Output position of the end-of-turn token (Infinity with ignore_eos). */
    readonly eosAt: number,
    readonly arrivalMs: number,
    readonly gen: OutputTextGenerator,
    readonly observer: SimRequestObserver | undefined,
    /** Whatever the submitter attached (harness bookkeeping). */
    readonly tag: unknown,
  ) {
    const promptLength = prompt.length;
    this.tokens = new Int32Array(promptLength + Math.min(maxTokens, 256) + 1);
    for (let i = 0; i < promptLength; i++) this.tokens[i] = prompt[i] as number;
    this.numTokens = promptLength;
    const full = Math.floor(promptLength / blockSize);
    const capacity = Math.floor((promptLength + Math.min(maxTokens, 256)) / blockSize) + 1;
    if (hashes && hashes.length >= full) {
      this.hashes = new Float64Array(Math.max(capacity, full));
      this.hashes.set(hashes.subarray(0, full));
    } else this.hashes = blockHashes(this.tokens.subarray(0, promptLength), blockSize, new Float64Array(capacity), 0, hashSeed);
    this.numHashes = full;
  }

  get promptTokens(): number {
    return this.numTokens - this.output;
  }

  appendToken(id: number): void {
    if (this.numTokens === this.tokens.length) {
      const grown = new Int32Array(this.tokens.length * 2);
      grown.set(this.tokens);
      this.tokens = grown;
    }
    this.tokens[this.numTokens++] = id;
  }

  /** Extends `hashes` to cover the first `full` blocks. */
  hashUpTo(full: number, blockSize: number): void {
    if (full <= this.numHashes) return;
    if (full > this.hashes.length) {
      const grown = new Float64Array(Math.max(full, this.hashes.length * 2));
      grown.set(this.hashes);
      this.hashes = grown;
    }
    for (let i = this.numHashes; i < full; i++) {
      this.hashes[i] = hashBlock(i > 0 ? (this.hashes[i - 1] as number) : this.hashSeed, this.tokens, i * blockSize, blockSize);
    }
    this.numHashes = full;
  }
}

/** A FIFO with O(1) push, shift and unshift. */
export class Deque<T> {
  private buf: Array<T | undefined> = new Array(16);
  private head = 0;
  length = 0;

  push(v: T): void {
    if (this.length === this.buf.length) this.grow();
    this.buf[(this.head + this.length++) & (this.buf.length - 1)] = v;
  }

  unshift(v: T): void {
    if (this.length === this.buf.length) this.grow();
    this.head = (this.head - 1) & (this.buf.length - 1);
    this.buf[this.head] = v;
    this.length++;
  }

  peek(): T | undefined {
    return this.length === 0 ? undefined : this.buf[this.head];
  }

  /** Appends `v`, then moves it forward past every element that `before(v, element)` puts after it. */
  insert(v: T, before: (a: T, b: T) => boolean): void {
    this.push(v);
    const mask = this.buf.length - 1;
    for (let i = this.length - 1; i > 0; i--) {
      const at = (this.head + i) & mask;
      const prev = (this.head + i - 1) & mask;
      if (!before(v, this.buf[prev] as T)) break;
      this.buf[at] = this.buf[prev];
      this.buf[prev] = v;
    }
  }

  shift(): T | undefined {
    if (this.length === 0) return undefined;
    const v = this.buf[this.head];
    this.buf[this.head] = undefined;
    this.head = (this.head + 1) & (this.buf.length - 1);
    this.length--;
    return v;
  }

  private grow(): void {
    const next: Array<T | undefined> = new Array(this.buf.length * 2);
    for (let i = 0; i < this.length; i++) next[i] = this.buf[(this.head + i) & (this.buf.length - 1)];
    this.buf = next;
    this.head = 0;
  }
}

/** What one step computes: request i gets `tokens[i]` new tokens over `context[i]` already in KV. */
export class StepBatch {
  readonly reqs: SimRequest[] = [];
  readonly tokens: number[] = [];
  readonly context: number[] = [];
  size = 0;
  totalTokens = 0;

  clear(): void {
    for (let i = 0; i < this.size; i++) this.reqs[i] = undefined as unknown as SimRequest;
    this.size = 0;
    this.totalTokens = 0;
  }

  add(req: SimRequest, tokens: number): void {
    const i = this.size++;
    this.reqs[i] = req;
    this.tokens[i] = tokens;
    this.context[i] = req.computed;
    this.totalTokens += tokens;
  }
}

export interface SchedulerLimits {
  maxNumSeqs: number;
  maxNumBatchedTokens: number;
  /** vLLM's `--scheduling-policy`; default fcfs. */
  policy?: SchedulingPolicy;
  /** vLLM's `--long-prefill-token-threshold`: most prompt tokens a request gets in one step (0: no cap). */
  longPrefillTokenThreshold?: number;
  /** Switchyard's extension (priority policy only): see the module comment. */
  priorityPrefill?: PriorityPrefill;
}

export type SchedulingPolicy = "fcfs" | "priority";

export interface PriorityPrefill {
  /** Most prompt tokens the requests of priority above 0 compute in one step, together. */
  chunkTokens: number;
}

/** Priority order: smaller priority first, then earlier arrival. */
function before(a: SimRequest, b: SimRequest): boolean {
  return a.priority < b.priority || (a.priority === b.priority && a.seq < b.seq);
}

/** What the scheduler tells its engine about. */
export interface SchedulerHooks {
  /** A request was preempted (blocks already freed, back at the queue's front). */
  preempted(req: SimRequest): void;
  /**
   * A request joins the running list. `lookedUp`: it came fresh or preempted and `hitBlocks` of its
   * blocks were found in the GPU cache; false when it comes back from a tier load.
   */
  admitted(req: SimRequest, hitBlocks: number, lookedUp: boolean, atMs: number): void;
  /**
   * The lower tier holds `tierBlocks` blocks after the GPU hit of `hitBlocks`: the request has been
   * given blocks for both and for the rest of its prompt, and taken off the queue; the engine loads
   * and then calls `loaded`.
   */
  startLoad(req: SimRequest, hitBlocks: number, tierBlocks: number, atMs: number): void;
}

export class Scheduler {
  readonly running: SimRequest[] = [];
  readonly waiting = new Deque<SimRequest>();
  /** Requests waiting or loading, not counting aborted ones still in the queue. */
  numWaiting = 0;

  constructor(
    readonly kv: KvCache,
    readonly limits: SchedulerLimits,
    private readonly hooks: SchedulerHooks,
  ) {}

  enqueue(req: SimRequest): void {
    if (this.limits.policy === "priority") this.waiting.insert(req, before);
    else this.waiting.push(req);
    this.numWaiting++;
  }

  /** A loaded request goes back to the queue's front, its prefix now computed. */
  loaded(req: SimRequest, computedBlocks: number): void {
    const bs = this.kv.blockSize;
    req.computed = computedBlocks * bs;
    this.kv.store(req.blocks, req.numStored, computedBlocks, req.hashes, req.tokens);
    req.numStored = computedBlocks;
    req.state = WAITING;
    this.waiting.unshift(req);
  }

  /**
   * Fills `batch` for a step starting at `atMs` (requests that arrived later wait for the next one).
   * Returns whether it preempted (then nothing was admitted from the queue).
   */
  schedule(atMs: number, batch: StepBatch): boolean {
    const kv = this.kv;
    const bs = kv.blockSize;
    const running = this.running;
    let budget = this.limits.maxNumBatchedTokens;
    let preempted = false;
    const priority = this.limits.policy === "priority";
    const threshold = this.limits.longPrefillTokenThreshold ?? 0;
    const pp = priority ? this.limits.priorityPrefill : undefined;
    // With priorityPrefill, the smallest priority among requests with prompt tokens to compute now:
    // requests above it compute none this step.
    const prefillFloor = pp ? this.prefillFloor(atMs) : Number.POSITIVE_INFINITY;
    // With priorityPrefill, prompt tokens left this step for requests of priority above 0, together.
    let lowLeft = pp ? pp.chunkTokens : Number.POSITIVE_INFINITY;
    /** Prompt tokens `req` may compute this step out of the `n` it has left (0: none this step). */
    const chunk = (req: SimRequest, n: number): number => {
      if (threshold > 0 && n > threshold) n = threshold;
      if (pp && req.priority > 0 && n > lowLeft) n = lowLeft;
      return n;
    };
    /** Puts `n` new tokens of `req` in this step. */
    const take = (req: SimRequest, n: number): void => {
      batch.add(req, n);
      budget -= n;
      if (pp && req.priority > 0 && n > 1) lowLeft -= n;
    };

    for (let i = 0; i < running.length && budget > 0; ) {
      const req = running[i] as SimRequest;
      let n = req.numTokens - req.computed;
      if (n > 1) {
        if (req.priority > prefillFloor) {
          i++;
          continue;
        }
        n = chunk(req, n);
        if (n === 0) {
          i++;
          continue;
        }
      }
      if (n > budget) n = budget;
      const need = Math.ceil((req.computed + n) / bs) - req.blocks.length;
      let ok = true;
      while (need > kv.freeBlocks) {
        const victim = priority ? this.lowestPriority(i) : (running.pop() as SimRequest);
        this.preempt(victim);
        preempted = true;
        if (victim === req) {
          ok = false;
          break;
        }
      }
      if (!ok) break;
      if (need > 0) kv.allocate(req.blocks, need);
      this.storeFull(req, req.computed + n);
      take(req, n);
      i++;
    }
    if (preempted) return true;

    const waiting = this.waiting;
    while (budget > 0 && running.length < this.limits.maxNumSeqs) {
      const req = waiting.peek();
      if (!req) break;
      if (req.state !== WAITING) {
        waiting.shift(); // aborted while queued
        continue;
      }
      if (req.arrivalMs > atMs) break;
      let hit = 0;
      let pinned = 0; // hit blocks that are free now and leave the free queue when reused
      if (req.computed === 0) {
        const maxHit = Math.min(Math.floor((req.numTokens - 1) / bs), req.numHashes);
        hit = kv.lookup(req.hashes, maxHit);
        pinned = kv.lookupFree;
        const tier = kv.lowerTier;
        if (tier && hit < maxHit) {
          const more = Math.min(tier.lookup(req.hashes, hit, maxHit), maxHit - hit);
          if (more > 0) {
            // Blocks for the whole prompt, not only the loaded prefix: a loaded request then never
            // waits for memory to compute its suffix. Reserving only the prefix let slow concurrent
            // loads fill memory with requests none of which could be admitted (a deadlock).
            const rest = Math.ceil(req.numTokens / bs) - hit - more;
            if (more + rest > kv.freeBlocks - pinned) break;
            waiting.shift();
            kv.takeLookup(req.blocks);
            kv.allocate(req.blocks, more + rest);
            req.numStored = hit;
            req.state = LOADING;
            this.hooks.startLoad(req, hit, more, atMs);
            continue;
          }
        }
      }
      const start = req.computed > 0 ? req.computed : hit * bs;
      if (req.priority > prefillFloor) break; // the queue is in priority order: nobody after may prefill
      let n = chunk(req, req.numTokens - start);
      if (n === 0) break;
      if (n > budget) n = budget;
      const need = Math.ceil((start + n) / bs) - req.blocks.length - hit;
      if (need > kv.freeBlocks - pinned) break;
      waiting.shift();
      this.numWaiting--;
      const lookedUp = req.computed === 0;
      if (lookedUp) {
        kv.takeLookup(req.blocks);
        req.computed = start;
        req.numStored = hit;
      }
      this.hooks.admitted(req, hit, lookedUp, atMs);
      if (need > 0) kv.allocate(req.blocks, need);
      this.storeFull(req, start + n);
      req.state = RUNNING;
      running.push(req);
      take(req, n);
    }
    return false;
  }

  /** Smallest priority of a request with prompt tokens to compute at `atMs` (running or at the queue's head). */
  private prefillFloor(atMs: number): number {
    let floor = Number.POSITIVE_INFINITY;
    for (const r of this.running) if (r.numTokens - r.computed > 1 && r.priority < floor) floor = r.priority;
    const head = this.waiting.peek();
    if (head && head.state === WAITING && head.arrivalMs <= atMs && head.priority < floor) floor = head.priority;
    return floor;
  }

  /**
   * vLLM's preemption victim under the priority policy: the largest (priority, arrival) running —
   * here among those not yet in this step's batch (from `from` on), which vLLM would take back out.
   */
  private lowestPriority(from: number): SimRequest {
    const running = this.running;
    let at = running.length - 1;
    for (let i = running.length - 2; i >= from; i--) if (before(running[at] as SimRequest, running[i] as SimRequest)) at = i;
    const [victim] = running.splice(at, 1);
    return victim as SimRequest;
  }

  /** Caches the request's blocks that are full once `upto` tokens are computed. */
  private storeFull(req: SimRequest, upto: number): void {
    if (!this.kv.enablePrefixCaching) return;
    const bs = this.kv.blockSize;
    const full = Math.floor(Math.min(upto, req.numTokens) / bs);
    if (full <= req.numStored) return;
    req.hashUpTo(full, bs);
    this.kv.store(req.blocks, req.numStored, full, req.hashes, req.tokens);
    req.numStored = full;
  }

  private preempt(req: SimRequest): void {
    this.kv.release(req.blocks);
    req.blocks.length = 0;
    req.computed = 0;
    req.numStored = 0;
    req.state = WAITING;
    req.preemptions++;
    if (this.limits.policy === "priority") this.waiting.insert(req, before);
    else this.waiting.unshift(req);
    this.numWaiting++;
    this.hooks.preempted(req);
  }
}
