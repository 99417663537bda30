/**
 * The sequence-state codec on synthetic files written the way llama.cpp writes them (src/llama-kv-cache.cpp
 * state_write_*): cells in any cache order, V transposed or not, an ext record per cell, the
 * sequence in any stream. Cutting into chunks and joining them again must give the canonical file
 * (cells in token order, stream 0), and anything that is not such a chunk must be refused.
 */
import { describe, expect, it } from "vitest";
import { assembleStateFile, chunkValueBytes, encodeChunk, parseStateFile, readChunk, STATE_SEQ_MAGIC, StateFormatError } from "../../../dataplane/engines/llamacpp/kv-state-codec";

interface Shape {
  nLayer: number;
  kRow: number;
  vTrans: boolean;
  /** Non-transposed: bytes per V row; transposed: element size. */
  vRow: number;
  nEmbdV: number;
  extBytes: number;
  /** Layers with a V section (shared-KV models have fewer). */
  vLayers?: number;
}

/** The byte of (token, layer, section, j, k): any fixed function that differs everywhere. */
const byteOf = (t: number, l: number, s: number, j: number, k: number) => (t * 31 + l * 7 + s * 101 + j * 13 + k * 3) & 0xff;

/** A state file of `tokens` in llama.cpp's layout, with cell c holding token `cells[c]`. */
function writeState(tokens: number[], shape: Shape, opts: { nStream?: number; stream?: number; cells?: number[]; nSeqId?: number } = {}): Buffer {
  const nStream = opts.nStream ?? 1;
  const stream = opts.stream ?? 0;
  const cells = opts.cells ?? tokens.map((_, i) => i);
  const n = tokens.length;
  const parts: Buffer[] = [];
  const u32 = (v: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v >>> 0);
    parts.push(b);
  };
  const u64 = (v: number) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    parts.push(b);
  };
  u32(STATE_SEQ_MAGIC);
  u32(3);
  u32(n);
  for (const t of tokens) u32(t);
  u32(nStream);
  for (let s = 0; s < nStream; s++) {
    if (s !== stream) {
      u32(0);
      continue;
    }
    u32(n);
    for (const pos of cells) {
      u32(pos);
      u32(opts.nSeqId ?? 1);
      if (shape.extBytes) parts.push(Buffer.alloc(shape.extBytes, pos & 0xff));
      u32(stream);
    }
    u32(shape.vTrans ? 1 : 0);
    u32(shape.nLayer);
    for (let l = 0; l < shape.nLayer; l++) {
      u32(1); // f16
      u64(shape.kRow);
      for (const pos of cells) parts.push(Buffer.from(Array.from({ length: shape.kRow }, (_, k) => byteOf(pos, l, 0, 0, k))));
    }
    for (let l = 0; l < (shape.vLayers ?? shape.nLayer); l++) {
      u32(1);
      if (shape.vTrans) {
        u32(shape.vRow);
        u32(shape.nEmbdV);
        for (let j = 0; j < shape.nEmbdV; j++) for (const pos of cells) parts.push(Buffer.from(Array.from({ length: shape.vRow }, (_, k) => byteOf(pos, l, 1, j, k))));
      } else {
        u64(shape.vRow);
        for (const pos of cells) parts.push(Buffer.from(Array.from({ length: shape.vRow }, (_, k) => byteOf(pos, l, 1, 0, k))));
      }
    }
  }
  return Buffer.concat(parts);
}

const plain: Shape = { nLayer: 3, kRow: 8, vTrans: false, vRow: 8, nEmbdV: 0, extBytes: 0 };
const transposed: Shape = { nLayer: 2, kRow: 6, vTrans: true, vRow: 2, nEmbdV: 5, extBytes: 0 };
const withExt: Shape = { nLayer: 2, kRow: 4, vTrans: false, vRow: 4, nEmbdV: 0, extBytes: 12 };
const sharedKv: Shape = { nLayer: 3, kRow: 4, vTrans: false, vRow: 4, nEmbdV: 0, extBytes: 0, vLayers: 1 };

