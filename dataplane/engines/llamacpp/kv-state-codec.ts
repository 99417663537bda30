/**
 * Cuts a llama.cpp sequence state file into KV chunks and puts chunks back together into a file.
 *
 * node-llama-cpp 3.22.1 exposes a sequence's KV state only as a file (`saveStateToFile` /
 * `loadStateFromFile`; the in-memory `llama_state_seq_*_data` calls are private). A file holds the
 * whole sequence, but the tiers hold chunks of `chunkTokens` tokens keyed by a chain hash
 * (kvcache/keys.ts), so one prefix is stored once however many sequences share it, L1 evicts a
 * chain tail first, and L2 spreads a prompt's chunks over its servers. This module translates.
 *
 * The sequence state file of the bundled llama.cpp (LLAMA_STATE_SEQ_VERSION 3; read from
 * src/llama-context.cpp `state_seq_save_file` and src/llama-kv-cache.cpp `state_write*`), all
 * little-endian:
 *
 *   u32 magic 'ggsq', u32 version, u32 n_token, i32 tokens[n_token]
 *   u32 n_stream                                   (the context's sequence count: non-unified KV)
 *   per stream: u32 cell_count; if > 0:
 *     meta, per cell: i32 pos, u32 n_seq_id (1), [12 B ext: M-RoPE / PLE models only], i32 seq_id
 *     u32 v_trans, u32 n_layer
 *     per layer K: i32 type, u64 row_size, cell_count rows
 *     per layer with V, not transposed: i32 type, u64 row_size, cell_count rows
 *                       transposed:     i32 type, u32 el_size, u32 n_embd_v, n_embd_v × (cell_count elements)
 *
 * Restoring into sequence s reads every stream's cell_count but puts all cells into s's own stream,
 * so an assembled file carries its cells in stream 0 and zeros for the others: any sequence of a
 * context with the same stream count can load it.
 *
 * A chunk value is self-describing and checked before use (a bad or foreign chunk is a miss, never
 * a crash: loading a mismatched state can abort the process inside llama.cpp):
 *
 *   u32 magic 'SYLK', u16 format 1, u16 ext bytes per cell (0 or 12), u32 state version,
 *   u32 start (token index of the chunk's first token), u32 n (tokens), u32 layout length, layout,
 *   u32 tokens[n], ext[n], then each K section's n rows, then each V section's rows (transposed:
 *   n_embd_v runs of n elements).
 *
 * `layout` is the sections' type and size fields exactly as in the file, so two chunks can be
 * joined, and loaded into a context, only when their layouts are byte-equal to the context's.
 */

export const STATE_SEQ_MAGIC = 0x67677371; // 'ggsq' (LLAMA_FILE_MAGIC_GGSQ)
export const CHUNK_MAGIC = 0x4b4c5953; // 'SYLK' little-endian
export const CHUNK_FORMAT = 1;
/** Sizes of the per-cell ext record the bundled llama.cpp may write (llama_kv_cell_ext: x, y, tok). */
const EXT_CANDIDATES = [0, 12] as const;

/** One K or V section of a layer, as the state file describes it. */
export interface KvSection {
  kind: "k" | "v" | "vt";
  type: number;
  /** Bytes per cell row (k, v); element size (vt). */
  rowBytes: number;
  /** vt only: rows of the transposed V (n_embd_v_gqa). */
  nEmbd: number;
}

/** How a context lays its KV out: what must match for a chunk to be loadable into it. */
export interface KvLayout {
  stateVersion: number;
  extBytes: number;
  vTrans: number;
  nLayer: number;
  sections: KvSection[];
  /** The sections' header fields as serialized (v_trans, n_layer, then each section's header): compared bytewise. */
  signature: Buffer;
  /** KV bytes of one token (all sections). */
  bytesPerToken: number;
}

