/**
 * The emulator's tokenizer against the reference Llama-3 tokenizer (llama3-tokenizer-js): counts
 * within 10% per kind of text, prefix stability (what prefix caching needs), special tokens, and the
 * output generator's ids re-tokenizing to themselves.
 */
import { describe, expect, it } from "vitest";
import llama3Tokenizer from "llama3-tokenizer-js";
import { BOS_TOKEN, EOT_TOKEN, simTokenizer } from "../../../dataplane/engines/sim/tokenizer";
import { renderChatTemplate } from "../../../dataplane/engines/sim/prompt";
import { OutputTextGenerator } from "../../../dataplane/engines/sim/text-generator";
import type { ChatMessage } from "../../../protocol/openai-request";
import { chatMessages, code, numbers, prose } from "./fixtures/text-samples";

const reference = (text: string) => llama3Tokenizer.encode(text, { bos: false, eos: false }).length;

function ratio(texts: readonly string[]): number {
  let ref = 0;
  let sim = 0;
  for (const t of texts) {
    ref += reference(t);
    sim += simTokenizer.count(t);
  }
  return sim / ref;
}

const chatPrompts = chatMessages.map((messages) => renderChatTemplate(messages as unknown as ChatMessage[]));

describe("token counts against Llama-3", () => {
  it.each([
    { name: "English prose", texts: prose },
    { name: "code", texts: code },
    { name: "numbers and tables", texts: numbers },
    { name: "chat prompts (Llama-3 template)", texts: chatPrompts },
  ])("$name: aggregate within ±10%", ({ name, texts }) => {
    const r = ratio(texts);
    console.log(`${name}: sim/reference = ${r.toFixed(3)}`);
    expect(r).toBeGreaterThan(0.9);
    expect(r).toBeLessThan(1.1);
  });

  it("all samples together within ±5%", () => {
    const r = ratio([...prose, ...code, ...numbers, ...chatPrompts]);
    expect(Math.abs(r - 1)).toBeLessThan(0.05);
  });

  it("counts exactly what Llama-3 counts for numbers, whitespace and short words", () => {
    for (const t of ["1234567", " the cat sat on the mat", "a  b\n\n  c", "x = 42;\n"]) expect(simTokenizer.count(t)).toBe(reference(t));
  });
});

describe("prefix stability", () => {
  const text = [...prose, ...code].join("\n\n");
  const full = simTokenizer.encode(text);

  it("a prefix cut at a pre-token boundary tokenizes to a prefix of the whole", () => {
    // Boundaries: before a space-led word, after a newline run, before a number group.
    for (const cut of [text.indexOf(" supply"), text.indexOf("Economists"), text.indexOf("import"), text.indexOf("def merge"), text.indexOf(" 500")]) {
      expect(cut).toBeGreaterThan(0);
      const head = simTokenizer.encode(text.slice(0, cut));
      expect(full.slice(0, head.length)).toEqual(head);
    }
  });

  it("any prefix agrees with the whole except in its last pre-token", () => {
    for (let cut = 1; cut < text.length; cut += 97) {
      const head = simTokenizer.encode(text.slice(0, cut));
      let common = 0;
      while (common < head.length && head[common] === full[common]) common++;
      // Only the last pre-token may differ; it spans a few tokens at most.
      expect(head.length - common).toBeLessThanOrEqual(6);
    }
  });

  it("a shared system prompt gives a shared token prefix to every conversation", () => {
    const system = { role: "system" as const, content: "You are a careful assistant. Answer in British English." };
    const a = simTokenizer.encode(renderChatTemplate([system, { role: "user", content: "What is a cache?" }]));
    const b = simTokenizer.encode(renderChatTemplate([system, { role: "user", content: "Explain TCP slow start." }]));
    const systemPart = simTokenizer.encode(renderChatTemplate([system]).split("<|start_header_id|>assistant")[0]!);
    expect(a.slice(0, systemPart.length)).toEqual(systemPart);
    expect(b.slice(0, systemPart.length)).toEqual(systemPart);
  });
});

describe("special tokens and ids", () => {
  it("maps Llama-3 special tokens to their ids and ordinary pieces below 128000", () => {
    const ids = simTokenizer.encode(renderChatTemplate([{ role: "user", content: "Hi there" }]));
    expect(ids[0]).toBe(BOS_TOKEN);
    expect(ids).toContain(EOT_TOKEN);
    expect(ids).toContain(128006);
    expect(ids).toContain(128007);
    expect(simTokenizer.encode("Hello world!").every((id) => id >= 0 && id < 128000)).toBe(true);
    expect(simTokenizer.encode("Hello", { bos: true })[0]).toBe(BOS_TOKEN);
  });

  it("is deterministic and fast", () => {
    const text = [...prose, ...code, ...numbers].join("\n").repeat(40);
    expect(simTokenizer.encode(text)).toEqual(simTokenizer.encode(text));
    const t0 = performance.now();
    const n = simTokenizer.count(text);
    const ms = performance.now() - t0;
    console.log(`tokenizer: ${n} tokens of ${text.length} chars in ${ms.toFixed(1)} ms (${(text.length / 1e3 / ms).toFixed(1)} MB/s)`);
    expect(n).toBeGreaterThan(10_000);
  });
});

describe("output text generator", () => {
  it("generates ids that re-tokenize to themselves after a chat prompt", () => {
    const gen = new OutputTextGenerator(7, "chat");
    const ids: number[] = [];
    let text = "";
    for (let i = 0; i < 300; i++) {
      ids.push(gen.next());
      text += gen.text;
    }
    expect(text.length).toBeGreaterThan(300);
    expect(text).toMatch(/^[A-Z]/);
    expect(simTokenizer.encode(text)).toEqual(ids);
    // The next turn's prompt repeats the answer: its tokens follow the first prompt's.
    const first = [{ role: "user" as const, content: "Tell me something." }];
    const prompt1 = simTokenizer.encode(renderChatTemplate(first));
    const prompt2 = simTokenizer.encode(renderChatTemplate([...first, { role: "assistant", content: text }, { role: "user", content: "More." }]));
    const withAnswer = [...prompt1, ...ids, EOT_TOKEN];
    expect(prompt2.slice(0, withAnswer.length)).toEqual(withAnswer);
  });

  it("continues a completions prompt with a leading space", () => {
    const gen = new OutputTextGenerator(3, "completion");
    let text = "";
    const ids: number[] = [];
    for (let i = 0; i < 50; i++) {
      ids.push(gen.next());
      text += gen.text;
    }
    expect(text.startsWith(" ")).toBe(true);
    expect(simTokenizer.encode(`Once upon a time${text}`)).toEqual([...simTokenizer.encode("Once upon a time"), ...ids]);
  });
});
