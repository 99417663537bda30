/**
 * The Prometheus text reader: enough of the exposition format to read engine gauges, and never
 * fatal on what it does not understand.
 */
import { describe, expect, it } from "vitest";
import { firstOf, parsePrometheusText, sumOf } from "../../../dataplane/engines/openai/prometheus-text";

describe("parsePrometheusText", () => {
  it("reads names, labels and values; skips comments and blank lines", () => {
    const text = [
      "# HELP vllm:num_requests_running Number of requests in model execution batches.",
      "# TYPE vllm:num_requests_running gauge",
      'vllm:num_requests_running{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 3.0',
      "",
      "   ",
      "plain_metric 42",
      "with_timestamp 7 1700000000000",
      'spaced{a="1"}   5.5   ',
      "crlf_line 1\r",
    ].join("\n");
    expect(parsePrometheusText(text)).toEqual([
      { name: "vllm:num_requests_running", labels: { engine: "0", model_name: "meta-llama/Llama-3.1-8B-Instruct" }, value: 3 },
      { name: "plain_metric", labels: {}, value: 42 },
      { name: "with_timestamp", labels: {}, value: 7 },
      { name: "spaced", labels: { a: "1" }, value: 5.5 },
      { name: "crlf_line", labels: {}, value: 1 },
    ]);
  });

  it("unescapes label values (\\\\, \\\", \\n) and keeps braces, commas and spaces inside them", () => {
    const [s] = parsePrometheusText('m{path="C:\\\\dir",quote="say \\"hi\\"",nl="a\\nb",odd="x} 1, y=\\"2\\""} 9');
    expect(s).toEqual({ name: "m", labels: { path: "C:\\dir", quote: 'say "hi"', nl: "a\nb", odd: 'x} 1, y="2"' }, value: 9 });
  });

  it("reads +Inf/-Inf, exponents and a trailing comma in labels; {} means no labels", () => {
    const samples = parsePrometheusText(
      ['h_bucket{le="+Inf",} 12', "g +Inf", "n -Inf", "e 1.5e3", "z{} 0", 'q{quantile="0.5"} -0.25'].join("\n"),
    );
    expect(samples.map((s) => [s.name, s.labels, s.value])).toEqual([
      ["h_bucket", { le: "+Inf" }, 12],
      ["g", {}, Number.POSITIVE_INFINITY],
      ["n", {}, Number.NEGATIVE_INFINITY],
      ["e", {}, 1500],
      ["z", {}, 0],
      ["q", { quantile: "0.5" }, -0.25],
    ]);
  });

  it("skips malformed lines and keeps the good ones around them", () => {
    const text = [
      "good_a 1",
      "no_value",
      "bad_value abc",
      "nan_value NaN",
      'unterminated{a="x} 1',
      "unclosed{a=\"x\" 1",
      'unquoted{a=x} 1',
      "1starts_with_digit 1",
      "bad-name 1",
      "too many fields here",
      "good_b 2",
    ].join("\n");
    expect(parsePrometheusText(text)).toEqual([
      { name: "good_a", labels: {}, value: 1 },
      { name: "good_b", labels: {}, value: 2 },
    ]);
  });

  it("parses an empty body to nothing", () => {
    expect(parsePrometheusText("")).toEqual([]);
    expect(parsePrometheusText("# only a comment\n")).toEqual([]);
  });
});

describe("sumOf / firstOf", () => {
  const samples = parsePrometheusText(
    [
      'reqs{engine="0",model_name="a"} 2',
      'reqs{engine="1",model_name="a"} 3',
      'reqs{engine="0",model_name="b"} 10',
      "other 1",
    ].join("\n"),
  );

  it("sums every sample of a name, or only those matching all given labels", () => {
    expect(sumOf(samples, "reqs")).toBe(15);
    expect(sumOf(samples, "reqs", { model_name: "a" })).toBe(5);
    expect(sumOf(samples, "reqs", { model_name: "a", engine: "1" })).toBe(3);
    expect(sumOf(samples, "reqs", { engine: "0" })).toBe(12);
  });

  it("is undefined when nothing matches (absent is not zero)", () => {
    expect(sumOf(samples, "missing")).toBeUndefined();
    expect(sumOf(samples, "reqs", { model_name: "c" })).toBeUndefined();
    expect(sumOf(samples, "reqs", { nosuchlabel: "x" })).toBeUndefined();
    expect(sumOf(parsePrometheusText("zero 0"), "zero")).toBe(0);
  });

  it("firstOf returns the first sample of a name", () => {
    expect(firstOf(samples, "reqs")?.labels).toEqual({ engine: "0", model_name: "a" });
    expect(firstOf(samples, "missing")).toBeUndefined();
  });
});
