/**
 * The emulator's KV events published over ZMQ exactly as vLLM publishes them (kvcache.md §1.2):
 * a PUB socket, 3-part messages [topic, sequence (u64 big-endian), msgpack EventBatch], the batch
 * and its events encoded `array_like` as vLLM 0.9–0.11 do ([ts, [event...], dp_rank], events
 * tagged by their first element). An agent configured for vLLM's events reads these unchanged.
 */
import { encode } from "@msgpack/msgpack";
import { ZmtpPublisher } from "../../lib/zmtp";
import type { KvEvent, KvEventBatch } from "./kv-cache";

function eventArray(e: KvEvent): unknown[] {
  switch (e.type) {
    case "BlockStored":
      return ["BlockStored", e.block_hashes, e.parent_block_hash, e.token_ids, e.block_size, e.lora_id, e.medium];
    case "BlockRemoved":
      return ["BlockRemoved", e.block_hashes, e.medium];
    case "AllBlocksCleared":
      return ["AllBlocksCleared"];
  }
}

export function encodeBatch(batch: KvEventBatch): Uint8Array {
  return encode([batch.ts, batch.events.map(eventArray), batch.data_parallel_rank]);
}

export class KvEventPublisher {
  private seq = 0n;

  private constructor(
    private readonly pub: ZmtpPublisher,
    private readonly topic: Buffer,
  ) {}

  static async start(opts: { host?: string; port: number; topic?: string }): Promise<KvEventPublisher> {
    const pub = await ZmtpPublisher.listen(opts.host ?? "127.0.0.1", opts.port);
    return new KvEventPublisher(pub, Buffer.from(opts.topic ?? "", "utf8"));
  }

  get port(): number {
    return this.pub.port;
  }

  publish(batch: KvEventBatch): void {
    const seq = Buffer.alloc(8);
    seq.writeBigUInt64BE(this.seq++);
    this.pub.publish([this.topic, seq, Buffer.from(encodeBatch(batch))]);
  }

  close(): Promise<void> {
    return this.pub.close();
  }
}
