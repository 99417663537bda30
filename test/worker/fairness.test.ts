/**
 * VTC's guarantee, tested on the production PoolCore: for any arrival pattern, two tenants that
 * stay backlogged over an interval receive weight-normalised service within 2·max(w_p·L, w_q·M)
 * of each other (L: largest prompt, M: most tokens a running batch holds — with one request at a
 * time, its prompt and output). A step simulation plays the engine: each
 * running request produces one token per step, reported as progress (VTC's per-token charging).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { headroomSlots, PoolCore } from "../../worker/pool/pool-core";
import { type AdmissionSettings, DEFAULT_VTC_HEADROOM, type RouteInput, type RouteResult } from "../../worker/pool/types";

/**
 * Requests a node with limit K may run at once: K, plus the headroom a tenant below its fair share
 * may use (worker/pool/types.ts). VTC's bound is in terms of what runs at once.
 */
const concurrent = (k: number) => k + headroomSlots(k, DEFAULT_VTC_HEADROOM);

interface Arrival {
  tenant: string;
  at: number;
  input: number;
  output: number;
}

interface SimOptions {
  slots: number;
  weights: Record<string, number>;
  arrivals: Arrival[];
  policy: "vtc" | "fcfs";
  wp?: number;
  wq?: number;
  steps: number;
  headroom?: number;
}

interface SimResult {
  /** Largest (max − min) of service(f)/w_f − service(g)/w_g over intervals both stay backlogged, per pair. */
  worstGap: number;
  service: Record<string, number>;
  backloggedSteps: Record<string, number>;
  /** Most requests running at once. */
  maxRunning: number;
  /** Steps each tenant's requests waited before admission, per request. */
  waits: Record<string, number[]>;
  /** The priority each admitted request was given, per tenant. */
  priorities: Record<string, string[]>;
}

function simulate(o: SimOptions): SimResult {
  const wp = o.wp ?? 1;
  const wq = o.wq ?? 2;
  let now = 0;
  const core = new PoolCore({ staleAfterMs: 1e12, now: () => now, random: () => 0.5 });
  core.heartbeat({
    nodeId: "n",
    region: "r",
    url: "u",
    drained: false,
    sentAt: 0,
    leaving: false,
    engines: [{ model: "m", engine: "sim", healthy: true, running: 0, waiting: 0, maxConcurrency: o.slots, kvUsage: 0, kvCapacityTokens: 1e9 }],
  });
  const admission: AdmissionSettings = { policy: o.policy, maxWaitMs: 1e12, nodeLimit: o.slots, predictOutput: false, inputWeight: wp, outputWeight: wq, ...(o.headroom !== undefined ? { headroom: o.headroom } : {}) };
  const tenants = Object.keys(o.weights);
  const service: Record<string, number> = Object.fromEntries(tenants.map((t) => [t, 0]));
  const backloggedSteps: Record<string, number> = Object.fromEntries(tenants.map((t) => [t, 0]));
  const running = new Map<string, { tenant: string; output: number; produced: number; input: number }>();
  const arrivals = [...o.arrivals].sort((a, b) => a.at - b.at);
  let next = 0;
  let seq = 0;
  // Per pair, the range of D = s_f/w_f − s_g/w_g over the current joint-backlog interval.
  const ranges = new Map<string, { min: number; max: number } | null>();
  let worstGap = 0;
  let maxRunning = 0;
  const waits: Record<string, number[]> = Object.fromEntries(tenants.map((t) => [t, []]));
  const priorities: Record<string, string[]> = Object.fromEntries(tenants.map((t) => [t, []]));

  const admit = (id: string, a: Arrival) => (r: RouteResult) => {
    if (!r.ok) throw new Error(`refused: ${r.reason}`);
    (waits[a.tenant] as number[]).push(now - a.at);
    (priorities[a.tenant] as string[]).push(r.priority);
    service[a.tenant] = (service[a.tenant] as number) + (wp * a.input) / (o.weights[a.tenant] as number);
    running.set(id, { tenant: a.tenant, output: a.output, produced: 0, input: a.input });
    maxRunning = Math.max(maxRunning, running.size);
  };

  for (now = 0; now < o.steps; now++) {
    while (next < arrivals.length && (arrivals[next] as Arrival).at <= now) {
      const a = arrivals[next++] as Arrival;
      const id = `q${seq++}`;
      const input: RouteInput = { requestId: id, tenantId: a.tenant, model: "m", strategies: [{ name: "least-request", weight: 1 }], admission, tenantWeight: o.weights[a.tenant] as number, prompt: { blocks: [], tokens: a.input, maxTokens: a.output } };
      core.submit(input, admit(id, a));
    }
    // Backlog is judged at the step boundary, before the engine runs.
    const waiting = core.snapshot("p").waiting;
    for (const t of tenants) if ((waiting[t] ?? 0) > 0) backloggedSteps[t] = (backloggedSteps[t] as number) + 1;
    for (let i = 0; i < tenants.length; i++) {
      for (let j = i + 1; j < tenants.length; j++) {
        const f = tenants[i] as string;
        const g = tenants[j] as string;
        const key = `${f}|${g}`;
        if ((waiting[f] ?? 0) > 0 && (waiting[g] ?? 0) > 0) {
          const d = (service[f] as number) - (service[g] as number);
          const r = ranges.get(key) ?? { min: d, max: d };
          r.min = Math.min(r.min, d);
          r.max = Math.max(r.max, d);
          ranges.set(key, r);
          worstGap = Math.max(worstGap, r.max - r.min);
        } else ranges.set(key, null);
      }
    }
    // One decode step: every running request produces a token.
    for (const [id, r] of [...running]) {
      r.produced++;
      service[r.tenant] = (service[r.tenant] as number) + wq / (o.weights[r.tenant] as number);
      core.progress(id, r.produced);
      if (r.produced >= r.output) {
        running.delete(id);
        core.release({ requestId: id, outcome: "completed", usage: { promptTokens: r.input, completionTokens: r.produced, cachedTokens: 0, estimated: false } });
      }
    }
  }
  return { worstGap, service, backloggedSteps, maxRunning, waits, priorities };
}

