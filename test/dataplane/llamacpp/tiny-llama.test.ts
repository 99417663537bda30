import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readGgufFileInfo, type Llama } from "node-llama-cpp";
import { float32ToFloat16Bits, gguf, GgmlTensorType, serializeGguf, writeGgufFile } from "../../../dataplane/engines/llamacpp/gguf-writer";
import { buildTinyLlama, ensureTinyModel, gpt2ByteToUnicode, tinyLlamaHash, TINY_BOS_TOKEN, TINY_EOS_TOKEN } from "../../../dataplane/engines/llamacpp/tiny-llama";
import { getLlamaRuntime } from "../../../dataplane/engines/llamacpp/runtime";

/** The small config of llamacpp.md: ~0.9 MB, generated in ~20 ms. */
const small = { nEmbd: 128, nLayer: 2, nHead: 4, nHeadKv: 2, nFf: 384, nCtx: 2048 };

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "switchyard-gguf-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("gguf writer", () => {
  it("converts float32 to float16 bits with round-to-nearest-even", () => {
    expect(float32ToFloat16Bits(0)).toBe(0);
    expect(float32ToFloat16Bits(-0)).toBe(0x8000);
    expect(float32ToFloat16Bits(1)).toBe(0x3c00);
    expect(float32ToFloat16Bits(-2)).toBe(0xc000);
    expect(float32ToFloat16Bits(0.5)).toBe(0x3800);
    expect(float32ToFloat16Bits(65504)).toBe(0x7bff);
    expect(float32ToFloat16Bits(1e6)).toBe(0x7c00);
    expect(float32ToFloat16Bits(Number.NaN) & 0x7c00).toBe(0x7c00);
    expect(float32ToFloat16Bits(2 ** -24)).toBe(1); // smallest subnormal
    expect(float32ToFloat16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie → even
    expect(float32ToFloat16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie → even (up)
  });

  it("writes a file node-llama-cpp's GGUF reader parses, with aligned tensor data", async () => {
    const path = join(dir, "plain.gguf");
    const data = Float32Array.from([1, -2, 0.5, 3]);
    writeGgufFile(path, {
      metadata: [
        ["general.architecture", gguf.string("llama")],
        ["general.alignment", gguf.u32(32)],
        ["test.flag", gguf.bool(true)],
        ["test.ratio", gguf.f32(0.25)],
        ["test.big", gguf.u64(2n ** 40n)],
        ["test.list", gguf.array("i32", [1, -1, 7])],
        ["test.names", gguf.array("string", ["a", "ß"])],
      ],
      tensors: [
        { name: "a.weight", dims: [4], type: GgmlTensorType.F32, data },
        { name: "b.weight", dims: [2, 2], type: GgmlTensorType.F16, data },
      ],
    });
    const info = await readGgufFileInfo(path, { logWarnings: false });
    expect(info.version).toBe(3);
    expect(Number(info.tensorCount)).toBe(2);
    const meta = info.metadata as unknown as { test: Record<string, unknown> };
    expect(meta.test.flag).toBe(true);
    expect(meta.test.ratio).toBeCloseTo(0.25);
    expect(BigInt(meta.test.big as bigint)).toBe(2n ** 40n);
    expect(meta.test.list).toEqual([1, -1, 7]);
    expect(meta.test.names).toEqual(["a", "ß"]);
    const [a, b] = info.fullTensorInfo!;
    expect(a!.dimensions.map(Number)).toEqual([4]);
    expect(b!.dimensions.map(Number)).toEqual([2, 2]);
    expect(Number(b!.offset) % 32).toBe(0);

    expect(info.infoEndOffset! % 32).toBe(0);
    const bytes = readFileSync(path);
    expect(bytes.readFloatLE(Number(a!.fileOffset) + 4)).toBe(-2);
    expect(bytes.readUInt16LE(Number(b!.fileOffset))).toBe(0x3c00);
    expect(bytes.readUInt16LE(Number(b!.fileOffset) + 2)).toBe(0xc000);
  });

  it("rejects a tensor whose data does not match its dims", () => {
    expect(() => serializeGguf({ metadata: [], tensors: [{ name: "x", dims: [3], type: GgmlTensorType.F32, data: new Float32Array(2) }] })).toThrow(/dims/);
  });
});

describe("tiny llama", () => {
  let llama: Llama;
  beforeAll(async () => {
    llama = await getLlamaRuntime();
  });

  it("is byte-for-byte reproducible and keyed by its options", () => {
    expect(buildTinyLlama({ ...small, seed: 3 }).equals(buildTinyLlama({ ...small, seed: 3 }))).toBe(true);
    expect(buildTinyLlama({ ...small, seed: 3 }).equals(buildTinyLlama({ ...small, seed: 4 }))).toBe(false);
    expect(tinyLlamaHash({ ...small, seed: 3 })).not.toBe(tinyLlamaHash({ ...small, seed: 4 }));
    expect(tinyLlamaHash()).toBe(tinyLlamaHash({ nEmbd: 256 })); // defaults are part of the key
  });

  it("spells the 256 byte tokens with GPT-2's bytes_to_unicode", () => {
    const map = gpt2ByteToUnicode();
    expect(new Set(map).size).toBe(256);
    expect(map[0x20]).toBe("Ġ");
    expect(map[0x0a]).toBe("Ċ");
    expect(map[0x41]).toBe("A");
  });

  it("writes once, atomically, and is parsed and loaded by llama.cpp", async () => {
    const path = await ensureTinyModel(dir, small);
    const again = await ensureTinyModel(dir, small);
    expect(again).toBe(path);
    expect(readdirSync(dir).filter((f) => f.endsWith(".tmp"))).toEqual([]);
    expect(path).toMatch(/tiny-llama-[0-9a-f]{16}\.gguf$/);

    const info = await readGgufFileInfo(path, { logWarnings: false });
    const meta = info.metadata as unknown as { llama: Record<string, unknown>; tokenizer: { ggml: Record<string, unknown> } };
    expect(meta.llama.context_length).toBe(2048);
    expect(meta.llama.feed_forward_length).toBe(384);
    expect(meta.tokenizer.ggml.model).toBe("gpt2");
    expect(meta.tokenizer.ggml.merges).toEqual([]);
    expect((meta.tokenizer.ggml.tokens as string[]).length).toBe(258);
    expect(Number(info.tensorCount)).toBe(3 + 9 * small.nLayer);

    const model = await llama.loadModel({ modelPath: path });
    try {
      expect(model.tokens.bos).toBe(TINY_BOS_TOKEN);
      expect(model.tokens.eos).toBe(TINY_EOS_TOKEN);
      expect(model.isEogToken(TINY_EOS_TOKEN as never)).toBe(true);
      const text = "Hello, world! é€\n";
      const tokens = model.tokenize(text);
      expect(tokens).toEqual([...Buffer.from(text)]); // one byte, one token
      expect(model.detokenize(tokens)).toBe(text);
      expect(model.tokenize("<|endoftext|>", true)).toEqual([TINY_EOS_TOKEN]);

      const context = await model.createContext({ contextSize: 512, sequences: 1, threads: 1 });
      const seq = context.getSequence();
      const out: number[] = [];
      for await (const t of seq.evaluate(model.tokenize("abc"), { temperature: 0, yieldEogToken: true })) {
        out.push(t);
        if (out.length === 5) break;
      }
      expect(out).toHaveLength(5);
      await context.dispose();
    } finally {
      await model.dispose();
    }
  });

});
