/**
 * Prompt text of an exact token length: English-looking sentences (capitalised, commas, full stops,
 * questions, paragraphs) drawn from a few hundred common words, measured with the emulator's
 * tokenizer (`simTokenizer`, within a few percent of Llama-3's counts on English) so a prompt asked
 * to be 1024 tokens is 1024 tokens to the emulator and about that to a real Llama-3 engine.
 *
 * Text is built from pieces that start at pre-token boundaries (" word", ",", ".\n\n", "Word"),
 * so the token count of a concatenation is the sum of the pieces' counts; the result is checked
 * with a full encode and trimmed or padded until it is exact. Prefix + suffix: a suffix made with
 * `leadingSpace` appended to a prefix ending in a full stop counts exactly prefix + suffix tokens.
 *
 * @example
 * ```ts
 * const text = promptText(512, new Rng(7));
 * simTokenizer.count(text); // 512
 * ```
 */
import { simTokenizer } from "../../dataplane/engines/sim/tokenizer";
import type { Rng } from "../lib/rng";

const WORDS = (
  "the of and to in a is that for it as was with be by on not this are or from at which but have an had they you were " +
  "their one all we can has there been if more when will would who so no its out up into than them some could time only " +
  "other new about these also two may first then do any like my now over such our man me even most made after many before " +
  "must through back years where much your way well down should because each just those people how too little state good " +
  "very make world still own see work long get here between both life being under never day same another know while last " +
  "might us great old year off come since against go came right used take three system request cache token engine memory " +
  "latency router node value data prefix batch queue answer question result level number simple small large clear early " +
  "often always together however therefore important general different possible example process program service network " +
  "storage performance distributed inference throughput schedule capacity pressure eviction customer order invoice report " +
  "summary meeting project budget policy contract account payment delivery product feature release version update issue " +
  "support ticket document section chapter article table figure analysis method experiment sample measure average error " +
  "function variable parameter module library package interface config server client database query index record field " +
  "message event stream buffer thread worker task job pipeline deploy build test review change commit branch merge " +
  "please explain describe compare list write translate check improve suggest find help show provide include consider " +
  "recent current previous following several certain specific common typical likely useful careful quick careful detailed " +
  "short brief long complete correct simple complex modern natural local global public private internal external " +
  "river mountain city village garden kitchen window morning evening weather travel market school student teacher " +
  "history science music language story family friend doctor health water energy light color paper letter picture " +
  "building street station airport hotel restaurant museum library office company team manager engineer designer"
)
  .split(" ")
  .filter((w, i, all) => w !== "" && all.indexOf(w) === i);

const SINGLE_TOKEN_FILLERS = [" the", " and", " of", " to", " in", " a", " is", " that", " it", " was"];

interface Piece {
  text: string;
  tokens: number;
}

const costCache = new Map<string, number>();
function cost(text: string): number {
  let c = costCache.get(text);
  if (c === undefined) {
    c = simTokenizer.count(text);
    costCache.set(text, c);
  }
  return c;
}

function cap(w: string): string {
  return w.charAt(0).toUpperCase() + w.slice(1);
}

/** Zipf-like word choice: common words first, rare ones now and then. */
function word(rng: Rng): string {
  const r = rng.next();
  return WORDS[Math.floor(r * r * WORDS.length)] as string;
}

export interface PromptTextOptions {
  /** Start with a space (" Word"), for text appended to a prefix that ends a sentence. */
  leadingSpace?: boolean;
  /** End the last sentence with a question mark (a suffix asking something). */
  question?: boolean;
}

/** Text of exactly `tokens` tokens by `simTokenizer` (tokens ≥ 1). */
export function promptText(tokens: number, rng: Rng, opts: PromptTextOptions = {}): string {
  if (!Number.isInteger(tokens) || tokens < 1) throw new RangeError(`token length must be a positive integer (got ${tokens})`);
  const pieces: Piece[] = [];
  let count = 0;
  let sentenceLeft = 0;
  let startOfParagraph = !opts.leadingSpace;
  const push = (text: string) => {
    const t = cost(text);
    pieces.push({ text, tokens: t });
    count += t;
  };
  // Leave room for the final punctuation.
  while (count < tokens - 1) {
    if (sentenceLeft === 0) {
      if (pieces.length > 0) {
        const paragraph = rng.next() < 0.12;
        push(paragraph ? ".\n\n" : rng.next() < 0.1 ? "?" : ".");
        startOfParagraph = paragraph;
        if (count >= tokens - 1) break;
      }
      sentenceLeft = 5 + Math.floor(rng.next() * 14);
      push(startOfParagraph ? cap(word(rng)) : ` ${cap(word(rng))}`);
      startOfParagraph = false;
      sentenceLeft--;
      continue;
    }
    if (sentenceLeft > 2 && sentenceLeft < 12 && rng.next() < 0.07 && !pieces[pieces.length - 1]?.text.endsWith(",")) push(",");
    push(` ${word(rng)}`);
    sentenceLeft--;
  }
  if (count < tokens) push(opts.question ? "?" : ".");
  // Exact length: trim whole pieces, pad with one-token words, verify with a full encode.
  for (let attempt = 0; attempt < 20; attempt++) {
    while (count > tokens && pieces.length > 1) {
      count -= (pieces.pop() as Piece).tokens;
    }
    while (count < tokens) push(SINGLE_TOKEN_FILLERS[Math.floor(rng.next() * SINGLE_TOKEN_FILLERS.length)] as string);
    const text = pieces.map((p) => p.text).join("");
    const exact = simTokenizer.count(text);
    if (exact === tokens) return text;
    count = exact;
  }
  const text = pieces.map((p) => p.text).join("");
  return text;
}

/** Tokens of a text as the emulator counts them. */
export function countTokens(text: string): number {
  return simTokenizer.count(text);
}
