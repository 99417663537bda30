/**
 * The cost model reproduces the H100 calibration (measured, H100, Llama-3-8B shapes) within 10%,
 * extrapolates sanely, and combines prefill and decode in one step by the fused-forward rule.
 */
import { describe, expect, it } from "vitest";
import { h100Llama3Calibration } from "../../../dataplane/engines/sim/calibration";
import { CostModel, PiecewiseLinear } from "../../../dataplane/engines/sim/cost-model";

const calibration = h100Llama3Calibration();
const model = new CostModel(calibration);
const within = (actual: number, expected: number, tolerance = 0.1) => Math.abs(actual / expected - 1) <= tolerance;

describe("CostModel reproduces the calibration", () => {
  it("prefill, 128..8192 tokens, within 10%", () => {
    for (const p of calibration.prefill) expect(within(model.prefillMs(p.tokens), p.ms), `${p.tokens} tokens: ${model.prefillMs(p.tokens)} vs ${p.ms}`).toBe(true);
  });

  it("prefill over a cached prefix, the four measured points, within 10%", () => {
    for (const p of calibration.prefill_with_cached_prefix) {
      const ms = model.prefillMs(p.suffix, p.prefix);
      expect(within(ms, p.ms), `${p.prefix}+${p.suffix}: ${ms} vs ${p.ms}`).toBe(true);
    }
  });

  it("decode steps at every measured batch size and context within 10%", () => {
    for (const d of calibration.decode_step) {
      const ms = model.decodeStepMs(d.batch, d.batch * d.ctx);
      expect(within(ms, d.step_ms), `B=${d.batch} ctx=${d.ctx}: ${ms} vs ${d.step_ms}`).toBe(true);
    }
  });

  it("KV transfer: 4096 tokens host→GPU ≈ 9.85 ms (≈54 GB/s)", () => {
    expect(within(model.h2dMs(4096 * 131072), 9.85, 0.02)).toBe(true);
    expect(model.h2dMs(0)).toBe(0);
  });

  it("fits physically sensible coefficients", () => {
    // KV read per context token ≈ 128 KiB at ~3 TB/s ≈ 42 ns.
    expect(model.fit.decodeKvMsPerToken * 1e6).toBeGreaterThan(30);
    expect(model.fit.decodeKvMsPerToken * 1e6).toBeLessThan(60);
    expect(model.fit.prefillAttentionMsPerPair).toBeGreaterThan(0);
  });
});

describe("extrapolation and composition", () => {
  it("is monotone and continues past the measured range", () => {
    let last = 0;
    for (let n = 1; n <= 32768; n *= 2) {
      const ms = model.prefillMs(n);
      expect(ms).toBeGreaterThanOrEqual(last);
      last = ms;
    }
    // Beyond 8192 prefill keeps ≈ 30k tokens/s and grows a little faster than linear (attention).
    expect(model.prefillMs(16384) / model.prefillMs(8192)).toBeGreaterThan(2);
    expect(model.prefillMs(16384) / model.prefillMs(8192)).toBeLessThan(2.4);
    expect(model.decodeStepMs(256, 256 * 2048)).toBeGreaterThan(model.decodeStepMs(128, 128 * 2048));
  });

  it("a one-token prefill costs a decode step; a cached prefix makes prefill cheap", () => {
    expect(within(model.prefillMs(1), model.decodeStepMs(1, 1), 0.01)).toBe(true);
    expect(model.prefillMs(128, 4096)).toBeLessThan(model.prefillMs(4096 + 128) / 3);
  });

  it("a mixed step costs about the prefill plus the decodes' KV reads (fused forward), not the sum of two steps", () => {
    const prefill = model.prefillMs(512);
    const decode = model.decodeStepMs(32, 32 * 2048);
    const mixed = model.stepMs(512 + 32, 1, model.prefillSequenceMs(512, 0), 32, 32 * 2048);
    expect(mixed).toBeGreaterThan(Math.max(prefill, decode));
    expect(mixed).toBeLessThan(prefill + decode);
    expect(within(mixed, prefill + model.fit.decodeKvMsPerToken * 32 * 2048, 0.05)).toBe(true);
  });

  it("chunked prefill of a long prompt costs about the same as one pass", () => {
    const whole = model.prefillMs(16384);
    const chunked = model.prefillMs(8192) + model.prefillMs(8192, 8192);
    expect(within(chunked, whole, 0.1)).toBe(true);
  });
});

describe("PiecewiseLinear", () => {
  it("interpolates, clamps below and extrapolates with the last slope", () => {
    const f = new PiecewiseLinear([
      [10, 1],
      [20, 3],
      [40, 4],
    ]);
    expect(f.at(0)).toBe(1);
    expect(f.at(15)).toBe(2);
    expect(f.at(30)).toBe(3.5);
    expect(f.at(60)).toBe(5);
  });
});
