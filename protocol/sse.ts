/**
 * Incremental Server-Sent Events framing. Splits a text stream into complete events so a proxy can
 * forward each one the moment it is complete (nothing waits for more than the rest of its own
 * event), look inside it (usage, errors), and drop or rewrite single events.
 */

/** Splits pushed text into complete event blocks; each block keeps its terminating blank line. */
export class SseFramer {
  private buffer = "";

  /** Adds text; returns the events completed by it, in order. */
  push(text: string): string[] {
    this.buffer += text;
    const events: string[] = [];
    for (;;) {
      const end = findEventEnd(this.buffer);
      if (end < 0) break;
      events.push(this.buffer.slice(0, end));
      this.buffer = this.buffer.slice(end);
    }
    return events;
  }

  /** Whatever is left that never got its blank line (a truncated last event). */
  rest(): string {
    const out = this.buffer;
    this.buffer = "";
    return out;
  }

  get pending(): number {
    return this.buffer.length;
  }
}

/**
 * Index just past the first event terminator (a blank line: two line ends in a row, where a line
 * end is \r\n, \n or \r), or -1. A trailing lone \r is not trusted yet: it may be half of \r\n.
 */
function findEventEnd(s: string): number {
  let i = 0;
  let lineEnds = 0;
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c === 13 /* \r */) {
      if (i + 1 >= s.length) return -1;
      i += s.charCodeAt(i + 1) === 10 ? 2 : 1;
      if (++lineEnds === 2) return i;
    } else if (c === 10 /* \n */) {
      i += 1;
      if (++lineEnds === 2) return i;
    } else {
      lineEnds = 0;
      i++;
    }
  }
  return -1;
}

export interface SseEvent {
  event: string | undefined;
  /** `data:` lines joined by \n; undefined when the block has none (comments, keep-alives). */
  data: string | undefined;
  id: string | undefined;
}

/** Parses one event block per the SSE spec (field names, one optional space after the colon). */
export function parseSseEvent(block: string): SseEvent {
  let event: string | undefined;
  let id: string | undefined;
  const data: string[] = [];
  for (const line of block.split(/\r\n|\r|\n/)) {
    if (line.length === 0 || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") data.push(value);
    else if (field === "event") event = value;
    else if (field === "id") id = value;
  }
  return { event, data: data.length > 0 ? data.join("\n") : undefined, id };
}

/** Encodes an object as one `data:` event. */
export function sseData(value: unknown): string {
  return `data: ${typeof value === "string" ? value : JSON.stringify(value)}\n\n`;
}
