/**
 * A dependency-free GGUF v3 writer (only Buffer and node:fs), enough to produce small test models.
 *
 * Layout: magic "GGUF", u32 version, u64 tensor count, u64 metadata count, the metadata key/value
 * pairs, the tensor infos, zero padding to `alignment`, then the tensor data, each tensor padded to
 * `alignment`. Tensor dims are in ggml order: `dims[0]` is the contiguous (input) dimension.
 *
 * @example
 * ```ts
 * writeGgufFile("m.gguf", {
 *   metadata: [["general.architecture", gguf.string("llama")], ["llama.block_count", gguf.u32(2)]],
 *   tensors: [{ name: "output_norm.weight", dims: [8], type: GgmlTensorType.F32, data: new Float32Array(8).fill(1) }],
 * });
 * ```
 */
import { closeSync, openSync, writeSync } from "node:fs";

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** GGUF metadata value types, as numbered in the spec. */
export const GgufValueType = {
  u8: 0,
  i8: 1,
  u16: 2,
  i16: 3,
  u32: 4,
  i32: 5,
  f32: 6,
  bool: 7,
  string: 8,
  array: 9,
  u64: 10,
  i64: 11,
  f64: 12,
} as const;
export type GgufScalarTypeName = Exclude<keyof typeof GgufValueType, "array">;

/** The tensor types this writer can encode. */
export const GgmlTensorType = { F32: 0, F16: 1 } as const;
export type GgmlTensorType = (typeof GgmlTensorType)[keyof typeof GgmlTensorType];

type ScalarValue = number | bigint | boolean | string;
export type GgufValue =
  | { type: GgufScalarTypeName; value: ScalarValue }
  | { type: "array"; itemType: GgufScalarTypeName; values: readonly ScalarValue[] };

/** Typed constructors for metadata values (JS numbers alone do not say which GGUF type they are). */
export const gguf = {
  u8: (value: number): GgufValue => ({ type: "u8", value }),
  i8: (value: number): GgufValue => ({ type: "i8", value }),
  u16: (value: number): GgufValue => ({ type: "u16", value }),
  i16: (value: number): GgufValue => ({ type: "i16", value }),
  u32: (value: number): GgufValue => ({ type: "u32", value }),
  i32: (value: number): GgufValue => ({ type: "i32", value }),
  u64: (value: number | bigint): GgufValue => ({ type: "u64", value }),
  i64: (value: number | bigint): GgufValue => ({ type: "i64", value }),
  f32: (value: number): GgufValue => ({ type: "f32", value }),
  f64: (value: number): GgufValue => ({ type: "f64", value }),
  bool: (value: boolean): GgufValue => ({ type: "bool", value }),
  string: (value: string): GgufValue => ({ type: "string", value }),
  array: (itemType: GgufScalarTypeName, values: readonly ScalarValue[]): GgufValue => ({ type: "array", itemType, values }),
};

export interface GgufTensor {
  name: string;
  /** Dimensions in ggml order (`dims[0]` is the contiguous one). */
  dims: readonly number[];
  /** Storage type; F32 data is converted to F16 on write when asked. */
  type: GgmlTensorType;
  data: Float32Array;
}

export interface GgufModel {
  /** Key/value pairs in file order. `general.alignment`, when present, sets the alignment. */
  metadata: ReadonlyArray<readonly [string, GgufValue]>;
  tensors: readonly GgufTensor[];
}

/** Growable little-endian byte sink. */
class ByteSink {
  private buf = Buffer.alloc(1 << 16);
  length = 0;

  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = Buffer.alloc(size);
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }
  u8(v: number) { this.reserve(1); this.buf.writeUInt8(v, this.length); this.length += 1; }
  i8(v: number) { this.reserve(1); this.buf.writeInt8(v, this.length); this.length += 1; }
  u16(v: number) { this.reserve(2); this.buf.writeUInt16LE(v, this.length); this.length += 2; }
  i16(v: number) { this.reserve(2); this.buf.writeInt16LE(v, this.length); this.length += 2; }
  u32(v: number) { this.reserve(4); this.buf.writeUInt32LE(v, this.length); this.length += 4; }
  i32(v: number) { this.reserve(4); this.buf.writeInt32LE(v, this.length); this.length += 4; }
  u64(v: number | bigint) { this.reserve(8); this.buf.writeBigUInt64LE(BigInt(v), this.length); this.length += 8; }
  i64(v: number | bigint) { this.reserve(8); this.buf.writeBigInt64LE(BigInt(v), this.length); this.length += 8; }
  f32(v: number) { this.reserve(4); this.buf.writeFloatLE(v, this.length); this.length += 4; }
  f64(v: number) { this.reserve(8); this.buf.writeDoubleLE(v, this.length); this.length += 8; }
  bytes(b: Uint8Array) { this.reserve(b.length); this.buf.set(b, this.length); this.length += b.length; }
  string(s: string) { const b = Buffer.from(s, "utf8"); this.u64(b.length); this.bytes(b); }
  padTo(alignment: number) { const pad = (alignment - (this.length % alignment)) % alignment; this.reserve(pad); this.buf.fill(0, this.length, this.length + pad); this.length += pad; }
  toBuffer(): Buffer { return this.buf.subarray(0, this.length); }
}