/** A parsed state file: the tokens and, per section, the cell rows in token order. */
export interface ParsedState {
  layout: KvLayout;
  nStream: number;
  tokens: Uint32Array;
  /** The file's bytes (the sections below are views into it). */
  file: Buffer;
  /** cellOf[t] = the cell index holding token t (files list cells in cache order, not token order). */
  cellOf: Uint32Array;
  ext: Buffer | undefined;
  /** Where each section's data starts in `file`. */
  sectionOffsets: number[];
}

export class StateFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StateFormatError";
  }
}

class Reader {
  o = 0;
  constructor(
    readonly b: Buffer,
    readonly end = b.length,
  ) {}
  need(n: number): void {
    if (this.o + n > this.end) throw new StateFormatError(`truncated at byte ${this.o} (need ${n} more of ${this.end})`);
  }
  u32(): number {
    this.need(4);
    const v = this.b.readUInt32LE(this.o);
    this.o += 4;
    return v;
  }
  i32(): number {
    this.need(4);
    const v = this.b.readInt32LE(this.o);
    this.o += 4;
    return v;
  }
  u64(): number {
    this.need(8);
    const v = this.b.readBigUInt64LE(this.o);
    this.o += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new StateFormatError(`size ${v} out of range`);
    return Number(v);
  }
  skip(n: number): void {
    this.need(n);
    this.o += n;
  }
}

function sectionHeaderBytes(s: KvSection): number {
  return s.kind === "vt" ? 12 : 12;
}

function writeSectionHeader(out: Buffer, o: number, s: KvSection): number {
  o = out.writeInt32LE(s.type, o);
  if (s.kind === "vt") {
    o = out.writeUInt32LE(s.rowBytes, o);
    return out.writeUInt32LE(s.nEmbd, o);
  }
  return out.writeBigUInt64LE(BigInt(s.rowBytes), o);
}

function sectionBytesPerCell(s: KvSection): number {
  return s.kind === "vt" ? s.rowBytes * s.nEmbd : s.rowBytes;
}

function makeLayout(stateVersion: number, extBytes: number, vTrans: number, nLayer: number, sections: KvSection[]): KvLayout {
  const sig = Buffer.alloc(8 + sections.reduce((n, s) => n + 1 + sectionHeaderBytes(s), 0));
  let o = sig.writeUInt32LE(vTrans, 0);
  o = sig.writeUInt32LE(nLayer, o);
  for (const s of sections) {
    o = sig.writeUInt8(s.kind === "k" ? 0 : s.kind === "v" ? 1 : 2, o);
    o = writeSectionHeader(sig, o, s);
  }
  return { stateVersion, extBytes, vTrans, nLayer, sections, signature: sig, bytesPerToken: sections.reduce((n, s) => n + sectionBytesPerCell(s), 0) };
}

/** Parses the data part of the one non-empty stream (after its meta) up to `end`. */
function parseSections(r: Reader, cells: number): { vTrans: number; nLayer: number; sections: KvSection[]; offsets: number[] } {
  const vTrans = r.u32();
  const nLayer = r.u32();
  if (vTrans > 1) throw new StateFormatError(`v_trans is ${vTrans}`);
  if (nLayer < 1 || nLayer > 4096) throw new StateFormatError(`n_layer is ${nLayer}`);
  const sections: KvSection[] = [];
  const offsets: number[] = [];
  for (let l = 0; l < nLayer; l++) {
    const type = r.i32();
    const rowBytes = r.u64();
    if (rowBytes < 1 || rowBytes > 1 << 30) throw new StateFormatError(`K row size ${rowBytes}`);
    offsets.push(r.o);
    r.skip(rowBytes * cells);
    sections.push({ kind: "k", type, rowBytes, nEmbd: 0 });
  }
  // Layers without a V tensor (shared-KV attention) write no V section, so read them until the stream ends.
  let nV = 0;
  while (r.o < r.end) {
    if (++nV > nLayer) throw new StateFormatError("more V sections than layers");
    const type = r.i32();
    if (vTrans === 1) {
      const elBytes = r.u32();
      const nEmbd = r.u32();
      if (elBytes < 1 || elBytes > 64 || nEmbd < 1) throw new StateFormatError(`V element size ${elBytes}, n_embd ${nEmbd}`);
      offsets.push(r.o);
      r.skip(elBytes * nEmbd * cells);
      sections.push({ kind: "vt", type, rowBytes: elBytes, nEmbd });
    } else {
      const rowBytes = r.u64();
      if (rowBytes < 1 || rowBytes > 1 << 30) throw new StateFormatError(`V row size ${rowBytes}`);
      offsets.push(r.o);
      r.skip(rowBytes * cells);
      sections.push({ kind: "v", type, rowBytes, nEmbd: 0 });
    }
  }
  return { vTrans, nLayer, sections, offsets };
}

