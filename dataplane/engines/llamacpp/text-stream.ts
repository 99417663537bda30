/**
 * Turning sampled tokens into streamable text: an incremental detokenizer that never splits a
 * UTF-8 character across deltas, and a stop-string matcher that holds back text which might be the
 * start of a stop string. Both are pure (the detokenize function is injected), so they are tested
 * without a model.
 */
export type Token = number;

/** Detokenizes `tokens`; `lastTokens` are the tokens just before them (for tokenizers whose spelling depends on context). */
export type DetokenizeFn = (tokens: readonly Token[], lastTokens: readonly Token[]) => string;

const REPLACEMENT = "\uFFFD";
/** Longest incomplete UTF-8 sequence a tail can hold (a 4-byte character missing its last byte). */
const MAX_INCOMPLETE_BYTES = 3;
/** Tokens of context passed to the detokenizer (node-llama-cpp uses 3 too). */
const CONTEXT_TOKENS = 3;

export interface TextPiece {
  text: string;
  /** Tokens this text accounts for. */
  tokens: number;
}

/**
 * Emits text as soon as it is complete UTF-8. A byte-level model yields one byte per token, so a
 * character may span up to 4 tokens: while the detokenized tail ends in U+FFFD (the decoder's mark
 * for invalid or incomplete bytes) up to 3 tokens are held back. Truly invalid bytes are emitted as
 * U+FFFD once a 4th token arrives or at `flush()`.
 */
export class IncrementalDetokenizer {
  private pending: Token[] = [];
  private context: Token[];

  constructor(
    private readonly detokenize: DetokenizeFn,
    /** Tokens preceding the generation (the prompt's tail). */
    precedingTokens: readonly Token[] = [],
  ) {
    this.context = precedingTokens.slice(-CONTEXT_TOKENS);
  }

  /** Adds one token; returns the text that is now safe to emit, or null when everything is held. */
  push(token: Token): TextPiece | null {
    this.pending.push(token);
    const text = this.detokenize(this.pending, this.context);
    if (!text.endsWith(REPLACEMENT)) return this.take(this.pending.length, text);
    if (this.pending.length <= MAX_INCOMPLETE_BYTES) return null;
    // Emit the longest head that ends cleanly; the incomplete character is within the last 3 tokens.
    for (let hold = 1; hold < MAX_INCOMPLETE_BYTES; hold++) {
      const head = this.detokenize(this.pending.slice(0, -hold), this.context);
      if (!head.endsWith(REPLACEMENT)) return this.take(this.pending.length - hold, head);
    }
    const count = this.pending.length - MAX_INCOMPLETE_BYTES;
    return this.take(count, this.detokenize(this.pending.slice(0, count), this.context));
  }

  /** Everything still held, invalid bytes included (as U+FFFD). */
  flush(): TextPiece | null {
    if (this.pending.length === 0) return null;
    return this.take(this.pending.length, this.detokenize(this.pending, this.context));
  }

  private take(count: number, text: string): TextPiece {
    const taken = this.pending.splice(0, count);
    this.context = this.context.concat(taken).slice(-CONTEXT_TOKENS);
    return { text, tokens: count };
  }
}

export interface StopScan {
  /** Text to emit now. */
  text: string;
  /** A stop string was found: `text` ends right before it and generation should end. */
  stopped: boolean;
}

/**
 * Finds stop strings in streamed text. Text that could still become a stop string is held back, so
 * a stop string is never emitted, not even partly.
 */
export class StopMatcher {
  private held = "";
  private readonly maxHold: number;

  constructor(private readonly stops: readonly string[]) {
    this.maxHold = Math.max(0, ...stops.map((s) => s.length - 1));
  }

  /**
   * Adds text. With `active` false (e.g. before `min_tokens` is reached) stop strings are not
   * looked for and nothing is held.
   */
  push(text: string, active = true): StopScan {
    const buf = this.held + text;
    this.held = "";
    if (!active || this.stops.length === 0) return { text: buf, stopped: false };
    let at = -1;
    for (const stop of this.stops) {
      const i = buf.indexOf(stop);
      if (i >= 0 && (at < 0 || i < at)) at = i;
    }
    if (at >= 0) return { text: buf.slice(0, at), stopped: true };
    const keep = this.partialStopSuffix(buf);
    this.held = buf.slice(buf.length - keep);
    return { text: buf.slice(0, buf.length - keep), stopped: false };
  }

  /** The held text, for when generation ends for another reason. */
  flush(): string {
    const out = this.held;
    this.held = "";
    return out;
  }

  /** Length of the longest suffix of `buf` that is a proper prefix of some stop string. */
  private partialStopSuffix(buf: string): number {
    for (let len = Math.min(this.maxHold, buf.length); len > 0; len--) {
      const tail = buf.slice(buf.length - len);
      if (this.stops.some((s) => s.length > len && s.startsWith(tail))) return len;
    }
    return 0;
  }
}
