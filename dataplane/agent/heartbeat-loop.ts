/**
 * Sends signed heartbeats to the edge every interval (the edge may ask for another interval), and
 * a final `leaving` beat on shutdown so the edge stops routing here at once. Failures are logged
 * and retried on the next tick; the loop never dies.
 */
import { HEARTBEAT_PATH, type Heartbeat, type HeartbeatReply } from "../../protocol/heartbeat";
import { signRequest } from "../../protocol/signing";
import { request } from "undici";
import type { Logger } from "../lib/log";
import { secretVersionOf } from "./inbound-auth";

export interface HeartbeatLoopOptions {
  edgeUrl: string;
  nodeId: string;
  secret: string;
  intervalMs: number;
  snapshot: (leaving: boolean) => Heartbeat;
  log: Logger;
  onResult?: (ok: boolean) => void;
  /** Every reply the edge accepted a beat with (e.g. to apply its `cacheServers`); must not throw. */
  onReply?: (reply: HeartbeatReply) => void;
}

export class HeartbeatLoop {
  private timer: NodeJS.Timeout | undefined;
  private intervalMs: number;
  private stopped = false;
  private failures = 0;
  /** The tick under way, so stop() can let it land before the leaving beat. */
  private current: Promise<void> | undefined;
  lastReply: HeartbeatReply | undefined;

  constructor(private readonly opts: HeartbeatLoopOptions) {
    this.intervalMs = opts.intervalMs;
  }

  start(): void {
    this.current = this.tick();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.current = this.tick();
    }, this.intervalMs);
  }

  private async tick(): Promise<void> {
    try {
      const reply = await this.send(false);
      this.lastReply = reply;
      try {
        this.opts.onReply?.(reply);
      } catch (err) {
        this.opts.log.warn("heartbeat_reply_not_applied", { error: err instanceof Error ? err.message : String(err) });
      }
      if (reply.intervalMs >= 200 && reply.intervalMs !== this.intervalMs) this.intervalMs = reply.intervalMs;
      if (this.failures > 0) this.opts.log.info("heartbeat_recovered", { afterFailures: this.failures });
      this.failures = 0;
      this.opts.onResult?.(true);
    } catch (err) {
      this.failures++;
      this.opts.onResult?.(false);
      // Log the first failure and then every tenth, so a long outage does not flood the log.
      if (this.failures === 1 || this.failures % 10 === 0) {
        this.opts.log.warn("heartbeat_failed", { failures: this.failures, error: err instanceof Error ? err.message : String(err) });
      }
    }
    this.schedule();
  }

  async send(leaving: boolean): Promise<HeartbeatReply> {
    const beat = this.opts.snapshot(leaving);
    const body = new TextEncoder().encode(JSON.stringify(beat));
    const url = new URL(HEARTBEAT_PATH, this.opts.edgeUrl);
    const signature = await signRequest({
      nodeId: this.opts.nodeId,
      keyVersion: secretVersionOf(this.opts.secret),
      secret: this.opts.secret,
      method: "POST",
      path: url.pathname + url.search,
      body,
    });
    const res = await request(url, {
      method: "POST",
      headers: { "content-type": "application/json", ...signature },
      body,
      headersTimeout: 5_000,
      bodyTimeout: 5_000,
    });
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`edge answered ${res.statusCode}: ${text.slice(0, 300)}`);
    return JSON.parse(text) as HeartbeatReply;
  }

  /** Stops the loop; with `leaving`, tells the edge first (best effort, bounded). */
  async stop(leaving: boolean): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    // A beat already on its way must land first, or the edge could see it after `leaving` and route here again.
    await this.current;
    if (!leaving) return;
    try {
      await this.send(true);
    } catch (err) {
      this.opts.log.warn("leaving_heartbeat_failed", { error: err instanceof Error ? err.message : String(err) });
    }
  }
}