/**
 * Parses a sequence state file as saved by `LlamaContextSequence.saveStateToFile`. Throws
 * StateFormatError when the file is not a single sequence whose cells hold exactly its tokens at
 * positions 0..n-1 (a shifted context, a sliding-window or recurrent model): such states are not
 * cached.
 */
export function parseStateFile(file: Buffer): ParsedState {
  const r = new Reader(file);
  if (r.u32() !== STATE_SEQ_MAGIC) throw new StateFormatError("not a sequence state file (magic)");
  const stateVersion = r.u32();
  const nTok = r.u32();
  r.need(nTok * 4);
  const tokens = new Uint32Array(nTok);
  for (let i = 0; i < nTok; i++) tokens[i] = file.readInt32LE(r.o + i * 4) >>> 0;
  r.o += nTok * 4;
  const nStream = r.u32();
  if (nStream < 1 || nStream > 4096) throw new StateFormatError(`n_stream is ${nStream}`);
  // Streams after the non-empty one are a zero cell count each, so its data ends 4 B per stream before the file does.
  for (let s = 0; s < nStream; s++) {
    const cells = r.u32();
    if (cells === 0) continue;
    if (cells !== nTok) throw new StateFormatError(`${cells} cells for ${nTok} tokens`);
    const streamEnd = file.length - 4 * (nStream - s - 1);
    for (let k = s + 1; k < nStream; k++) if (file.readUInt32LE(streamEnd + 4 * (k - s - 1)) !== 0) throw new StateFormatError("more than one non-empty stream");
    const metaStart = r.o;
    let lastError: unknown;
    for (const extBytes of EXT_CANDIDATES) {
      try {
        const rr = new Reader(file, streamEnd);
        rr.o = metaStart;
        const cellOf = new Uint32Array(cells).fill(0xffffffff);
        const ext = extBytes > 0 ? Buffer.allocUnsafe(cells * extBytes) : undefined;
        for (let c = 0; c < cells; c++) {
          const pos = rr.i32();
          if (rr.u32() !== 1) throw new StateFormatError("a cell shared by several sequences");
          if (ext) {
            rr.need(extBytes);
            file.copy(ext, pos >= 0 && pos < cells ? pos * extBytes : 0, rr.o, rr.o + extBytes);
            rr.o += extBytes;
          }
          rr.i32(); // seq_id: restore uses the destination's
          if (pos < 0 || pos >= cells || cellOf[pos] !== 0xffffffff) throw new StateFormatError(`cell positions are not 0..${cells - 1} (pos ${pos})`);
          cellOf[pos] = c;
        }
        const { vTrans, nLayer, sections, offsets } = parseSections(rr, cells);
        if (rr.o !== streamEnd) throw new StateFormatError("trailing bytes");
        return { layout: makeLayout(stateVersion, extBytes, vTrans, nLayer, sections), nStream, tokens, file, cellOf, ext, sectionOffsets: offsets };
      } catch (err) {
        lastError = err;
      }
    }
    throw lastError instanceof StateFormatError ? lastError : new StateFormatError(String(lastError));
  }
  throw new StateFormatError("the state holds no cells");
}

