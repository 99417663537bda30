/**
 * One ledger object per tenant: the single writer for the tenant's rate limits and its usage.
 *
 * Limits: a request reserves its prompt estimate plus its completion allowance before it is
 * routed; the reservation counts against requests/tokens per minute and the token budget at once,
 * and is settled with the engine's real counts when the request ends (or released, charging
 * nothing, when the request is refused before reaching a node).
 *
 * Usage: every finished or broken request's usage is written here, keyed by request id, before the
 * client sees the end of its response; a write-ahead log in this object's SQLite, flushed to D1's
 * hourly aggregates in numbered batches. A batch is applied at most once (D1 refuses a batch id it
 * has seen) and retried until applied, so a request is counted exactly once even when this object
 * restarts in the middle of a flush. Tables: docs/storage-schema.md ("Tenant ledger").
 */
import { DurableObject } from "cloudflare:workers";
import { and, eq, gte, inArray, lt, sql } from "drizzle-orm";
import { openDb } from "../db/client";
import { usageFlushes, usageHourly } from "../db/schema";
import type { Env } from "../env";
import { exceeded, type LimitKind, type LimitState, periodEnd, periodStart, rateLimitHeaders, type TenantLimits, WINDOW_MS } from "./limits";
import { addTotals, emptyTotals, type UsageTotals } from "./usage-totals";

export type UsageOutcome = "completed" | "cancelled" | "failed" | "lost";

export interface UsageRecord {
  requestId: string;
  model: string;
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
  /** Counts derived by the edge because the engine's own never arrived. */
  estimated: boolean;
  outcome: UsageOutcome;
  /** When the request ended (epoch ms). */
  at: number;
}

export interface ReserveInput {
  tenantId: string;
  requestId: string;
  model: string;
  /** Estimated prompt tokens. */
  promptTokens: number;
  /** Completion tokens allowed (max_tokens, or the default cap). */
  completionTokens: number;
  limits: TenantLimits;
}

export type ReserveResult =
  | { ok: true; headers: Record<string, string> }
  | { ok: false; kind: LimitKind; retryAfterSeconds: number; headers: Record<string, string> };

/** A reservation outlives any sane stream; past this it is recorded as lost (estimated) usage. */
const RESERVATION_MS = 2 * 3_600_000;
/** Flushed usage rows are kept this long so a late duplicate record is still recognised. */
const RECORD_RETENTION_MS = 24 * 3_600_000;
const FLUSH_BATCH = 200;
const FLUSH_DELAY_MS = 2_000;
const HOUR_MS = 3_600_000;

const MIGRATIONS = [
  `CREATE TABLE IF NOT EXISTS buckets (second INTEGER PRIMARY KEY, requests INTEGER NOT NULL, tokens INTEGER NOT NULL);
   CREATE TABLE IF NOT EXISTS budget (period TEXT NOT NULL, period_start INTEGER NOT NULL, tokens INTEGER NOT NULL, PRIMARY KEY (period, period_start));
   CREATE TABLE IF NOT EXISTS reservations (
     request_id TEXT PRIMARY KEY, model TEXT NOT NULL, second INTEGER NOT NULL,
     prompt_tokens INTEGER NOT NULL, tokens INTEGER NOT NULL, expires_at INTEGER NOT NULL);
   CREATE TABLE IF NOT EXISTS usage_events (
     request_id TEXT PRIMARY KEY, model TEXT NOT NULL, hour INTEGER NOT NULL, prompt_tokens INTEGER NOT NULL,
     completion_tokens INTEGER NOT NULL, cached_tokens INTEGER NOT NULL, estimated INTEGER NOT NULL,
     outcome TEXT NOT NULL, at INTEGER NOT NULL, batch_id TEXT, flushed_at INTEGER);
   CREATE INDEX IF NOT EXISTS usage_events_pending ON usage_events (flushed_at, batch_id);`,
  // v2: requests refused by a limit, per hour and kind (operator stats).
  `CREATE TABLE IF NOT EXISTS rejections (hour INTEGER NOT NULL, kind TEXT NOT NULL, count INTEGER NOT NULL, last_at INTEGER NOT NULL, PRIMARY KEY (hour, kind));`,
];

/** Requests refused by each limit: today and this month (UTC), and when the last one was. */
export interface LimitRejections {
  today: Record<LimitKind, number>;
  month: Record<LimitKind, number>;
  /** Epoch ms of the latest rejection, null if none was counted. */
  lastAt: number | null;
}

