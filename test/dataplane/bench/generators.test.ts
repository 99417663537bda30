/**
 * Generators are reproducible from a seed and match the distributions asked for: length
 * distributions (normal, lognormal by mean/sd and by median/sigma, uniform), arrival processes
 * (constant spacing, Poisson inter-arrival mean and CV, bursty phases, ramps, diurnal swings), tenant
 * rates, datasets of exact token lengths, sessions.
 */
import { describe, expect, it } from "vitest";
import { toEntry } from "../../../bench/datasets/format";
import { generateMultiTurn } from "../../../bench/datasets/multi-turn";
import { generateSharedPrefix } from "../../../bench/datasets/shared-prefix";
import { countTokens, promptText } from "../../../bench/datasets/text";
import { meanOf, parseDistribution, sampleInt, sample } from "../../../bench/lib/distribution";
import { Rng } from "../../../bench/lib/rng";
import { mean, stddev } from "../../../bench/lib/stats";
import { arrivals, meanRate } from "../../../bench/workloads/arrivals";
import { buildWorkload, tenantScales } from "../../../bench/workloads/build";

function gaps(times: number[]): number[] {
  return times.slice(1).map((t, i) => t - (times[i] as number));
}

describe("random streams", () => {
  it("repeat from a seed, differ across seeds, and forks are independent of draw order", () => {
    const a = new Rng(7);
    const b = new Rng(7);
    const xs = Array.from({ length: 5 }, () => a.next());
    expect(Array.from({ length: 5 }, () => b.next())).toEqual(xs);
    expect(new Rng(8).next()).not.toBe(xs[0]);
    const c = new Rng(7);
    c.next();
    expect(c.fork("t").next()).toBe(new Rng(7).fork("t").next());
    expect(new Rng("seed-text").next()).toBe(new Rng("seed-text").next());
  });
});

describe("length distributions", () => {
  const N = 40_000;
  const draw = (text: string, seed = 1) => {
    const d = parseDistribution(text);
    const rng = new Rng(seed);
    return Array.from({ length: N }, () => sample(d, rng, 0));
  };

  it("normal: mean and standard deviation", () => {
    const xs = draw("normal:1024,128");
    expect(mean(xs)).toBeCloseTo(1024, -1);
    expect(Math.abs(stddev(xs) - 128) / 128).toBeLessThan(0.03);
  });

  it("lognormal by mean and sd: the lengths have that mean and sd, their logs are normal", () => {
    const xs = draw("lognormal:1000,500");
    expect(Math.abs(mean(xs) - 1000) / 1000).toBeLessThan(0.02);
    expect(Math.abs(stddev(xs) - 500) / 500).toBeLessThan(0.06);
    const logs = xs.map(Math.log);
    const sigma = Math.sqrt(Math.log(1 + 0.25));
    expect(Math.abs(stddev(logs) - sigma) / sigma).toBeLessThan(0.03);
    // Normal logs: about 68 % within one sigma of their mean.
    const m = mean(logs);
    const within = logs.filter((l) => Math.abs(l - m) < sigma).length / N;
    expect(within).toBeGreaterThan(0.66);
    expect(within).toBeLessThan(0.70);
  });

  it("lognormal by median and sigma", () => {
    const xs = draw("lognormal:median=180,sigma=0.9").sort((a, b) => a - b);
    expect(Math.abs((xs[N / 2] as number) - 180) / 180).toBeLessThan(0.03);
  });

  it("uniform integers cover the whole range evenly; clamps hold", () => {
    const rng = new Rng(3);
    const d = parseDistribution("uniform:1,4");
    const counts = [0, 0, 0, 0, 0];
    for (let i = 0; i < N; i++) {
      const v = sampleInt(d, rng);
      counts[v] = (counts[v] ?? 0) + 1;
    }
    for (let v = 1; v <= 4; v++) expect(Math.abs((counts[v] as number) / N - 0.25)).toBeLessThan(0.02);
    const clamped = draw("normal:100,300,min=50,max=120");
    expect(Math.min(...clamped)).toBeGreaterThanOrEqual(50);
    expect(Math.max(...clamped)).toBeLessThanOrEqual(120);
    expect(sampleInt(parseDistribution("normal:1,50"), new Rng(1))).toBeGreaterThanOrEqual(1);
  });

  it("exponential mean; fixed; mean of each kind", () => {
    expect(Math.abs(mean(draw("exponential:2000")) - 2000) / 2000).toBeLessThan(0.03);
    expect(draw("fixed:64").every((x) => x === 64)).toBe(true);
    expect(meanOf(parseDistribution("lognormal:300,100"))).toBeCloseTo(300, 6);
    expect(meanOf(parseDistribution("uniform:2,4"))).toBe(3);
  });

  it("rejects malformed specs with a message saying what is wrong", () => {
    expect(() => parseDistribution("normal:1024")).toThrow(/normal needs sd/);
    expect(() => parseDistribution("gauss:1,2")).toThrow(/unknown distribution 'gauss'/);
    expect(() => parseDistribution("uniform:5,1")).toThrow(/low ≤ high/);
    expect(() => parseDistribution("normal:a,1")).toThrow(/must be a number/);
    expect(() => parseDistribution("normal:1,2,foo=3")).toThrow(/unknown parameter 'foo'/);
  });
});