function chunkHeaderBytes(layout: KvLayout): number {
  return 24 + layout.signature.length;
}

/** Bytes of one chunk value of `n` tokens in `layout`. */
export function chunkValueBytes(layout: KvLayout, n: number): number {
  return chunkHeaderBytes(layout) + n * (4 + layout.extBytes + layout.bytesPerToken);
}

/** Copies `n` cells' bytes (starting at token `start`, `cellBytes` each, cell c at `base + c·stride`) into `out`. */
function gatherCells(src: Buffer, base: number, stride: number, cellBytes: number, cellOf: Uint32Array, start: number, n: number, out: Buffer, o: number): number {
  let t = 0;
  while (t < n) {
    // Runs of consecutive cells copy in one go (the usual case: a sequence evaluated in order).
    const c0 = cellOf[start + t] as number;
    let run = 1;
    while (t + run < n && cellOf[start + t + run] === c0 + run) run++;
    if (stride === cellBytes) {
      o += src.copy(out, o, base + c0 * stride, base + (c0 + run) * stride);
    } else {
      for (let k = 0; k < run; k++) o += src.copy(out, o, base + (c0 + k) * stride, base + (c0 + k) * stride + cellBytes);
    }
    t += run;
  }
  return o;
}

/** The chunk of `n` tokens starting at token `start` of a parsed state, as a self-describing value. */
export function encodeChunk(state: ParsedState, start: number, n: number): Buffer {
  const { layout, file, cellOf } = state;
  if (start < 0 || n < 1 || start + n > state.tokens.length) throw new RangeError(`chunk [${start}, ${start + n}) outside ${state.tokens.length} tokens`);
  const cells = state.tokens.length;
  const out = Buffer.allocUnsafe(chunkValueBytes(layout, n));
  let o = out.writeUInt32LE(CHUNK_MAGIC, 0);
  o = out.writeUInt16LE(CHUNK_FORMAT, o);
  o = out.writeUInt16LE(layout.extBytes, o);
  o = out.writeUInt32LE(layout.stateVersion, o);
  o = out.writeUInt32LE(start, o);
  o = out.writeUInt32LE(n, o);
  o = out.writeUInt32LE(layout.signature.length, o);
  o += layout.signature.copy(out, o);
  for (let t = 0; t < n; t++) o = out.writeUInt32LE(state.tokens[start + t] as number, o);
  if (state.ext) o += state.ext.copy(out, o, start * layout.extBytes, (start + n) * layout.extBytes);
  layout.sections.forEach((s, i) => {
    const base = state.sectionOffsets[i] as number;
    if (s.kind === "vt") {
      // Transposed V: n_embd rows of `cells` elements; the chunk keeps its n elements of each row.
      for (let j = 0; j < s.nEmbd; j++) o = gatherCells(file, base + j * cells * s.rowBytes, s.rowBytes, s.rowBytes, cellOf, start, n, out, o);
    } else {
      o = gatherCells(file, base, s.rowBytes, s.rowBytes, cellOf, start, n, out, o);
    }
  });
  if (o !== out.length) throw new Error(`chunk encoder wrote ${o} of ${out.length} bytes`);
  return out;
}

/** A chunk value's header, checked against the layout it must have. */
interface ChunkView {
  start: number;
  n: number;
  tokensAt: number;
  extAt: number;
  dataAt: number;
  value: Uint8Array;
}

/** Reads a chunk's header; undefined when it is not a chunk of `layout` (wrong format, other layout, truncated). */
export function readChunk(value: Uint8Array, layout: KvLayout): ChunkView | undefined {
  const b = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  if (b.length < 24) return undefined;
  if (b.readUInt32LE(0) !== CHUNK_MAGIC || b.readUInt16LE(4) !== CHUNK_FORMAT) return undefined;
  if (b.readUInt16LE(6) !== layout.extBytes || b.readUInt32LE(8) !== layout.stateVersion) return undefined;
  const start = b.readUInt32LE(12);
  const n = b.readUInt32LE(16);
  const sigLen = b.readUInt32LE(20);
  if (sigLen !== layout.signature.length || !b.subarray(24, 24 + sigLen).equals(layout.signature)) return undefined;
  if (n < 1 || b.length !== chunkValueBytes(layout, n)) return undefined;
  const tokensAt = 24 + sigLen;
  const extAt = tokensAt + 4 * n;
  return { start, n, tokensAt, extAt, dataAt: extAt + n * layout.extBytes, value: b };
}