const tokens = (n: number, salt = 0) => Array.from({ length: n }, (_, i) => (i * 7 + salt) % 258);
/** A cache order that is not token order: reversed halves, as after erases and refills. */
const scrambled = (n: number) => [...Array.from({ length: n >> 1 }, (_, i) => (n >> 1) + i), ...Array.from({ length: n - (n >> 1) }, (_, i) => i)].reverse();

describe("kv-state-codec", () => {
  for (const [name, shape] of [
    ["plain", plain],
    ["transposed V", transposed],
    ["ext records", withExt],
    ["layers without V", sharedKv],
  ] as const) {
    it(`${name}: chunks of a scrambled, non-zero-stream file join into the canonical file`, () => {
      const toks = tokens(40);
      const file = writeState(toks, shape, { nStream: 3, stream: 2, cells: scrambled(40) });
      const parsed = parseStateFile(file);
      expect(Array.from(parsed.tokens)).toEqual(toks);
      expect(parsed.nStream).toBe(3);
      expect(parsed.layout.extBytes).toBe(shape.extBytes);
      const chunks = [0, 16].map((start) => encodeChunk(parsed, start, 16));
      expect(chunks[0]?.length).toBe(chunkValueBytes(parsed.layout, 16));
      const joined = assembleStateFile(chunks, parsed.layout, 3, toks);
      expect(joined?.equals(writeState(toks.slice(0, 32), shape, { nStream: 3, stream: 0 }))).toBe(true);
      // And the joined file parses back to the same layout.
      expect(parseStateFile(joined as Buffer).layout.signature.equals(parsed.layout.signature)).toBe(true);
    });
  }

  it("refuses chunks of another layout, out of order, or of other tokens", () => {
    const toks = tokens(32);
    const a = parseStateFile(writeState(toks, plain));
    const b = parseStateFile(writeState(toks, { ...plain, kRow: 16 }));
    const c0 = encodeChunk(a, 0, 16);
    const c1 = encodeChunk(a, 16, 16);
    expect(readChunk(c0, b.layout)).toBeUndefined();
    expect(assembleStateFile([c0, c1], b.layout, 1)).toBeUndefined();
    expect(assembleStateFile([c1], a.layout, 1)).toBeUndefined(); // does not start at token 0
    expect(assembleStateFile([c0, c0], a.layout, 1)).toBeUndefined(); // gap: second chunk starts at 0
    expect(assembleStateFile([c0, c1], a.layout, 1, tokens(32, 1))).toBeUndefined();
    expect(assembleStateFile([c0, c1], a.layout, 1, toks)).toBeDefined();
    const bad = Buffer.from(c0);
    bad.writeUInt32LE(0, 0);
    expect(readChunk(bad, a.layout)).toBeUndefined();
    expect(readChunk(c0.subarray(0, c0.length - 1), a.layout)).toBeUndefined();
  });

  it("refuses states it cannot cut: shared cells, gaps in positions, several streams, truncation", () => {
    const toks = tokens(8);
    expect(() => parseStateFile(writeState(toks, plain, { nSeqId: 2 }))).toThrow(StateFormatError);
    expect(() => parseStateFile(writeState(toks, plain, { cells: [0, 1, 2, 3, 4, 5, 6, 9] }))).toThrow(StateFormatError);
    expect(() => parseStateFile(writeState(toks, plain, { cells: [0, 1, 2, 3, 4, 5, 6, 6] }))).toThrow(StateFormatError);
    const two = Buffer.concat([writeState(toks, plain, { nStream: 2, stream: 0 }).subarray(0, -4), Buffer.from([8, 0, 0, 0])]);
    expect(() => parseStateFile(two)).toThrow(StateFormatError);
    const whole = writeState(toks, plain);
    for (const cut of [3, 20, 60, whole.length - 1]) expect(() => parseStateFile(whole.subarray(0, cut))).toThrow(StateFormatError);
    expect(() => parseStateFile(writeState([], plain))).toThrow(StateFormatError);
  });
});