describe("arrival processes", () => {
  it("Poisson: inter-arrival mean 1/rate and coefficient of variation ≈ 1; reproducible", () => {
    const times = arrivals({ kind: "poisson", rate: 20 }, 600_000, new Rng(11));
    const g = gaps(times);
    expect(Math.abs(mean(g) - 50) / 50).toBeLessThan(0.03);
    expect(Math.abs(stddev(g) / mean(g) - 1)).toBeLessThan(0.04);
    expect(Math.abs(times.length - 12_000) / 12_000).toBeLessThan(0.03);
    expect(arrivals({ kind: "poisson", rate: 20 }, 10_000, new Rng(11))).toEqual(times.filter((t) => t < 10_000));
  });

  it("constant: evenly spaced at 1/rate (CV 0)", () => {
    const g = gaps(arrivals({ kind: "constant", rate: 4 }, 10_000, new Rng(1)));
    expect(g.every((x) => Math.abs(x - 250) < 1e-9)).toBe(true);
  });

  it("bursty: the on-rate during bursts and the off-rate between them", () => {
    const p = { kind: "bursty" as const, rate: 40, offRate: 2, onMs: 1000, offMs: 4000 };
    const times = arrivals(p, 500_000, new Rng(5));
    const on = times.filter((t) => t % 5000 < 1000).length;
    const off = times.length - on;
    expect(Math.abs(on / 100 - 40) / 40).toBeLessThan(0.05); // 100 s of bursts
    expect(Math.abs(off / 400 - 2) / 2).toBeLessThan(0.1); // 400 s of pauses
    expect(meanRate(p, 500_000)).toBeCloseTo((40 + 4 * 2) / 5, 1);
  });

  it("ramp: the rate grows linearly from → to", () => {
    const times = arrivals({ kind: "ramp", from: 2, to: 18 }, 400_000, new Rng(9));
    const firstQuarter = times.filter((t) => t < 100_000).length / 100; // mean rate 4
    const lastQuarter = times.filter((t) => t >= 300_000).length / 100; // mean rate 16
    expect(Math.abs(firstQuarter - 4) / 4).toBeLessThan(0.08);
    expect(Math.abs(lastQuarter - 16) / 16).toBeLessThan(0.05);
    expect(Math.abs(times.length / 400 - 10) / 10).toBeLessThan(0.03);
  });

  it("diurnal: peaks and troughs of mean·(1 ± amplitude)", () => {
    const p = { kind: "diurnal" as const, rate: 10, amplitude: 0.8, periodMs: 100_000 };
    const times = arrivals(p, 2_000_000, new Rng(2));
    // Around the peak (phase π/2) and the trough (3π/2), ±5 % of a period.
    const near = (center: number) => times.filter((t) => Math.abs((t % 100_000) - center) < 5_000).length / (20 * 10);
    expect(near(25_000)).toBeGreaterThan(16);
    expect(near(75_000)).toBeLessThan(3.5);
    expect(Math.abs(times.length / 2000 - 10) / 10).toBeLessThan(0.03);
  });

  it("tenants: their own rate, or a weighted share of the pattern", () => {
    const scales = tenantScales([{ id: "heavy", rate: 20 }, { id: "a", weight: 1 }, { id: "b", weight: 3 }], { kind: "poisson", rate: 4 }, 60_000);
    expect(scales).toEqual([5, 0.25, 0.75]);
  });
});