const arrivalsArb = (tenants: string[], maxInput: number, maxOutput: number) =>
  fc.array(
    fc.record({
      tenant: fc.constantFrom(...tenants),
      at: fc.integer({ min: 0, max: 400 }),
      input: fc.integer({ min: 1, max: maxInput }),
      output: fc.integer({ min: 1, max: maxOutput }),
      /** Bursts: a request is sometimes many. */
      copies: fc.integer({ min: 1, max: 12 }),
    }),
    { minLength: 5, maxLength: 60 },
  ).map((xs) => xs.flatMap((x) => Array.from({ length: x.copies }, () => ({ tenant: x.tenant, at: x.at, input: x.input, output: x.output }))));

describe("VTC fairness bound", () => {
  const L = 40;
  const M = 30;
  const wp = 1;
  const wq = 2;
  const U = Math.max(wp * L, wq * M);

  // VTC's theorem (peers.md §6) bounds the gap by 2·U, U = max(w_p·L, w_q·M_batch), with M_batch
  // the most tokens a running batch holds. With one slot and no headroom a batch is one request, and
  // the tests hold the scheduler to 2·(w_p·L + w_q·M), tighter than the theorem. With K slots plus
  // the headroom a tenant below its share may use, a batch is up to concurrent(K) requests of L + M
  // tokens. These properties once failed for unlucky samples (gaps up to 1.6× the bound, even
  // without headroom): a tenant below its share of slots was admitted into an ordinary slot ahead
  // of a smaller counter. Ordinary slots now go strictly in counter order and only the headroom
  // follows slot shares; 15,000 explored patterns per setting stay below 0.5× (no headroom) and
  // 0.8× (default headroom) of the bound.
  const request = wp * L + wq * M;
  const batchBound = (k: number, running = concurrent(k)) => 2 * Math.max(wp * L, wq * running * (L + M));
  let worstOneSlot = 0;

  it("one request at a time: two backlogged tenants stay within 2·(w_p·L + w_q·M), for any arrival pattern", () => {
    fc.assert(
      fc.property(arrivalsArb(["a", "b", "c"], L, M), (arrivals) => {
        // No headroom: exactly one request runs at a time.
        const r = simulate({ slots: 1, weights: { a: 1, b: 1, c: 1 }, arrivals, policy: "vtc", wp, wq, steps: 1_500, headroom: 0 });
        worstOneSlot = Math.max(worstOneSlot, r.worstGap);
        expect(r.worstGap).toBeLessThanOrEqual(2 * request);
      }),
      { numRuns: 200 },
    );
    // For the record: the output-only form 2·max(w_p·L, w_q·M) does not hold for slot admission (the
    // search finds gaps up to ~1.5× it); the theorem's own M (a batch's prompt and output tokens)
    // gives 2·w_q·(L + M), above what we test.
    console.log(`VTC bound, one slot: worst gap found ${worstOneSlot}; 2·(w_p·L + w_q·M) = ${2 * request}; theorem with M = batch tokens: ${2 * Math.max(wp * L, wq * (L + M))}`);
  });

  it("K at a time: within the theorem's 2·max(w_p·L, w_q·M_batch), for any arrival pattern (the batch counting the headroom)", () => {
    fc.assert(
      fc.property(arrivalsArb(["a", "b", "c"], L, M), fc.integer({ min: 2, max: 6 }), (arrivals, slots) => {
        const r = simulate({ slots, weights: { a: 1, b: 1, c: 1 }, arrivals, policy: "vtc", wp, wq, steps: 1_500 });
        expect(r.maxRunning).toBeLessThanOrEqual(concurrent(slots));
        expect(r.worstGap).toBeLessThanOrEqual(batchBound(slots));
      }),
      { numRuns: 150 },
    );
  });

  it("K at a time without headroom: strict VTC, within 2·max(w_p·L, w_q·K·(L + M)), for any arrival pattern", () => {
    fc.assert(
      fc.property(arrivalsArb(["a", "b", "c"], L, M), fc.integer({ min: 2, max: 6 }), (arrivals, slots) => {
        const r = simulate({ slots, weights: { a: 1, b: 1, c: 1 }, arrivals, policy: "vtc", wp, wq, steps: 1_500, headroom: 0 });
        expect(r.maxRunning).toBeLessThanOrEqual(slots);
        expect(r.worstGap).toBeLessThanOrEqual(batchBound(slots, slots));
      }),
      { numRuns: 150 },
    );
  });

  it("holds with weights, in weight-normalised service", () => {
    fc.assert(
      fc.property(arrivalsArb(["a", "b"], L, M), fc.integer({ min: 1, max: 6 }), fc.constantFrom(2, 3, 4), (arrivals, slots, w) => {
        const r = simulate({ slots, weights: { a: w, b: 1 }, arrivals, policy: "vtc", wp, wq, steps: 1_500 });
        expect(r.worstGap).toBeLessThanOrEqual(batchBound(slots));
      }),
      { numRuns: 100 },
    );
  });

  it("honours weights in proportion when both tenants stay backlogged", () => {
    const arrivals: Arrival[] = [];
    for (let i = 0; i < 600; i++) {
      arrivals.push({ tenant: "gold", at: 0, input: 20, output: 20 });
      arrivals.push({ tenant: "basic", at: 0, input: 20, output: 20 });
    }
    const r = simulate({ slots: 4, weights: { gold: 3, basic: 1 }, arrivals, policy: "vtc", steps: 2_000 });
    // Raw service ratio ≈ 3: both stayed backlogged throughout.
    const raw = { gold: (r.service.gold as number) * 3, basic: r.service.basic as number };
    expect(raw.gold / raw.basic).toBeGreaterThan(2.7);
    expect(raw.gold / raw.basic).toBeLessThan(3.3);
  });

  it("first come, first served has no such bound: a flood starves a light tenant", () => {
    const arrivals: Arrival[] = [];
    for (let i = 0; i < 200; i++) arrivals.push({ tenant: "flood", at: 0, input: 40, output: 30 });
    for (let i = 0; i < 20; i++) arrivals.push({ tenant: "light", at: 1, input: 40, output: 30 });
    const fcfs = simulate({ slots: 2, weights: { flood: 1, light: 1 }, arrivals, policy: "fcfs", steps: 1_000 });
    const vtc = simulate({ slots: 2, weights: { flood: 1, light: 1 }, arrivals, policy: "vtc", steps: 1_000 });
    expect(fcfs.worstGap).toBeGreaterThan(batchBound(2));
    expect(vtc.worstGap).toBeLessThanOrEqual(batchBound(2));
  });

  it("admits a tenant below its fair share at once, over the limit by at most the headroom, while a flood waits", () => {
    const arrivals: Arrival[] = [];
    for (let i = 0; i < 400; i++) arrivals.push({ tenant: "flood", at: 0, input: 10, output: 20 });
    // A light tenant sends one request every 25 steps: far below half of the 10 slots.
    for (let t = 30; t < 900; t += 25) arrivals.push({ tenant: "light", at: t, input: 10, output: 20 });
    const r = simulate({ slots: 10, weights: { flood: 1, light: 1 }, arrivals, policy: "vtc", steps: 1_000, headroom: 0.2 });
    expect(r.maxRunning).toBeLessThanOrEqual(12);
    expect(Math.max(...(r.waits.light as number[]))).toBe(0);
    // While the flood waits (its 400 requests drain by about step 800), the light tenant's requests
    // go to the engines as high priority and the flood's as normal; once nothing waits, nobody is.
    expect(r.priorities.light?.slice(0, 25).every((p) => p === "high")).toBe(true);
    expect(r.priorities.light?.slice(-2).every((p) => p === "normal")).toBe(true);
    expect(r.priorities.flood?.slice(0, 10).every((p) => p === "normal")).toBe(true);
    expect(r.priorities.flood?.filter((p) => p === "high")).toEqual([]);
    // Without headroom the light tenant waits for slots to free, behind flood requests of equal counter.
    const strict = simulate({ slots: 10, weights: { flood: 1, light: 1 }, arrivals, policy: "vtc", steps: 1_000, headroom: 0 });
    expect(strict.maxRunning).toBe(10);
    expect(Math.max(...(strict.waits.light as number[]))).toBeGreaterThan(0);
  });

  it("lifts a tenant returning from idle to the smallest backlogged counter, so idle time banks nothing", () => {
    const arrivals: Arrival[] = [];
    for (let i = 0; i < 300; i++) arrivals.push({ tenant: "busy", at: 0, input: 10, output: 10 });
    for (let i = 0; i < 300; i++) arrivals.push({ tenant: "late", at: 500, input: 10, output: 10 });
    const r = simulate({ slots: 1, weights: { busy: 1, late: 1 }, arrivals, policy: "vtc", steps: 1_200, headroom: 0 });
    // Without the lift, "late" would monopolise the node until its counter caught up with 500 steps.
    expect(r.worstGap).toBeLessThanOrEqual(2 * (wp * 10 + wq * 10));
  });
});
