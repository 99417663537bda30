/**
 * vLLM's KV-cache events, read the way vLLM publishes them (ZMQ PUB, `--kv-events-config`;
 * kvcache.md §1.2): 3-part messages [topic, sequence (u64 BE), msgpack EventBatch]. The agent only
 * needs what the edge's prefix index uses: how many cached tokens the engine evicted (BlockRemoved
 * × block size, as a running total) and when its cache started over (AllBlocksCleared, a publisher
 * restart, or a gap in sequence numbers, since lost events may have removed anything).
 *
 * Decoding accepts both encodings vLLM has used: events as arrays tagged by their first element
 * (`array_like`, 0.9–0.11) and as maps with a `type` key (newer), with unknown trailing fields.
 */
import { decode } from "@msgpack/msgpack";
import type { Logger } from "../../lib/log";
import { ZmtpSubscriber } from "../../lib/zmtp";

export interface KvEventSummary {
  stored: number;
  removed: number;
  cleared: boolean;
  blockSize: number | undefined;
}

function field(event: unknown, index: number, name: string): unknown {
  if (Array.isArray(event)) return event[index];
  if (event && typeof event === "object") return (event as Record<string, unknown>)[name];
  return undefined;
}

function tagOf(event: unknown): string | undefined {
  const t = Array.isArray(event) ? event[0] : event && typeof event === "object" ? ((event as Record<string, unknown>).type ?? (event as Record<string, unknown>).tag) : undefined;
  return typeof t === "string" ? t : undefined;
}

/** Summarises one EventBatch payload (msgpack bytes). Throws on bytes that are not an EventBatch. */
export function summariseBatch(payload: Uint8Array): KvEventSummary {
  const batch = decode(payload, { useBigInt64: true }) as unknown;
  const events = Array.isArray(batch) ? batch[1] : batch && typeof batch === "object" ? (batch as { events?: unknown }).events : undefined;
  if (!Array.isArray(events)) throw new Error("KV event batch has no events list");
  const out: KvEventSummary = { stored: 0, removed: 0, cleared: false, blockSize: undefined };
  for (const ev of events) {
    const tag = tagOf(ev);
    if (tag === "BlockStored") {
      const hashes = field(ev, 1, "block_hashes");
      if (Array.isArray(hashes)) out.stored += hashes.length;
      const size = field(ev, 4, "block_size");
      if (typeof size === "number" && size > 0) out.blockSize = size;
      else if (typeof size === "bigint" && size > 0n) out.blockSize = Number(size);
    } else if (tag === "BlockRemoved") {
      // Only removals from GPU memory (medium GPU or unset) are evictions; CPU-tier churn is not.
      const medium = field(ev, 2, "medium");
      if (medium !== undefined && medium !== null && medium !== "GPU") continue;
      const hashes = field(ev, 1, "block_hashes");
      if (Array.isArray(hashes)) out.removed += hashes.length;
    } else if (tag === "AllBlocksCleared") {
      out.cleared = true;
    }
  }
  return out;
}

function newEpoch(): string {
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

/** Running totals from an engine's KV event stream, as EngineLoad reports them. */
export class KvEventTracker {
  evictedTokens = 0;
  epoch = newEpoch();
  blockSize: number;
  private lastSeq: bigint | undefined;
  private subscriber: ZmtpSubscriber | undefined;
  private subscription: { endpoint: string; topic: string; log: Logger } | undefined;
  batches = 0;
  /** Whether the subscription is connected to the publisher now. */
  connected = false;

  constructor(defaultBlockSize = 16) {
    this.blockSize = defaultBlockSize;
  }

  /** Handles one published message: [topic, seq, payload] (or [seq, payload] without a topic frame). */
  handle(parts: readonly Buffer[], log?: Logger): void {
    const payload = parts[parts.length - 1];
    const seqFrame = parts.length >= 2 ? parts[parts.length - 2] : undefined;
    if (!payload) return;
    if (seqFrame && seqFrame.length === 8) {
      const seq = seqFrame.readBigUInt64BE(0);
      // A reset (publisher restart) or a gap (events lost): anything may have been removed.
      if (this.lastSeq !== undefined && seq !== this.lastSeq + 1n) this.epoch = newEpoch();
      this.lastSeq = seq;
    }
    let summary: KvEventSummary;
    try {
      summary = summariseBatch(payload);
    } catch (err) {
      log?.warn("kv_event_undecodable", { error: err instanceof Error ? err.message : String(err) });
      return;
    }
    this.batches++;
    if (summary.blockSize) this.blockSize = summary.blockSize;
    if (summary.cleared) this.epoch = newEpoch();
    this.evictedTokens += summary.removed * this.blockSize;
  }

  /** Subscribes to a publisher endpoint (tcp://host:port), reconnecting as needed. */
  subscribe(endpoint: string, topic: string, log: Logger): void {
    this.subscription = { endpoint, topic, log };
    const subscriber = new ZmtpSubscriber({ endpoint, topic });
    this.subscriber = subscriber;
    subscriber.on("message", (parts: Buffer[]) => this.handle(parts, log));
    subscriber.on("connected", () => {
      this.connected = true;
      log.info("kv_events_connected", { endpoint });
    });
    subscriber.on("disconnected", () => {
      if (this.subscriber === subscriber) this.connected = false;
      // Events missed while disconnected are unknown: start a new epoch when the stream resumes.
      this.lastSeq = undefined;
      this.epoch = newEpoch();
    });
  }

  /**
   * Connects again now. For a publisher known to have just come up (an engine the agent launched
   * became ready): the subscriber's reconnect backoff may otherwise sleep up to 5 s through the
   * first events.
   */
  resubscribe(): void {
    const s = this.subscription;
    if (!s) return;
    this.subscriber?.close();
    this.connected = false;
    this.subscribe(s.endpoint, s.topic, s.log);
  }

  close(): void {
    this.subscription = undefined;
    this.subscriber?.close();
  }
}