describe("datasets", () => {
  it("prompt text has exactly the requested number of tokens", () => {
    const rng = new Rng(4);
    for (const n of [1, 2, 7, 64, 333, 1024, 4097]) expect(countTokens(promptText(n, rng))).toBe(n);
    const prefix = promptText(500, rng);
    const suffix = promptText(40, rng, { leadingSpace: true, question: true });
    expect(countTokens(prefix + suffix)).toBe(540);
    expect(prefix).toMatch(/^[A-Z][a-z]+ /);
    expect(suffix.trimEnd()).toMatch(/\?$/);
  });

  it("shared-prefix: reproducible, groups share their prefix, lengths as declared", () => {
    const opts = { groups: 3, promptsPerGroup: 4, prefixLength: parseDistribution("normal:400,40"), suffixLength: parseDistribution("lognormal:60,20"), outputLength: parseDistribution("32"), seed: 5 };
    const a = generateSharedPrefix(opts);
    expect(generateSharedPrefix(opts)).toEqual(a);
    expect(generateSharedPrefix({ ...opts, seed: 6 })[0]?.prompt).not.toBe(a[0]?.prompt);
    expect(a).toHaveLength(12);
    for (const r of a) {
      expect(countTokens(r.prompt as string)).toBe(r.prompt_length);
      expect(r.output_length).toBe(32);
    }
    for (let g = 0; g < 3; g++) {
      const members = a.filter((r) => r.prefix_group === g);
      const len = members[0]?.shared_prefix_length as number;
      const prefixes = new Set(members.map((r) => (r.prompt as string).slice(0, 200)));
      expect(prefixes.size).toBe(1);
      expect(new Set(members.map((r) => r.prompt)).size).toBe(4);
      expect(len).toBeGreaterThan(300);
    }
    expect(new Set(a.map((r) => (r.prompt as string).slice(0, 200))).size).toBe(3);
    const shuffled = generateSharedPrefix({ ...opts, randomizeOrder: true });
    expect(shuffled.map((r) => r.prefix_group)).not.toEqual(a.map((r) => r.prefix_group));
  });

  it("multi-turn: sessions with the requested turn counts, lengths and think times", () => {
    const sessions = generateMultiTurn({ sessions: 400, turns: parseDistribution("uniform:1,5"), promptLength: parseDistribution("lognormal:100,40"), outputLength: parseDistribution("64"), thinkTimeMs: parseDistribution("exponential:3000"), sharedPrefixLength: 50, seed: 2 });
    expect(generateMultiTurn({ sessions: 3, turns: parseDistribution("3"), promptLength: parseDistribution("20"), outputLength: parseDistribution("8"), thinkTimeMs: parseDistribution("0"), seed: 9 })).toEqual(
      generateMultiTurn({ sessions: 3, turns: parseDistribution("3"), promptLength: parseDistribution("20"), outputLength: parseDistribution("8"), thinkTimeMs: parseDistribution("0"), seed: 9 }),
    );
    const turns = sessions.map((s) => s.prompts.length);
    expect(Math.abs(mean(turns) - 3) / 3).toBeLessThan(0.05);
    const thinks = sessions.flatMap((s) => (s.think_time_ms ?? []).slice(1));
    expect(Math.abs(mean(thinks) - 3000) / 3000).toBeLessThan(0.1);
    expect(sessions.every((s) => s.think_time_ms?.[0] === 0)).toBe(true);
    for (const s of sessions.slice(0, 20)) s.prompts.forEach((p, i) => expect(countTokens(p)).toBe(s.prompt_lengths?.[i]));
    // The shared system prompt opens every first turn.
    expect(new Set(sessions.map((s) => s.prompts[0]?.slice(0, 100))).size).toBe(1);
  });
});

describe("workloads", () => {
  const dataset = generateSharedPrefix({ groups: 2, promptsPerGroup: 5, prefixLength: parseDistribution("50"), suffixLength: parseDistribution("10"), outputLength: parseDistribution("16"), seed: 1 }).map((r, i) => toEntry(r, "d", i + 1));

  it("multi-tenant mix: each tenant at its rate, reproducible, other tenants unaffected by a new one", () => {
    const tenants = [
      { id: "heavy", rate: 10 },
      { id: "light", rate: 1 },
    ];
    const built = buildWorkload({ pattern: { kind: "poisson", rate: 11 }, durationMs: 200_000, seed: 3, tenants, datasets: new Map([["", dataset]]) });
    const reqs = built.entries.flatMap((e) => e.requests);
    const heavy = reqs.filter((r) => r.tenant === "heavy").length;
    const light = reqs.filter((r) => r.tenant === "light").length;
    expect(Math.abs(heavy / 200 - 10) / 10).toBeLessThan(0.05);
    expect(Math.abs(light / 200 - 1)).toBeLessThan(0.2);
    expect(built.header.tenants?.map((t) => t.id)).toEqual(["heavy", "light"]);
    expect(built.header.meta?.qps).toBe(11);
    const again = buildWorkload({ pattern: { kind: "poisson", rate: 11 }, durationMs: 200_000, seed: 3, tenants, datasets: new Map([["", dataset]]) });
    expect(again.entries).toEqual(built.entries);
    const withThird = buildWorkload({ pattern: { kind: "poisson", rate: 11 }, durationMs: 200_000, seed: 3, tenants: [...tenants, { id: "third", rate: 2 }], datasets: new Map([["", dataset]]) });
    const heavyTimes = (b: typeof built) => b.entries.filter((e) => e.requests.some((r) => r.tenant === "heavy")).map((e) => e.timestamp);
    expect(heavyTimes(withThird)).toEqual(heavyTimes(built));
  });

  it("sessions: turns in order with accumulated think time and a shared session id", () => {
    const sessions = [toEntry({ session_id: 9, prompts: ["a", "b", "c"], think_time_ms: [0, 1000, 2000], output_lengths: [5, 6, 7] }, "s", 1)];
    const built = buildWorkload({ pattern: { kind: "constant", rate: 1 }, durationMs: 1000, seed: 1, datasets: new Map([["", sessions]]) });
    const reqs = built.entries.flatMap((e) => e.requests.map((r) => ({ ...r, ts: e.timestamp })));
    expect(reqs.map((r) => [r.ts, r.turn, r.session_id, r.output_length, r.think_time_ms])).toEqual([
      [0, 0, 0, 5, undefined],
      [1000, 1, 0, 6, 1000],
      [3000, 2, 0, 7, 2000],
    ]);
  });
});
