/**
 * Admin: live statistics for operators and the dashboard (docs/dashboard.md describes every field).
 *
 * - `GET /admin/stats`: every pool (nodes with load and health, in flight, waiting, per-tenant VTC
 *   counters and refusals) and a summary per tenant (usage today and this month, limit state and
 *   rejections).
 * - `GET /admin/stats/pools/:pool`: one pool.
 * - `GET /admin/stats/tenants/:id`: one tenant, its usage exact through its ledger.
 *
 * Sources: pool objects (live, per request), tenant ledgers (limit state and limit rejections) and,
 * for the summary's usage only, D1's hourly aggregates read in one query and cached per isolate for
 * a few seconds — a dashboard polling every 2 s must not cost a ledger call and a D1 query per
 * tenant per poll. The summary reads ledgers only for tenants that have limits, at most
 * {@link MAX_LEDGER_READS} of them.
 */
import { type AnyColumn, eq, gte, sql } from "drizzle-orm";
import type { Context } from "hono";
import { Hono } from "hono";
import type { KvCacheReport } from "../../protocol/heartbeat";
import { ApiError } from "../../protocol/openai-error";
import { openDb, type Db } from "../db/client";
import { tenants, usageHourly, type TenantRow } from "../db/schema";
import type { AppEnv, Env } from "../env";
import { TtlCache } from "../lib/ttl-cache";
import { listModels, type ModelConfig } from "../models/catalog";
import type { PoolNodeSnapshot, PoolSnapshot, PoolTenantCounters } from "../pool/types";
import { hasLimits, type LimitState, periodStart, type TenantLimits } from "../tenants/limits";
import type { LimitRejections } from "../tenants/tenant-ledger";
import { addTotals, type UsageCounts } from "../tenants/usage-totals";
import { iso } from "./validate";

/** Ledger calls one summary may make (Workers bound subrequests per invocation). */
export const MAX_LEDGER_READS = 50;
/** Tenants listed in the summary, most active first. */
export const MAX_SUMMARY_TENANTS = 200;
const USAGE_CACHE_MS = 5_000;
const HOUR_MS = 3_600_000;

interface PoolView {
  pool: string;
  models: ModelConfig[];
  snapshot: PoolSnapshot | null;
  error: string | null;
}

const round = (x: number, digits = 3) => Math.round(x * 10 ** digits) / 10 ** digits;

function zeroCounts(): UsageCounts {
  return { requests: 0, promptTokens: 0, completionTokens: 0, cachedTokens: 0, estimatedRequests: 0, failedRequests: 0 };
}

function countsJson(c: UsageCounts) {
  return {
    requests: c.requests,
    input_tokens: c.promptTokens,
    output_tokens: c.completionTokens,
    input_cached_tokens: c.cachedTokens,
    failed_requests: c.failedRequests,
    estimated_requests: c.estimatedRequests,
  };
}

function limitsOf(t: TenantRow): TenantLimits {
  return { rpm: t.rpmLimit, tpm: t.tpmLimit, tokenBudget: t.tokenBudget, budgetPeriod: t.budgetPeriod };
}

/** Pools routed by the configured models, with their snapshots (a pool that fails to answer says so). */
async function poolViews(env: Env, db: Db, only?: string): Promise<PoolView[]> {
  const byPool = new Map<string, ModelConfig[]>();
  for (const m of await listModels(db, { fresh: true })) {
    if (only !== undefined && m.pool !== only) continue;
    const list = byPool.get(m.pool) ?? [];
    list.push(m);
    byPool.set(m.pool, list);
  }
  const names = [...byPool.keys()].sort();
  const settled = await Promise.allSettled(names.map((p) => env.POOL.getByName(p).snapshot()));
  return names.map((pool, i) => {
    const r = settled[i] as PromiseSettledResult<PoolSnapshot>;
    return {
      pool,
      models: byPool.get(pool) ?? [],
      snapshot: r.status === "fulfilled" ? r.value : null,
      error: r.status === "rejected" ? (r.reason instanceof Error ? r.reason.message : String(r.reason)) : null,
    };
  });
}

