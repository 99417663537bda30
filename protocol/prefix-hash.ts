/**
 * Prompt prefix blocks, as the edge sees them: the prompt rendered canonically, cut into blocks of
 * fixed length, each block hashed together with the hash of the block before it. Two prompts share
 * their first k block hashes exactly when they share the first k blocks of text, so "which node
 * served this prefix" becomes a walk over block hashes. The edge has no tokenizer; blocks are
 * characters (DEFAULT_BLOCK_CHARS ≈ 64 tokens of English: four vLLM blocks, a quarter of an LMCache
 * chunk), and only full blocks are hashed.
 *
 * The chain starts from a namespace seed: by default the tenant's, so one tenant's prompts can never
 * match (and so never reveal, through timing) another tenant's cached prefixes.
 */

/** Characters per block; ~4 characters per token, so ≈ 64 tokens. */
export const DEFAULT_BLOCK_CHARS = 256;

/** Message boundary markers that cannot occur in JSON-decoded text by accident in practice. */
const ROLE_OPEN = "\u0001";
const ROLE_CLOSE = "\u0002";

interface MessageLike {
  role?: unknown;
  content?: unknown;
  name?: unknown;
}

function contentText(content: unknown): string {
  if (typeof content === "string") return content;
  if (content === null || content === undefined) return "";
  if (Array.isArray(content)) {
    let out = "";
    for (const part of content) {
      if (part && typeof part === "object" && (part as { type?: unknown }).type === "text" && typeof (part as { text?: unknown }).text === "string") {
        out += (part as { text: string }).text;
      } else out += JSON.stringify(part);
    }
    return out;
  }
  return JSON.stringify(content);
}

/**
 * The canonical text of a chat: every message as <role marker, role, name, marker, content> in
 * order. Appending a message appends text, so a conversation's next turn extends the previous
 * turn's rendering — its blocks are a prefix of the new ones.
 */
export function renderChat(messages: readonly MessageLike[]): string {
  let out = "";
  for (const m of messages) {
    out += ROLE_OPEN + String(m.role ?? "") + (typeof m.name === "string" ? `:${m.name}` : "") + ROLE_CLOSE + contentText(m.content);
  }
  return out;
}

/** The canonical text of a completions prompt (a string, one-string array, or token ids). */
export function renderCompletionPrompt(prompt: unknown): string {
  if (typeof prompt === "string") return prompt;
  if (Array.isArray(prompt)) {
    if (prompt.every((p) => typeof p === "string")) return prompt.join("");
    // Token ids: a stable text form keeps prefix relations (id lists sharing a prefix share text).
    return prompt.map((t) => `${String(t)},`).join("");
  }
  return "";
}

const M1 = 0x85ebca6b;
const M2 = 0xc2b2ae35;
const P1 = 0x9e3779b1;
const P2 = 0x27d4eb2f;

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, M1);
  h ^= h >>> 13;
  h = Math.imul(h, M2);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * 53-bit hash of text[start, end) seeded by a previous 53-bit value: two independent 32-bit lanes
 * (different multipliers) over UTF-16 code units, two at a time, combined into one safe integer.
 * Collision odds for a million live blocks are about 1e-4 per pool lifetime; a collision can only
 * misroute (never leak data: engines check tokens), so this is the right trade for speed.
 */
export function hashBlock(text: string, start: number, end: number, seed: number): number {
  let a = (seed % 0x100000000) >>> 0;
  let b = Math.floor(seed / 0x100000000) >>> 0;
  a ^= 0x5bd1e995;
  b ^= 0x1b873593;
  let i = start;
  for (; i + 1 < end; i += 2) {
    const k = text.charCodeAt(i) | (text.charCodeAt(i + 1) << 16);
    a = Math.imul(a ^ k, P1);
    a = (a << 13) | (a >>> 19);
    b = Math.imul(b ^ k, P2);
    b = (b << 17) | (b >>> 15);
  }
  if (i < end) {
    const k = text.charCodeAt(i);
    a = Math.imul(a ^ k, P1);
    b = Math.imul(b ^ k, P2);
  }
  a = fmix(a ^ (end - start));
  b = fmix(b ^ a);
  // 21 high bits from b and 32 bits from a: an integer below 2^53.
  return (b >>> 11) * 0x100000000 + a;
}

/** Seed of a namespace's chain: the tenant's (isolated) or a model's shared one. */
export function namespaceSeed(namespace: string): number {
  return hashBlock(namespace, 0, namespace.length, 0x2545f491);
}

/** Chained hashes of the full blocks of `text`. */
export function prefixBlockHashes(text: string, seed: number, blockChars = DEFAULT_BLOCK_CHARS, maxBlocks = 4096): number[] {
  const n = Math.min(Math.floor(text.length / blockChars), maxBlocks);
  const out = new Array<number>(n);
  let parent = seed;
  for (let i = 0; i < n; i++) {
    parent = hashBlock(text, i * blockChars, (i + 1) * blockChars, parent);
    out[i] = parent;
  }
  return out;
}

/** Rough token count of rendered text, for cost models that need one (≈ 4 chars per token). */
export function estimateTokens(text: string): number {
  return Math.ceil(text.length / 4);
}
