/**
 * A deterministic stand-in for the Llama-3 tokenizer: same pre-tokenization as Llama-3/tiktoken
 * (contractions, letter runs with one leading non-letter, digits in groups of ≤3, punctuation runs,
 * whitespace), then a length-based guess of how many BPE pieces each pre-token becomes, each piece
 * mapped to a stable id in [0, 128000) by a fast hash. Counts track Llama-3's within a few percent on
 * English prose, code and numbers (test/dataplane/sim/tokenizer.test.ts measures it), and a text
 * prefix tokenizes to a prefix of the token list (up to the pre-token cut), so prefix caching on
 * text prefixes behaves as on a real engine. Llama-3 special tokens (`<|eot_id|>`, …) are recognised
 * in text and map to their real ids.
 *
 * @example
 * ```ts
 * const ids = simTokenizer.encode("Hello world!"); // 3 ids, like Llama-3 without BOS
 * ```
 */

/** Llama-3 vocabulary size (128000 BPE tokens + 256 special tokens). */
export const LLAMA3_VOCAB_SIZE = 128256;
/** Ordinary (non-special) token ids are in [0, ORDINARY_VOCAB_SIZE). */
export const ORDINARY_VOCAB_SIZE = 128000;

export const SPECIAL_TOKENS: Readonly<Record<string, number>> = {
  "<|begin_of_text|>": 128000,
  "<|end_of_text|>": 128001,
  "<|finetune_right_pad_id|>": 128004,
  "<|start_header_id|>": 128006,
  "<|end_header_id|>": 128007,
  "<|eom_id|>": 128008,
  "<|eot_id|>": 128009,
  "<|python_tag|>": 128010,
};
export const BOS_TOKEN = 128000;
/** End of turn: what an instruct model samples to stop. */
export const EOT_TOKEN = 128009;

// Character classes of the pre-tokenizer.
const UNKNOWN = 0;
const LETTER = 1;
const NUMBER = 2;
const SPACE = 3; // whitespace other than CR/LF
const NEWLINE = 4; // CR or LF
const OTHER = 5;

// Pre-token kinds (for the piece-count estimate).
const K_SPACE_WORD = 0; // " word"
const K_WORD = 1; // "word" (no leading character)
const K_PREFIXED_WORD = 2; // "(word", "_word", "\tword"
const K_NUMBER = 3;
const K_PUNCT = 4;
const K_WHITESPACE = 5;
const K_CONTRACTION = 6;

const classTable = new Uint8Array(65536);
const letterRe = /\p{L}/u;
const numberRe = /\p{N}/u;
const spaceRe = /\s/u;

function classifySlow(code: number): number {
  const ch = String.fromCharCode(code);
  if (code === 10 || code === 13) return NEWLINE;
  if (letterRe.test(ch)) return LETTER;
  if (numberRe.test(ch)) return NUMBER;
  if (spaceRe.test(ch)) return SPACE;
  return OTHER;
}
for (let c = 0; c < 128; c++) classTable[c] = classifySlow(c);

function cls(text: string, i: number): number {
  const code = text.charCodeAt(i);
  let k = classTable[code] as number;
  if (k === UNKNOWN) {
    // Surrogates: classify the code point (astral letters are rare; treat the pair as one char class).
    if (code >= 0xd800 && code <= 0xdfff) {
      const cp = text.codePointAt(code <= 0xdbff ? i : i - 1) ?? code;
      const s = String.fromCodePoint(cp);
      return letterRe.test(s) ? LETTER : numberRe.test(s) ? NUMBER : OTHER;
    }
    k = classifySlow(code);
    classTable[code] = k;
  }
  return k;
}

/**
 * Expected BPE pieces per pre-token by kind and length (UTF-16 units), measured on English prose and
 * code with the reference Llama-3 tokenizer; index = length, the last entry's slope continues.
 */
const EXPECTED: Record<number, { table: number[]; slope: number }> = {
  [K_SPACE_WORD]: { table: [1, 1, 1, 1, 1, 1, 1.04, 1.06, 1.07, 1.16, 1.26, 1.3, 1.38, 1.58, 1.6, 2, 2.3, 2.5, 2.9, 3.2], slope: 0.25 },
  [K_WORD]: { table: [1, 1, 1.01, 1.07, 1.07, 1.12, 1.24, 1.23, 1.53, 1.71, 1.74, 2.02, 2.3, 2.5, 2.8], slope: 0.3 },
  [K_PREFIXED_WORD]: { table: [1, 1, 1.04, 1.13, 1.13, 1.28, 1.5, 1.59, 1.62, 1.89, 2, 2.42, 2.55, 2.8, 2.9], slope: 0.25 },
  [K_PUNCT]: { table: [1, 1, 1.01, 1.08, 1.26, 1.75, 2.07, 2.51, 2.69], slope: 0.33 },
};

