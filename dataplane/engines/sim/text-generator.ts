/**
 * What the emulated model "says": a deterministic stream of English-looking words, token by token.
 * Every word is tokenized with the emulator's tokenizer once, so the ids generated are exactly the
 * ids the text re-tokenizes to: when a client sends the answer back in the next turn, the prompt
 * repeats the generated tokens and prefix caching hits them, as on a real engine.
 */
import { simTokenizer } from "./tokenizer";

const WORDS = (
  "the of and to in a is that for it as was with be by on not this are or from at which but have an had " +
  "they you were their one all we can has there been if more when will would who so no its out up into " +
  "than them some could time only other new about these also two may first then do any like my now over " +
  "such our man me even most made after many before must through back years where much your way well " +
  "down should because each just those people how too little state good very make world still own see " +
  "work long get here between both life being under never day same another know while last might us " +
  "great old year off come since against go came right used take three model system request cache token " +
  "engine memory latency router node value data prefix batch queue answer question result level number " +
  "simple small large clear early often always together however therefore important question general " +
  "different possible example process program service network storage performance distributed inference " +
  "throughput schedule capacity pressure eviction"
).split(" ");

/** Token ids and text pieces of all variants, flattened: variant v spans [start[v], start[v] + len[v]). */
interface Table {
  ids: Int32Array;
  texts: string[];
  start: Int32Array;
  len: Int32Array;
  /** Variant index of word w as: " word", " Word" (after a full stop), "Word" (very first). */
  spaced: number;
  capitalSpaced: number;
  capital: number;
  period: number;
  comma: number;
}

let table: Table | undefined;

function buildTable(): Table {
  const ids: number[] = [];
  const texts: string[] = [];
  const start: number[] = [];
  const len: number[] = [];
  const add = (text: string) => {
    const toks = simTokenizer.encode(text);
    start.push(ids.length);
    len.push(toks.length);
    // Split the text into as many pieces as tokens (the tokenizer splits a pre-token evenly).
    for (let p = 0; p < toks.length; p++) {
      ids.push(toks[p] as number);
      texts.push(text.slice(Math.round((text.length * p) / toks.length), Math.round((text.length * (p + 1)) / toks.length)));
    }
  };
  const cap = (w: string) => w.charAt(0).toUpperCase() + w.slice(1);
  for (const w of WORDS) add(` ${w}`);
  for (const w of WORDS) add(` ${cap(w)}`);
  for (const w of WORDS) add(cap(w));
  add(".");
  add(",");
  const n = WORDS.length;
  return {
    ids: Int32Array.from(ids),
    texts,
    start: Int32Array.from(start),
    len: Int32Array.from(len),
    spaced: 0,
    capitalSpaced: n,
    capital: 2 * n,
    period: 3 * n,
    comma: 3 * n + 1,
  };
}

/** mulberry32 step on a 32-bit state. */
export function nextRandom(state: number): number {
  return (state + 0x6d2b79f5) | 0;
}
export function randomOf(state: number): number {
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

export type TextStyle = "chat" | "completion";

/**
 * The output stream of one request. `next()` returns the next token id and leaves its text in
 * `text`; no allocation per token.
 */
export class OutputTextGenerator {
  /** Text of the token `next()` returned last. */
  text = "";
  private readonly t: Table;
  private state: number;
  private variant = -1;
  private piece = 0;
  private wordsLeft = 0;
  private first: boolean;

  constructor(seed: number, style: TextStyle = "chat") {
    this.t = table ??= buildTable();
    this.state = seed | 0;
    this.first = style === "chat";
    if (!this.first) this.wordsLeft = 4 + Math.floor(this.random() * 14);
  }

  private random(): number {
    this.state = nextRandom(this.state);
    return randomOf(this.state);
  }

  private pickVariant(): number {
    const t = this.t;
    const words = t.period / 3;
    if (this.first) {
      this.first = false;
      this.wordsLeft = 4 + Math.floor(this.random() * 14);
      return t.capital + Math.floor(this.random() * words);
    }
    if (this.wordsLeft === 0) {
      this.wordsLeft = -1;
      return t.period;
    }
    if (this.wordsLeft < 0) {
      this.wordsLeft = 4 + Math.floor(this.random() * 14);
      return t.capitalSpaced + Math.floor(this.random() * words);
    }
    this.wordsLeft--;
    if (this.wordsLeft > 2 && this.variant >= 0 && this.variant < t.period && this.random() < 0.06) {
      this.wordsLeft++;
      return t.comma;
    }
    // Zipf-like: common words first.
    const r = this.random();
    return t.spaced + Math.floor(r * r * words);
  }

  next(): number {
    const t = this.t;
    if (this.variant < 0 || this.piece >= (t.len[this.variant] as number)) {
      this.variant = this.pickVariant();
      this.piece = 0;
    }
    const at = (t.start[this.variant] as number) + this.piece++;
    this.text = t.texts[at] as string;
    return t.ids[at] as number;
  }
}