/**
 * A state file for `chunks` (in order, starting at token 0, each checked with `readChunk`),
 * loadable into any sequence of a context with `nStream` streams and this layout. `expectTokens`,
 * when given, must equal the chunks' tokens (a hash collision or a bug becomes a refusal, not
 * wrong KV). Returns undefined when the chunks do not form that prefix.
 */
export function assembleStateFile(chunks: readonly Uint8Array[], layout: KvLayout, nStream: number, expectTokens?: ArrayLike<number>): Buffer | undefined {
  const views: ChunkView[] = [];
  let total = 0;
  for (const c of chunks) {
    const v = readChunk(c, layout);
    if (!v || v.start !== total) return undefined;
    views.push(v);
    total += v.n;
  }
  if (total === 0) return undefined;
  if (expectTokens !== undefined) {
    if (expectTokens.length < total) return undefined;
    let t = 0;
    for (const v of views) {
      const b = v.value as Buffer;
      for (let k = 0; k < v.n; k++, t++) if (b.readUInt32LE(v.tokensAt + 4 * k) !== expectTokens[t]) return undefined;
    }
  }
  const metaPerCell = 12 + layout.extBytes;
  const size = 12 + 4 * total + 4 + 4 * nStream + metaPerCell * total + 8 + layout.sections.reduce((n, s) => n + sectionHeaderBytes(s) + sectionBytesPerCell(s) * total, 0);
  const out = Buffer.allocUnsafe(size);
  let o = out.writeUInt32LE(STATE_SEQ_MAGIC, 0);
  o = out.writeUInt32LE(layout.stateVersion, o);
  o = out.writeUInt32LE(total, o);
  for (const v of views) o += (v.value as Buffer).copy(out, o, v.tokensAt, v.tokensAt + 4 * v.n);
  o = out.writeUInt32LE(nStream, o);
  o = out.writeUInt32LE(total, o);
  let pos = 0;
  for (const v of views) {
    for (let k = 0; k < v.n; k++, pos++) {
      o = out.writeInt32LE(pos, o);
      o = out.writeUInt32LE(1, o);
      if (layout.extBytes > 0) o += (v.value as Buffer).copy(out, o, v.extAt + k * layout.extBytes, v.extAt + (k + 1) * layout.extBytes);
      o = out.writeInt32LE(0, o);
    }
  }
  o = out.writeUInt32LE(layout.vTrans, o);
  o = out.writeUInt32LE(layout.nLayer, o);
  // Offset of each section inside a chunk's data: sections follow one another, each n cells long.
  let sectionInChunk = 0;
  for (const s of layout.sections) {
    o = writeSectionHeader(out, o, s);
    if (s.kind === "vt") {
      for (let j = 0; j < s.nEmbd; j++) {
        for (const v of views) {
          const at = v.dataAt + sectionInChunk * v.n + j * v.n * s.rowBytes;
          o += (v.value as Buffer).copy(out, o, at, at + v.n * s.rowBytes);
        }
      }
    } else {
      for (const v of views) {
        const at = v.dataAt + sectionInChunk * v.n;
        o += (v.value as Buffer).copy(out, o, at, at + v.n * s.rowBytes);
      }
    }
    sectionInChunk += sectionBytesPerCell(s);
  }
  for (let s = 1; s < nStream; s++) o = out.writeUInt32LE(0, o);
  if (o !== size) throw new Error(`state assembler wrote ${o} of ${size} bytes`);
  return out;
}