function expectedPieces(kind: number, length: number): number {
  const e = EXPECTED[kind];
  if (!e) return 1;
  const last = e.table.length - 1;
  if (length <= last) return e.table[length] as number;
  return (e.table[last] as number) + (length - last) * e.slope;
}

/** FNV-1a over UTF-16 units of text[start, end). */
function fnv(text: string, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Punctuation length without the optional leading space and trailing newlines (`");\n"` is one piece). */
function punctLength(text: string, start: number, end: number): number {
  let s = start;
  let e = end;
  if (text.charCodeAt(s) === 32) s++;
  while (e > s && (text.charCodeAt(e - 1) === 10 || text.charCodeAt(e - 1) === 13)) e--;
  return Math.max(1, e - s);
}

/**
 * Expected pieces of a letter pre-token. Non-ASCII letters cost more bytes in a byte-level BPE, so
 * they count double, CJK characters count 0.75 piece each; runs whose letter case flips often (base64, hashes, random ids) split into
 * pieces of about 2 characters, as BPE does with text it has never seen.
 */
function wordPieces(text: string, start: number, end: number, kind: number): number {
  let nonAscii = 0;
  let cjk = 0;
  let flips = 0;
  let prevUpper = -1;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c > 127) {
      if ((c >= 0x2e80 && c <= 0x9fff) || (c >= 0xac00 && c <= 0xd7af) || (c >= 0xf900 && c <= 0xfaff)) cjk++;
      else nonAscii++;
      prevUpper = -1;
      continue;
    }
    const upper = c >= 65 && c <= 90 ? 1 : c >= 97 && c <= 122 ? 0 : -1;
    if (upper >= 0 && prevUpper >= 0 && upper !== prevUpper) flips++;
    prevUpper = upper;
  }
  const length = end - start - cjk;
  // CJK: about 0.75 pieces per character (Llama-3 has many CJK tokens, not one per word).
  const cjkPieces = cjk * 0.75;
  if (length === 0) return cjkPieces;
  if (length >= 6 && flips * 3 > length) return length / 2.2 + cjkPieces;
  return expectedPieces(kind, length + nonAscii) + cjkPieces;
}

/** Pushes the ids of pre-token text[start, end) of `kind` onto `out`. */
function emitPretoken(text: string, start: number, end: number, kind: number, out: number[]): void {
  const length = end - start;
  if (kind === K_NUMBER || kind === K_WHITESPACE || kind === K_CONTRACTION || length === 1) {
    out.push(fnv(text, start, end) % ORDINARY_VOCAB_SIZE);
    return;
  }
  const expected = kind === K_PUNCT ? expectedPieces(kind, punctLength(text, start, end)) : wordPieces(text, start, end, kind);
  const whole = fnv(text, start, end);
  const base = Math.floor(expected);
  const pieces = Math.min(length, base + ((fmix(whole) >>> 8) / 16777216 < expected - base ? 1 : 0));
  if (pieces <= 1) {
    out.push(whole % ORDINARY_VOCAB_SIZE);
    return;
  }
  let from = start;
  for (let p = 1; p <= pieces; p++) {
    const to = start + Math.round((length * p) / pieces);
    out.push(fnv(text, from, to) % ORDINARY_VOCAB_SIZE);
    from = to;
  }
}

function runOf(text: string, i: number, end: number, klass: number): number {
  while (i < end && cls(text, i) === klass) i++;
  return i;
}

function isContractionAt(text: string, i: number, end: number): number {
  if (i + 1 >= end) return 0;
  const a = text.charCodeAt(i + 1) | 0x20;
  if (a === 0x73 || a === 0x74 || a === 0x6d || a === 0x64) return 2; // s t m d
  if (i + 2 >= end) return 0;
  const b = text.charCodeAt(i + 2) | 0x20;
  if ((a === 0x72 && b === 0x65) || (a === 0x76 && b === 0x65) || (a === 0x6c && b === 0x6c)) return 3; // re ve ll
  return 0;
}