function nodeJson(n: PoolNodeSnapshot, models: ModelConfig[], now: number) {
  const limit = Math.max(1, models.find((m) => m.name === n.model)?.admission.nodeLimit ?? n.maxConcurrency);
  return {
    node_id: n.nodeId,
    model: n.model,
    region: n.region,
    engine: n.engine,
    url: n.url,
    status: n.status,
    inflight: n.inflight,
    node_limit: limit,
    load: round(n.inflight / limit),
    running: n.running,
    waiting: n.waiting,
    max_concurrency: n.maxConcurrency,
    kv_usage: round(n.kvUsage, 4),
    kv_capacity_tokens: n.kvCapacityTokens,
    prefill_backlog_tokens: n.prefillBacklogTokens,
    prefix_blocks: n.prefixBlocks,
    last_heartbeat_at: iso(n.lastHeartbeatAt),
    heartbeat_age_ms: Math.max(0, now - n.lastHeartbeatAt),
    cache_server: n.cacheServer,
    kv_cache: n.kvCache ? kvCacheJson(n.kvCache) : null,
  };
}

/** The node's KV tiers at its last beat: capacity, use and hit rate per tier over the agent's window. */
function kvCacheJson(r: KvCacheReport) {
  return {
    chunk_tokens: r.chunkTokens,
    window_ms: r.windowMs,
    capacity_bytes: r.tiers.reduce((a, t) => a + t.capacityBytes, 0),
    tiers: r.tiers.map((t) => ({
      tier: t.tier,
      capacity_bytes: t.capacityBytes,
      bytes_used: t.bytesUsed,
      queries: t.queries,
      hits: t.hits,
      hit_rate: t.hitRate === undefined ? null : round(t.hitRate, 4),
      evictions: t.evictions ?? null,
      ...(t.servers !== undefined ? { servers: t.servers, servers_up: t.serversUp ?? null } : {}),
    })),
  };
}

const NO_COUNTERS: PoolTenantCounters = { requests: 0, promptTokens: 0, completionTokens: 0, queueTimeouts: 0, cancelled: 0, noHealthyNode: 0 };

/** One tenant's part of a pool: what the pool knows about it, or undefined if nothing. */
function poolTenantJson(s: PoolSnapshot, tenantId: string) {
  const vtc = s.vtc[tenantId];
  const c = s.tenants[tenantId];
  const inflight = s.inflightByTenant[tenantId] ?? 0;
  const waiting = s.waiting[tenantId] ?? 0;
  if (vtc === undefined && c === undefined && inflight === 0 && waiting === 0) return undefined;
  const counters = c ?? NO_COUNTERS;
  return {
    inflight,
    waiting,
    vtc_counter: vtc === undefined ? null : round(vtc),
    requests: counters.requests,
    input_tokens: counters.promptTokens,
    output_tokens: counters.completionTokens,
    queue_timeouts: counters.queueTimeouts,
    cancelled: counters.cancelled,
    no_healthy_node: counters.noHealthyNode,
  };
}

function poolJson(v: PoolView, now: number) {
  const s = v.snapshot;
  const models = v.models.map((m) => ({
    name: m.name,
    admission_policy: m.admission.policy,
    max_queue_wait_ms: m.admission.maxWaitMs,
    node_limit: m.admission.nodeLimit,
  }));
  if (!s) return { pool: v.pool, models, error: v.error, nodes: [], node_status: {}, inflight: 0, waiting: 0, prefix_entries: 0, memory: null, tenants: [], counters_since: null };
  const nodeStatus: Record<string, number> = {};
  for (const n of s.nodes) nodeStatus[n.status] = (nodeStatus[n.status] ?? 0) + 1;
  const tenantIds = new Set([...Object.keys(s.vtc), ...Object.keys(s.tenants), ...Object.keys(s.inflightByTenant), ...Object.keys(s.waiting)]);
  return {
    pool: v.pool,
    models,
    error: null,
    nodes: s.nodes.map((n) => nodeJson(n, v.models, now)),
    node_status: nodeStatus,
    inflight: s.inflight,
    waiting: Object.values(s.waiting).reduce((a, b) => a + b, 0),
    prefix_entries: s.prefixEntries,
    memory: {
      leases: s.memory.leases,
      load_window_entries: s.memory.loadWindowEntries,
      tenant_token_estimates: s.memory.tenantTokenEstimates,
      tenants: s.memory.tenants,
    },
    tenants: [...tenantIds].sort().flatMap((t) => {
      const p = poolTenantJson(s, t);
      return p ? [{ tenant_id: t, ...p }] : [];
    }),
    counters_since: iso(s.countersSince),
  };
}

