// GGUF interoperability: a file written by tinyserve's GgufWriter (tests/tools/write_test_gguf.cc)
// must read back, through the independent @huggingface/gguf parser, with the same keys, values,
// tensor names, shapes, types and data offsets.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { gguf, GGUFValueType } from "@huggingface/gguf";

const buildDir = process.env.TINYSERVE_BUILD_DIR;
const tool = path.join(buildDir ?? "", "tests", "tool_write_test_gguf");

// ggml type ids (ggml.h).
const GGML = { F32: 0, F16: 1, Q4_0: 2, Q5_0: 6, Q8_0: 8, Q4_K: 12, Q6_K: 14, BF16: 30 };
// [name, ggml type, ne (innermost first), bytes]
const TENSORS = [
  ["token_embd.weight", GGML.F32, [8n, 4n], 4 * 8 * 4],
  ["blk.0.attn_q.weight", GGML.Q8_0, [64n, 2n], 2 * 2 * 34],
  ["blk.0.attn_q.bias", GGML.BF16, [2n, 3n], 3 * 2 * 2],
  ["blk.0.ffn_down.weight", GGML.Q4_K, [256n, 1n], 144],
  ["blk.0.ffn_up.weight", GGML.Q6_K, [256n, 2n], 2 * 210],
  ["blk.0.ffn_gate.weight", GGML.Q5_0, [32n, 3n], 3 * 22],
  ["blk.0.attn_k.weight", GGML.Q4_0, [32n, 1n], 18],
  ["output_norm.weight", GGML.F16, [8n], 16],
];

function writeFile() {
  assert.ok(buildDir, "TINYSERVE_BUILD_DIR must be set");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tinyserve-gguf-"));
  const file = path.join(dir, "interop.gguf");
  execFileSync(tool, [file]);
  return { dir, file };
}

test("@huggingface/gguf reads every metadata value tinyserve wrote", async () => {
  const { dir, file } = writeFile();
  try {
    const { metadata, typedMetadata } = await gguf(file, { allowLocalFile: true, typedMetadata: true });
    assert.equal(metadata.version, 3);
    assert.equal(metadata.tensor_count, BigInt(TENSORS.length));
    assert.equal(metadata["general.architecture"], "qwen2");
    assert.equal(metadata["general.name"], "tinyserve interop");
    assert.equal(metadata["general.alignment"], 64);
    assert.equal(metadata["qwen2.block_count"], 1);
    assert.equal(metadata["qwen2.context_length"], 32768);
    assert.equal(metadata["qwen2.rope.freq_base"], 1000000);
    assert.equal(metadata["qwen2.attention.layer_norm_rms_epsilon"], Math.fround(1e-6));
    assert.equal(metadata["test.uint8"], 200);
    assert.equal(metadata["test.int8"], -100);
    assert.equal(metadata["test.uint16"], 60000);
    assert.equal(metadata["test.int16"], -30000);
    assert.equal(metadata["test.uint32"], 4000000000);
    assert.equal(metadata["test.int32"], -2000000000);
    assert.equal(metadata["test.uint64"], 18000000000000000000n);
    assert.equal(metadata["test.int64"], -9000000000000000000n);
    assert.equal(metadata["test.float32"], 0.15625);
    assert.equal(metadata["test.float64"], 3.141592653589793);
    assert.equal(metadata["test.bool"], true);
    assert.equal(metadata["test.string"], "héllo 你好");
    assert.deepEqual(metadata["test.string_array"], ["a", "", "Ġc"]);
    assert.deepEqual(metadata["test.int32_array"], [1, -2, 3]);
    assert.deepEqual(metadata["test.float32_array"], [0.5, -1.25]);
    assert.deepEqual(metadata["test.nested_array"], [[1, -2, 3], [4], ["x", "y"]]);

    const expectedTypes = {
      "general.alignment": GGUFValueType.UINT32,
      "test.uint8": GGUFValueType.UINT8,
      "test.int8": GGUFValueType.INT8,
      "test.uint16": GGUFValueType.UINT16,
      "test.int16": GGUFValueType.INT16,
      "test.uint32": GGUFValueType.UINT32,
      "test.int32": GGUFValueType.INT32,
      "test.uint64": GGUFValueType.UINT64,
      "test.int64": GGUFValueType.INT64,
      "test.float32": GGUFValueType.FLOAT32,
      "test.float64": GGUFValueType.FLOAT64,
      "test.bool": GGUFValueType.BOOL,
      "test.string": GGUFValueType.STRING,
      "test.string_array": GGUFValueType.ARRAY,
      "test.nested_array": GGUFValueType.ARRAY,
    };
    for (const [key, type] of Object.entries(expectedTypes)) {
      assert.equal(typedMetadata[key].type, type, key);
    }
    assert.equal(typedMetadata["test.string_array"].subType, GGUFValueType.STRING);
    assert.equal(typedMetadata["test.int32_array"].subType, GGUFValueType.INT32);
    assert.equal(typedMetadata["test.nested_array"].subType, GGUFValueType.ARRAY);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("@huggingface/gguf finds every tensor's name, shape, type and data", async () => {
  const { dir, file } = writeFile();
  try {
    const { tensorInfos, tensorDataOffset } = await gguf(file, { allowLocalFile: true });
    assert.equal(tensorInfos.length, TENSORS.length);
    assert.equal(tensorDataOffset % 64n, 0n);
    const bytes = fs.readFileSync(file);
    TENSORS.forEach(([name, dtype, shape, size], k) => {
      const info = tensorInfos[k];
      assert.equal(info.name, name);
      assert.equal(info.dtype, dtype, name);
      assert.equal(info.n_dims, shape.length, name);
      assert.deepEqual(info.shape, shape, name);
      assert.equal(info.offset % 64n, 0n, name);
      const start = Number(tensorDataOffset + info.offset);
      assert.ok(start + size <= bytes.length, `${name} runs past the end`);
      for (let j = 0; j < size; j++) {
        if (bytes[start + j] !== ((7 * j + 13 * k) & 255)) {
          assert.fail(`${name}: byte ${j} is ${bytes[start + j]}`);
        }
      }
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