/** Tokenizes ordinary text (no special tokens) of text[start, end) onto `out`. */
function encodeOrdinary(text: string, start: number, end: number, out: number[]): void {
  let i = start;
  while (i < end) {
    const code = text.charCodeAt(i);
    const c = cls(text, i);
    // 1. contractions: 's 't 're 've 'm 'll 'd
    if (code === 39) {
      const len = isContractionAt(text, i, end);
      if (len > 0) {
        emitPretoken(text, i, i + len, K_CONTRACTION, out);
        i += len;
        continue;
      }
    }
    // 2. [^\r\n\p{L}\p{N}]?\p{L}+
    if (c === LETTER) {
      const j = runOf(text, i, end, LETTER);
      emitPretoken(text, i, j, K_WORD, out);
      i = j;
      continue;
    }
    if (c !== NEWLINE && c !== NUMBER && i + 1 < end && cls(text, i + 1) === LETTER) {
      const j = runOf(text, i + 1, end, LETTER);
      emitPretoken(text, i, j, code === 32 ? K_SPACE_WORD : K_PREFIXED_WORD, out);
      i = j;
      continue;
    }
    // 3. \p{N}{1,3}
    if (c === NUMBER) {
      const j = Math.min(runOf(text, i, end, NUMBER), i + 3);
      emitPretoken(text, i, j, K_NUMBER, out);
      i = j;
      continue;
    }
    // 4. ` ?[^\s\p{L}\p{N}]+[\r\n]*`
    const k = code === 32 && i + 1 < end && cls(text, i + 1) === OTHER ? i + 1 : i;
    if (cls(text, k) === OTHER) {
      let j = runOf(text, k, end, OTHER);
      j = runOf(text, j, end, NEWLINE);
      emitPretoken(text, i, j, K_PUNCT, out);
      i = j;
      continue;
    }
    // 5–7. whitespace: `\s*[\r\n]+`, then `\s+(?!\S)`, then `\s+`
    let runEnd = i;
    let lastNewline = -1;
    while (runEnd < end) {
      const rc = cls(text, runEnd);
      if (rc === NEWLINE) lastNewline = runEnd;
      else if (rc !== SPACE) break;
      runEnd++;
    }
    let j: number;
    if (lastNewline >= 0) j = lastNewline + 1;
    else if (runEnd === end || runEnd - i < 2) j = runEnd;
    else j = runEnd - 1;
    emitPretoken(text, i, j, K_WHITESPACE, out);
    i = j;
  }
}

// Result of the last nextSpecial() hit (module state: no allocation per special token).
let foundId = 0;
let foundLength = 0;

/** Index of the next special token at or after `from`, or -1; sets `foundId` and `foundLength`. */
function nextSpecial(text: string, from: number): number {
  let at = text.indexOf("<|", from);
  while (at >= 0) {
    const close = text.indexOf("|>", at + 2);
    if (close < 0) return -1;
    const id = SPECIAL_TOKENS[text.slice(at, close + 2)];
    if (id !== undefined) {
      foundId = id;
      foundLength = close + 2 - at;
      return at;
    }
    at = text.indexOf("<|", at + 2);
  }
  return -1;
}

export interface EncodeOptions {
  /** Prepend `<|begin_of_text|>` (vLLM does for completions prompts). Default false. */
  bos?: boolean;
}

/** The emulator's tokenizer. Stateless; `simTokenizer` is the shared instance. */
export class SimTokenizer {
  readonly vocabSize = LLAMA3_VOCAB_SIZE;
  readonly bosToken = BOS_TOKEN;
  readonly eotToken = EOT_TOKEN;

  /** Token ids of `text`; special tokens written in the text become their ids. */
  encode(text: string, opts: EncodeOptions = {}, out: number[] = []): number[] {
    if (opts.bos) out.push(BOS_TOKEN);
    let from = 0;
    for (;;) {
      const at = text.length - from >= 4 ? nextSpecial(text, from) : -1;
      if (at < 0) {
        encodeOrdinary(text, from, text.length, out);
        return out;
      }
      encodeOrdinary(text, from, at, out);
      out.push(foundId);
      from = at + foundLength;
    }
  }

  /** Number of tokens `encode(text)` returns. */
  count(text: string): number {
    return this.encode(text).length;
  }
}

export const simTokenizer = new SimTokenizer();