function limitStateJson(limits: TenantLimits, state: LimitState) {
  const part = (limit: number | null, used: number, resetAt: number) => ({
    limit,
    used,
    remaining: limit === null ? null : Math.max(0, limit - used),
    resets_at: used > 0 ? iso(resetAt) : null,
  });
  return {
    requests_per_minute: part(limits.rpm, state.requestsInWindow, state.requestsResetAt),
    tokens_per_minute: part(limits.tpm, state.tokensInWindow, state.tokensResetAt),
    budget: { ...part(limits.tokenBudget, state.budgetUsed, state.budgetResetAt), period: limits.budgetPeriod, resets_at: iso(state.budgetResetAt) },
  };
}

function limitRejectionsJson(r: LimitRejections) {
  return { today: r.today, month: r.month, last_at: iso(r.lastAt) };
}

/** The tenant's share of every pool it appears in, and the sums over them. */
function tenantPools(views: PoolView[], tenantId: string) {
  const pools = views.flatMap((v) => {
    const p = v.snapshot ? poolTenantJson(v.snapshot, tenantId) : undefined;
    return p ? [{ pool: v.pool, ...p }] : [];
  });
  const sum = (f: (p: (typeof pools)[number]) => number) => pools.reduce((a, p) => a + f(p), 0);
  return {
    pools,
    inflight: sum((p) => p.inflight),
    waiting: sum((p) => p.waiting),
    served: { requests: sum((p) => p.requests), input_tokens: sum((p) => p.input_tokens), output_tokens: sum((p) => p.output_tokens) },
    pool_refusals: { queue_timeouts: sum((p) => p.queue_timeouts), cancelled: sum((p) => p.cancelled), no_healthy_node: sum((p) => p.no_healthy_node) },
  };
}

function tenantHead(t: TenantRow) {
  const l = limitsOf(t);
  return {
    id: t.id,
    name: t.name,
    weight: t.weight,
    disabled: t.disabledAt !== null,
    limits: { rpm_limit: l.rpm, tpm_limit: l.tpm, token_budget: l.tokenBudget, budget_period: l.budgetPeriod },
  };
}

interface UsageSums {
  today: UsageCounts;
  month: UsageCounts;
}

const usageCache = new TtlCache<Map<string, UsageSums>>(USAGE_CACHE_MS, 4);

/** Every tenant's usage today and this month from D1's aggregates: one query, cached per isolate. */
function usageFromD1(db: Db, now: number): Promise<Map<string, UsageSums>> {
  const month = periodStart("month", now);
  const day = periodStart("day", now);
  return usageCache.getOrLoad(`${month}:${day}`, async () => {
    const h = usageHourly;
    const today = (col: AnyColumn) => sql<number>`coalesce(sum(case when ${h.hour} >= ${day} then ${col} else 0 end), 0)`;
    const total = (col: AnyColumn) => sql<number>`coalesce(sum(${col}), 0)`;
    const rows = await db
      .select({
        tenantId: h.tenantId,
        mRequests: total(h.requests),
        mPrompt: total(h.promptTokens),
        mCompletion: total(h.completionTokens),
        mCached: total(h.cachedTokens),
        mEstimated: total(h.estimatedRequests),
        mFailed: total(h.failedRequests),
        dRequests: today(h.requests),
        dPrompt: today(h.promptTokens),
        dCompletion: today(h.completionTokens),
        dCached: today(h.cachedTokens),
        dEstimated: today(h.estimatedRequests),
        dFailed: today(h.failedRequests),
      })
      .from(h)
      .where(gte(h.hour, month))
      .groupBy(h.tenantId);
    const out = new Map<string, UsageSums>();
    for (const r of rows) {
      out.set(r.tenantId, {
        month: { requests: Number(r.mRequests), promptTokens: Number(r.mPrompt), completionTokens: Number(r.mCompletion), cachedTokens: Number(r.mCached), estimatedRequests: Number(r.mEstimated), failedRequests: Number(r.mFailed) },
        today: { requests: Number(r.dRequests), promptTokens: Number(r.dPrompt), completionTokens: Number(r.dCompletion), cachedTokens: Number(r.dCached), estimatedRequests: Number(r.dEstimated), failedRequests: Number(r.dFailed) },
      });
    }
    return out;
  }, now);
}