export class TenantLedger extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private tenantId = "";
  /** Test hook: throw right after D1 applied a batch, before it is marked flushed here. */
  crashAfterCommit = false;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
    const version = Number(this.meta("schema_version") ?? 0);
    for (let v = version; v < MIGRATIONS.length; v++) {
      this.sql.exec(MIGRATIONS[v] as string);
      this.setMeta("schema_version", String(v + 1));
    }
    this.tenantId = this.meta("tenant_id") ?? "";
  }

  private meta(key: string): string | undefined {
    const row = this.sql.exec("SELECT value FROM meta WHERE key = ?", key).toArray()[0];
    return row ? String(row.value) : undefined;
  }

  private setMeta(key: string, value: string): void {
    this.sql.exec("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", key, value);
  }

  private remember(tenantId: string): void {
    if (this.tenantId === tenantId) return;
    this.tenantId = tenantId;
    this.setMeta("tenant_id", tenantId);
  }

  private state(limits: TenantLimits, now: number): LimitState {
    const since = Math.floor((now - WINDOW_MS) / 1000);
    const w = this.sql.exec("SELECT COALESCE(SUM(requests), 0) AS r, COALESCE(SUM(tokens), 0) AS t FROM buckets WHERE second > ?", since).one();
    const oldestReq = this.sql.exec("SELECT MIN(second) AS s FROM buckets WHERE second > ? AND requests > 0", since).one().s;
    const oldestTok = this.sql.exec("SELECT MIN(second) AS s FROM buckets WHERE second > ? AND tokens > 0", since).one().s;
    const start = periodStart(limits.budgetPeriod, now);
    const used = this.sql.exec("SELECT tokens FROM budget WHERE period = ? AND period_start = ?", limits.budgetPeriod, start).toArray()[0];
    return {
      requestsInWindow: Number(w.r),
      tokensInWindow: Number(w.t),
      budgetUsed: used ? Number(used.tokens) : 0,
      requestsResetAt: oldestReq === null ? now : Number(oldestReq) * 1000 + WINDOW_MS,
      tokensResetAt: oldestTok === null ? now : Number(oldestTok) * 1000 + WINDOW_MS,
      budgetResetAt: periodEnd(limits.budgetPeriod, now),
    };
  }

  private addToWindow(second: number, requests: number, tokens: number): void {
    this.sql.exec(
      "INSERT INTO buckets (second, requests, tokens) VALUES (?, ?, ?) ON CONFLICT(second) DO UPDATE SET requests = requests + excluded.requests, tokens = tokens + excluded.tokens",
      second, requests, tokens,
    );
  }

  /** Counts tokens in the day and the month containing `at`, so either budget period reads true. */
  private addToBudget(at: number, tokens: number): void {
    for (const period of ["day", "month"] as const) {
      this.sql.exec(
        "INSERT INTO budget (period, period_start, tokens) VALUES (?, ?, ?) ON CONFLICT(period, period_start) DO UPDATE SET tokens = tokens + excluded.tokens",
        period, periodStart(period, at), tokens,
      );
    }
  }

  /** Counts `tokens` at the time `second` in both the per-minute window and the budget. */
  private charge(second: number, requests: number, tokens: number): void {
    this.addToWindow(second, requests, tokens);
    this.addToBudget(second * 1000, tokens);
  }

  /**
   * Admits the request if the tenant is under every limit, counting its reservation at once.
   * Idempotent by request id (a retried call does not reserve twice).
   */
  async reserve(input: ReserveInput): Promise<ReserveResult> {
    this.remember(input.tenantId);
    const now = Date.now();
    const before = this.state(input.limits, now);
    const existing = this.sql.exec("SELECT 1 FROM reservations WHERE request_id = ?", input.requestId).toArray().length > 0;
    if (existing) return { ok: true, headers: rateLimitHeaders(input.limits, before, now) };
    const over = exceeded(input.limits, before);
    if (over) {
      this.countRejection(over, now);
      const at = over === "requests" ? before.requestsResetAt : over === "tokens" ? before.tokensResetAt : before.budgetResetAt;
      return { ok: false, kind: over, retryAfterSeconds: Math.max(1, Math.ceil((at - now) / 1000)), headers: rateLimitHeaders(input.limits, before, now) };
    }
    const tokens = input.promptTokens + input.completionTokens;
    const second = Math.floor(now / 1000);
    this.charge(second, 1, tokens);
    this.sql.exec(
      "INSERT INTO reservations (request_id, model, second, prompt_tokens, tokens, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
      input.requestId, input.model, second, input.promptTokens, tokens, now + RESERVATION_MS,
    );
    await this.arm(RESERVATION_MS);
    return { ok: true, headers: rateLimitHeaders(input.limits, this.state(input.limits, now), now) };
  }

  private countRejection(kind: LimitKind, now: number): void {
    this.sql.exec(
      "INSERT INTO rejections (hour, kind, count, last_at) VALUES (?, ?, 1, ?) ON CONFLICT(hour, kind) DO UPDATE SET count = count + 1, last_at = excluded.last_at",
      Math.floor(now / HOUR_MS) * HOUR_MS, kind, now,
    );
    // Pruned here rather than by the alarm: a tenant refused every time never arms one.
    this.sql.exec("DELETE FROM rejections WHERE hour < ?", periodStart("month", now) - 40 * 86_400_000);
  }

  /** The request was refused before reaching a node: take its reservation back, charging nothing. */
  async release(requestId: string): Promise<boolean> {
    const r = this.sql.exec("SELECT * FROM reservations WHERE request_id = ?", requestId).toArray()[0];
    if (!r) return false;
    this.charge(Number(r.second), -1, -Number(r.tokens));
    this.sql.exec("DELETE FROM reservations WHERE request_id = ?", requestId);
    return true;
  }

  /**
   * Records a finished or broken request's usage, once: a repeated call with the same request id
   * changes nothing. Settles the request's reservation with the real token count.
   */
  async record(tenantId: string, usage: UsageRecord): Promise<{ recorded: boolean }> {
    this.remember(tenantId);
    if (this.sql.exec("SELECT 1 FROM usage_events WHERE request_id = ?", usage.requestId).toArray().length > 0) return { recorded: false };
    const real = usage.promptTokens + usage.completionTokens;
    const r = this.sql.exec("SELECT * FROM reservations WHERE request_id = ?", usage.requestId).toArray()[0];
    if (r) {
      this.charge(Number(r.second), 0, real - Number(r.tokens));
      this.sql.exec("DELETE FROM reservations WHERE request_id = ?", usage.requestId);
    } else {
      // Nothing reserved (a tenant without limits): still count it, so limits set later see history.
      this.charge(Math.floor(usage.at / 1000), 1, real);
    }
    this.insertEvent(usage);
    await this.arm(FLUSH_DELAY_MS);
    return { recorded: true };
  }

  private insertEvent(u: UsageRecord): void {
    this.sql.exec(
      `INSERT OR IGNORE INTO usage_events (request_id, model, hour, prompt_tokens, completion_tokens, cached_tokens, estimated, outcome, at, batch_id, flushed_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)`,
      u.requestId, u.model, Math.floor(u.at / HOUR_MS) * HOUR_MS, u.promptTokens, u.completionTokens, u.cachedTokens, u.estimated ? 1 : 0, u.outcome, u.at,
    );
  }

  /**
   * The tenant's usage by model and hour for hours in [from, to): D1's aggregates plus what is
   * recorded here and not yet flushed. Runs under the flush lock, and leaves out a batch D1 already
   * has (applied just before a restart), so every request is counted once.
   */
  async usage(from: number, to: number, model?: string): Promise<UsageTotals[]> {
    return this.exclusive(async () => {
      const db = openDb(this.env.DB);
      const tenantId = this.tenantId;
      const rows: UsageTotals[] = tenantId
        ? (await db.select().from(usageHourly).where(and(eq(usageHourly.tenantId, tenantId), gte(usageHourly.hour, from), lt(usageHourly.hour, to), model !== undefined ? eq(usageHourly.model, model) : undefined)))
            .map(({ tenantId: _t, ...r }) => r)
        : [];
      const pending = this.sql
        .exec(
          `SELECT batch_id, model, hour, COUNT(*) AS requests, SUM(prompt_tokens) AS p, SUM(completion_tokens) AS c, SUM(cached_tokens) AS k,
                  SUM(estimated) AS e, SUM(CASE WHEN outcome = 'completed' THEN 0 ELSE 1 END) AS f
           FROM usage_events WHERE flushed_at IS NULL AND hour >= ? AND hour < ? GROUP BY batch_id, model, hour`,
          from, to,
        )
        .toArray()
        .filter((r) => model === undefined || r.model === model);
      const batchIds = [...new Set(pending.map((r) => r.batch_id).filter((b): b is string => typeof b === "string"))];
      const applied = new Set(batchIds.length > 0 ? (await db.select({ id: usageFlushes.batchId }).from(usageFlushes).where(inArray(usageFlushes.batchId, batchIds))).map((r) => r.id) : []);
      const merged = new Map<string, UsageTotals>(rows.map((r) => [`${r.model}\u0000${r.hour}`, r]));
      for (const r of pending) {
        if (typeof r.batch_id === "string" && applied.has(r.batch_id)) continue;
        const key = `${String(r.model)}\u0000${Number(r.hour)}`;
        const into = merged.get(key) ?? emptyTotals(String(r.model), Number(r.hour));
        merged.set(key, addTotals(into, {
          requests: Number(r.requests),
          promptTokens: Number(r.p),
          completionTokens: Number(r.c),
          cachedTokens: Number(r.k),
          estimatedRequests: Number(r.e),
          failedRequests: Number(r.f),
        }));
      }
      return [...merged.values()].sort((a, b) => a.hour - b.hour || a.model.localeCompare(b.model));
    });
  }

  /** Flush and usage reads take turns, so a read never sees a batch half-moved to D1. */
  private lock: Promise<unknown> = Promise.resolve();
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn, fn);
    this.lock = run.catch(() => undefined);
    return run;
  }

  /** Current limit state, for stats and headers. */
  async limitState(limits: TenantLimits): Promise<{ headers: Record<string, string>; state: LimitState }> {
    const now = Date.now();
    const state = this.state(limits, now);
    return { headers: rateLimitHeaders(limits, state, now), state };
  }

  /** Limit state and rejections, for the admin stats. */
  async stats(limits: TenantLimits): Promise<{ state: LimitState; rejections: LimitRejections }> {
    const now = Date.now();
    const sums = (since: number) => {
      const out: Record<LimitKind, number> = { requests: 0, tokens: 0, budget: 0 };
      for (const r of this.sql.exec("SELECT kind, SUM(count) AS n FROM rejections WHERE hour >= ? GROUP BY kind", since)) out[String(r.kind) as LimitKind] = Number(r.n);
      return out;
    };
    const last = this.sql.exec("SELECT MAX(last_at) AS t FROM rejections").one().t;
    return {
      state: this.state(limits, now),
      rejections: { today: sums(periodStart("day", now)), month: sums(periodStart("month", now)), lastAt: last === null ? null : Number(last) },
    };
  }

  private async arm(inMs: number): Promise<void> {
    const at = Date.now() + inMs;
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > at) await this.ctx.storage.setAlarm(at);
  }

  /**
   * Sends pending usage to D1 in numbered batches: batches assigned before a restart are re-sent
   * first, with the same id; a batch D1 already has is just marked flushed here. Returns the number
   * of events this call confirmed.
   */
  async flush(): Promise<number> {
    return this.exclusive(() => this.flushNow());
  }

  private async flushNow(): Promise<number> {
    if (!this.tenantId) return 0;
    let confirmed = 0;
    for (;;) {
      let batchId = this.sql.exec("SELECT batch_id FROM usage_events WHERE flushed_at IS NULL AND batch_id IS NOT NULL LIMIT 1").toArray()[0]?.batch_id as string | undefined;
      if (!batchId) {
        const ids = this.sql.exec("SELECT request_id FROM usage_events WHERE flushed_at IS NULL AND batch_id IS NULL ORDER BY at LIMIT ?", FLUSH_BATCH).toArray();
        if (ids.length === 0) return confirmed;
        const seq = Number(this.meta("batch_seq") ?? 0) + 1;
        batchId = `${this.tenantId}:${this.ctx.id.toString().slice(0, 12)}:${seq}`;
        // Assigning and numbering the batch is one atomic write: after a restart it is re-sent as is.
        this.ctx.storage.transactionSync(() => {
          this.setMeta("batch_seq", String(seq));
          for (const r of ids) this.sql.exec("UPDATE usage_events SET batch_id = ? WHERE request_id = ?", batchId as string, String(r.request_id));
        });
      }
      const events = this.sql.exec("SELECT * FROM usage_events WHERE batch_id = ?", batchId).toArray();
      await this.apply(batchId, events);
      if (this.crashAfterCommit) throw new Error("crash after commit (test hook)");
      this.sql.exec("UPDATE usage_events SET flushed_at = ? WHERE batch_id = ?", Date.now(), batchId);
      confirmed += events.length;
    }
  }

  private async apply(batchId: string, events: Array<Record<string, SqlStorageValue>>): Promise<void> {
    const db = openDb(this.env.DB);
    const groups = new Map<string, UsageTotals>();
    for (const e of events) {
      const k = `${String(e.model)}\u0000${Number(e.hour)}`;
      groups.set(k, addTotals(groups.get(k) ?? emptyTotals(String(e.model), Number(e.hour)), {
        requests: 1,
        promptTokens: Number(e.prompt_tokens),
        completionTokens: Number(e.completion_tokens),
        cachedTokens: Number(e.cached_tokens),
        estimatedRequests: Number(e.estimated),
        failedRequests: e.outcome === "completed" ? 0 : 1,
      }));
    }
    const upserts = [...groups.values()].map((g) =>
      db
        .insert(usageHourly)
        .values({ tenantId: this.tenantId, ...g })
        .onConflictDoUpdate({
          target: [usageHourly.tenantId, usageHourly.model, usageHourly.hour],
          set: {
            requests: sql`${usageHourly.requests} + ${g.requests}`,
            promptTokens: sql`${usageHourly.promptTokens} + ${g.promptTokens}`,
            completionTokens: sql`${usageHourly.completionTokens} + ${g.completionTokens}`,
            cachedTokens: sql`${usageHourly.cachedTokens} + ${g.cachedTokens}`,
            estimatedRequests: sql`${usageHourly.estimatedRequests} + ${g.estimatedRequests}`,
            failedRequests: sql`${usageHourly.failedRequests} + ${g.failedRequests}`,
          },
        }),
    );
    try {
      // One D1 batch is one transaction: the batch id and the aggregates land together or not at all.
      await db.batch([db.insert(usageFlushes).values({ batchId, tenantId: this.tenantId, events: events.length, flushedAt: Date.now() }), ...upserts]);
    } catch (err) {
      if (/UNIQUE constraint failed: usage_flushes\.batch_id/i.test(String(err))) return; // applied before a restart
      throw err;
    }
  }

  /** Flushes usage, records expired reservations as lost usage, prunes old state; re-arms while needed. */
  override async alarm(): Promise<void> {
    const now = Date.now();
    for (const r of this.sql.exec("SELECT * FROM reservations WHERE expires_at <= ?", now).toArray()) {
      // The stream's end was never recorded (the isolate died): count what is known, flagged estimated.
      this.insertEvent({ requestId: String(r.request_id), model: String(r.model), promptTokens: Number(r.prompt_tokens), completionTokens: 0, cachedTokens: 0, estimated: true, outcome: "lost", at: now });
      this.charge(Number(r.second), 0, Number(r.prompt_tokens) - Number(r.tokens));
      this.sql.exec("DELETE FROM reservations WHERE request_id = ?", String(r.request_id));
    }
    this.sql.exec("DELETE FROM buckets WHERE second < ?", Math.floor((now - 2 * WINDOW_MS) / 1000));
    this.sql.exec("DELETE FROM budget WHERE period_start < ?", periodStart("month", now) - 40 * 86_400_000);
    this.sql.exec("DELETE FROM usage_events WHERE flushed_at IS NOT NULL AND flushed_at < ?", now - RECORD_RETENTION_MS);
    await this.flush();
    const pendingReservations = Number(this.sql.exec("SELECT COUNT(*) AS n FROM reservations").one().n);
    const pendingEvents = Number(this.sql.exec("SELECT COUNT(*) AS n FROM usage_events WHERE flushed_at IS NULL").one().n);
    if (pendingEvents > 0) await this.ctx.storage.setAlarm(now + FLUSH_DELAY_MS);
    else if (pendingReservations > 0) {
      const next = this.sql.exec("SELECT MIN(expires_at) AS t FROM reservations").one().t;
      await this.ctx.storage.setAlarm(Number(next));
    }
  }
}