function writeScalar(sink: ByteSink, type: GgufScalarTypeName, value: ScalarValue): void {
  switch (type) {
    case "string":
      if (typeof value !== "string") throw new TypeError(`GGUF string value expected, got ${typeof value}`);
      return sink.string(value);
    case "bool":
      return sink.u8(value ? 1 : 0);
    case "u64":
    case "i64":
      if (typeof value !== "number" && typeof value !== "bigint") throw new TypeError(`GGUF ${type} value must be a number`);
      return type === "u64" ? sink.u64(value) : sink.i64(value);
    default: {
      if (typeof value !== "number") throw new TypeError(`GGUF ${type} value must be a number`);
      sink[type](value);
    }
  }
}

function writeValue(sink: ByteSink, value: GgufValue): void {
  sink.u32(GgufValueType[value.type]);
  if (value.type === "array") {
    sink.u32(GgufValueType[value.itemType]);
    sink.u64(value.values.length);
    for (const item of value.values) writeScalar(sink, value.itemType, item);
  } else {
    writeScalar(sink, value.type, value.value);
  }
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** IEEE 754 binary32 → binary16 bits, round to nearest even (overflow → ±inf, NaN kept). */
export function float32ToFloat16Bits(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - e;
    let half = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && (half & 1))) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1))) half++; // may carry into the exponent: still correct
  return sign | half;
}

function tensorBytes(t: GgufTensor): Uint8Array {
  const count = t.dims.reduce((a, b) => a * b, 1);
  if (t.data.length !== count) throw new RangeError(`tensor ${t.name}: ${t.data.length} values for dims [${t.dims.join(", ")}]`);
  if (t.type === GgmlTensorType.F32) {
    const out = Buffer.alloc(count * 4);
    for (let i = 0; i < count; i++) out.writeFloatLE(t.data[i]!, i * 4);
    return out;
  }
  const out = Buffer.alloc(count * 2);
  for (let i = 0; i < count; i++) out.writeUInt16LE(float32ToFloat16Bits(t.data[i]!), i * 2);
  return out;
}

function alignmentOf(model: GgufModel): number {
  const entry = model.metadata.find(([key]) => key === "general.alignment");
  if (!entry) return GGUF_DEFAULT_ALIGNMENT;
  const v = entry[1];
  if (v.type !== "u32" || typeof v.value !== "number" || v.value <= 0 || v.value % 8 !== 0) {
    throw new RangeError("general.alignment must be a u32 multiple of 8");
  }
  return v.value;
}

/** Serialises a model to GGUF v3 bytes. */
export function serializeGguf(model: GgufModel): Buffer {
  const alignment = alignmentOf(model);
  const header = new ByteSink();
  header.u32(GGUF_MAGIC);
  header.u32(GGUF_VERSION);
  header.u64(model.tensors.length);
  header.u64(model.metadata.length);
  const seen = new Set<string>();
  for (const [key, value] of model.metadata) {
    if (seen.has(key)) throw new Error(`duplicate GGUF key ${key}`);
    seen.add(key);
    header.string(key);
    writeValue(header, value);
  }
  const datas = model.tensors.map(tensorBytes);
  let offset = 0;
  model.tensors.forEach((t, i) => {
    header.string(t.name);
    header.u32(t.dims.length);
    for (const d of t.dims) header.u64(d);
    header.u32(t.type);
    header.u64(offset);
    offset += datas[i]!.length;
    offset += (alignment - (offset % alignment)) % alignment;
  });
  header.padTo(alignment);
  const out = Buffer.alloc(header.length + offset);
  header.toBuffer().copy(out, 0);
  let at = header.length;
  for (const data of datas) {
    out.set(data, at);
    at += data.length;
    at += (alignment - (at % alignment)) % alignment;
  }
  return out;
}

/** Writes a model to `path` (synchronously; the caller picks the path, e.g. a temp file to rename). */
export function writeGgufFile(path: string, model: GgufModel): number {
  const bytes = serializeGguf(model);
  const fd = openSync(path, "w");
  try {
    let written = 0;
    while (written < bytes.length) written += writeSync(fd, bytes, written, bytes.length - written);
  } finally {
    closeSync(fd);
  }
  return bytes.length;
}