async function summary(env: Env, now: number) {
  const db = openDb(env.DB);
  const [views, rows, usage] = await Promise.all([poolViews(env, db), db.select().from(tenants), usageFromD1(db, now)]);
  const candidates = rows.map((t) => ({ t, pools: tenantPools(views, t.id), usage: usage.get(t.id) ?? { today: zeroCounts(), month: zeroCounts() } }));
  // Most active first: what is running or waiting now, then what was used today.
  const activity = (c: (typeof candidates)[number]) => [c.pools.inflight + c.pools.waiting, c.usage.today.promptTokens + c.usage.today.completionTokens, c.usage.month.requests];
  candidates.sort((a, b) => {
    const x = activity(a);
    const y = activity(b);
    for (let i = 0; i < x.length; i++) if ((x[i] as number) !== (y[i] as number)) return (y[i] as number) - (x[i] as number);
    return a.t.id < b.t.id ? -1 : 1;
  });
  const listed = candidates.slice(0, MAX_SUMMARY_TENANTS);
  const toRead = listed.filter((c) => hasLimits(limitsOf(c.t))).slice(0, MAX_LEDGER_READS);
  const ledgers = new Map(
    await Promise.all(
      toRead.map(async (c) => {
        const stats = await env.LEDGER.getByName(c.t.id).stats(limitsOf(c.t)).catch(() => null);
        return [c.t.id, stats] as const;
      }),
    ),
  );
  const limitedTotal = candidates.filter((c) => hasLimits(limitsOf(c.t))).length;
  return {
    object: "stats",
    generated_at: iso(now),
    pools: views.map((v) => poolJson(v, now)),
    tenants: listed.map((c) => {
      const ledger = ledgers.get(c.t.id);
      return {
        ...tenantHead(c.t),
        usage: { today: countsJson(c.usage.today), month: countsJson(c.usage.month) },
        limit_state: ledger ? limitStateJson(limitsOf(c.t), ledger.state) : null,
        rejections: { limits: ledger ? limitRejectionsJson(ledger.rejections) : null, pools: c.pools.pool_refusals },
        inflight: c.pools.inflight,
        waiting: c.pools.waiting,
        served: c.pools.served,
        pools: c.pools.pools,
      };
    }),
    tenants_total: rows.length,
    tenants_truncated: rows.length > listed.length,
    ledger_reads_truncated: limitedTotal > toRead.length && toRead.length === MAX_LEDGER_READS,
  };
}

async function tenantStats(env: Env, tenantId: string, now: number) {
  const db = openDb(env.DB);
  const t = (await db.select().from(tenants).where(eq(tenants.id, tenantId)).limit(1))[0];
  if (!t) throw new ApiError(404, `Tenant '${tenantId}' does not exist.`, { param: "tenant", code: "tenant_not_found" });
  const ledger = env.LEDGER.getByName(t.id);
  const month = periodStart("month", now);
  const day = periodStart("day", now);
  const [views, ledgerStats, rows] = await Promise.all([poolViews(env, db), ledger.stats(limitsOf(t)), ledger.usage(month, Math.floor(now / HOUR_MS) * HOUR_MS + HOUR_MS)]);
  const today = zeroCounts();
  const monthTotals = zeroCounts();
  const byModel = new Map<string, UsageCounts>();
  for (const r of rows) {
    addTotals(monthTotals, r);
    if (r.hour >= day) addTotals(today, r);
    byModel.set(r.model, addTotals(byModel.get(r.model) ?? zeroCounts(), r));
  }
  const pools = tenantPools(views, t.id);
  return {
    object: "tenant.stats",
    generated_at: iso(now),
    ...tenantHead(t),
    usage: {
      today: countsJson(today),
      month: countsJson(monthTotals),
      month_by_model: [...byModel.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([model, c]) => ({ model, ...countsJson(c) })),
    },
    limit_state: limitStateJson(limitsOf(t), ledgerStats.state),
    rejections: { limits: limitRejectionsJson(ledgerStats.rejections), pools: pools.pool_refusals },
    inflight: pools.inflight,
    waiting: pools.waiting,
    served: pools.served,
    pools: pools.pools,
  };
}

/** Statistics carry tenant data: never cached by a browser or a proxy. */
function noStore<T>(c: Context<AppEnv>, body: T) {
  c.header("cache-control", "no-store");
  return c.json(body);
}

export const statsRoutes = new Hono<AppEnv>()
  .get("/stats", async (c) => noStore(c, await summary(c.env, Date.now())))
  .get("/stats/pools/:pool", async (c) => {
    const name = c.req.param("pool");
    const now = Date.now();
    const views = await poolViews(c.env, openDb(c.env.DB), name);
    const view = views[0];
    if (!view) throw new ApiError(404, `No configured model routes to the pool '${name}'.`, { param: "pool", code: "pool_not_found" });
    return noStore(c, { object: "pool.stats", generated_at: iso(now), ...poolJson(view, now) });
  })
  .get("/stats/tenants/:id", async (c) => noStore(c, await tenantStats(c.env, c.req.param("id"), Date.now())));
