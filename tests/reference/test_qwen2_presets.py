"""The Qwen2.5 family presets against the NumPy model of test_qwen2_numpy.py.

For each of qwen2.5-1.5b, qwen2.5-3b, qwen2.5-7b and qwen2-0.5b: `tinyserve dummy --num-layers 1`
writes the preset at its exact widths (hidden, heads, KV heads, ffn, vocab, tied or not) as a
bf16 safetensors directory; the config must carry the published values; tinyserve's logits at
a few positions match the NumPy model within the tolerance of test_qwen2_numpy; and
`tinyserve generate` runs on it as stored and with --quantization q8_0.
One layer keeps time and memory small (the 7B embedding and lm_head are still full size).
"""
# ctest: no_asan  (multi-GB float64-free NumPy work; the C++ paths are covered under ASan)
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from test_qwen2_numpy import BIN, TOOL, NumpyQwen2, rel_error, run_tool  # noqa: E402

# Published config.json values: hidden, ffn, heads, kv heads, vocab, tied.
PRESETS = {
    "qwen2.5-1.5b": (1536, 8960, 12, 2, 151936, True),
    "qwen2.5-3b": (2048, 11008, 16, 2, 151936, True),
    "qwen2.5-7b": (3584, 18944, 28, 4, 152064, False),
    "qwen2-0.5b": (896, 4864, 14, 2, 151936, True),
}
# bf16 weights read exactly by both sides; f32 vs f64 arithmetic only: the logits come from the
# f32 FMA path (TINYSERVE_ISA=avx2). The bf16 dot product (AVX-512 BF16) rounds activations to
# bf16, which test_qwen2_numpy checks against the oracle rounding them too; at these widths
# near-tie roundings that differ between f32 and f64 inputs are too frequent for 1e-3.
TOLERANCE = 1e-3


def read_bf16_safetensors(path):
    """{name: float32 array}: bf16 widened exactly, kept in float32 to halve the memory."""
    with open(path, "rb") as f:
        header_len = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(header_len))
    base = 8 + header_len
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        assert info["dtype"] == "BF16", info["dtype"]
        bits = raw[base + begin:base + end].view("<u2")
        out[name] = (bits.astype(np.uint32) << 16).view(np.float32).reshape(info["shape"])
    return out


class ChunkedTranspose:
    """W.T for `x @ W.T` computed in row chunks of W, so a [vocab, hidden] float32 matrix is
    never widened to float64 all at once."""
    __array_ufunc__ = None

    def __init__(self, w):
        self.w = w

    def __rmatmul__(self, x):
        return np.concatenate([x @ self.w[i:i + 8192].astype(np.float64).T
                               for i in range(0, self.w.shape[0], 8192)], axis=-1)


class LmHead:
    def __init__(self, w):
        self.w, self.shape, self.T = w, w.shape, ChunkedTranspose(w)


def numpy_model(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    m = NumpyQwen2.__new__(NumpyQwen2)
    m.w = read_bf16_safetensors(os.path.join(model_dir, "model.safetensors"))
    m.hidden, m.n_layers = cfg["hidden_size"], cfg["num_hidden_layers"]
    m.n_heads, m.n_kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    m.head_dim = m.hidden // m.n_heads
    m.theta, m.eps = cfg["rope_theta"], cfg["rms_norm_eps"]
    m.lm_head = LmHead(m.w["model.embed_tokens.weight"] if cfg["tie_word_embeddings"]
                       else m.w["lm_head.weight"])
    return m, cfg


class Qwen2PresetsTest(unittest.TestCase):
    def setUp(self):
        if not BIN or not TOOL or not os.path.exists(TOOL):
            self.skipTest("TINYSERVE_BIN / TINYSERVE_BUILD_DIR not set")
        self.tmp = tempfile.mkdtemp(prefix="tinyserve_presets_")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_presets(self):
        for preset, (hidden, ffn, heads, kv, vocab, tied) in PRESETS.items():
            with self.subTest(preset=preset):
                d = os.path.join(self.tmp, preset)
                subprocess.run([BIN, "dummy", "--preset", preset, "--num-layers", "1",
                                "--dtype", "bf16", "--format", "safetensors", "--seed", "3", d],
                               check=True, stdout=subprocess.DEVNULL)
                ref, cfg = numpy_model(d)
                self.assertEqual((cfg["hidden_size"], cfg["intermediate_size"],
                                  cfg["num_attention_heads"], cfg["num_key_value_heads"],
                                  cfg["vocab_size"], cfg["tie_word_embeddings"],
                                  cfg["num_hidden_layers"]),
                                 (hidden, ffn, heads, kv, vocab, tied, 1))
                self.assertEqual("lm_head.weight" in ref.w, not tied)
                prompt = [int(t) for t in np.random.default_rng(1).integers(0, 151000, size=5)]
                want = ref.logits(prompt)
                (got,) = run_tool(self.tmp, d, [[{"seq": 0, "tokens": prompt}]], preset,
                                  isa="avx2")
                for t in range(len(prompt)):
                    err = rel_error(got[t], want[t])
                    self.assertLessEqual(err, TOLERANCE, f"{preset} position {t}: {err:.3g}")
                del ref, want, got
                for extra in ([], ["--quantization", "q8_0"]):
                    proc = subprocess.run([BIN, "generate", "--model", d, "--prompt-ids",
                                           ",".join(map(str, prompt)), "--max-tokens", "3",
                                           "--temperature", "0", "--ignore-eos"] + extra,
                                          capture_output=True, text=True, timeout=300)
                    self.assertEqual(proc.returncode, 0, proc.stderr)
                shutil.rmtree(d)


class QuantizationAtLoadTest(unittest.TestCase):
    """--quantization on float weights: the dummy tiny model (f32, as safetensors and as
    dummy:tiny in memory) quantized at load stays as close to the f32 NumPy model as the
    GGUF files of those types in test_qwen2_numpy (same bounds, same reasoning)."""

    def test_quantized_at_load_close_to_f32(self):
        if not BIN or not TOOL or not os.path.exists(TOOL):
            self.skipTest("TINYSERVE_BIN / TINYSERVE_BUILD_DIR not set")
        tmp = tempfile.mkdtemp(prefix="tinyserve_quant_")
        try:
            d = os.path.join(tmp, "tiny")
            subprocess.run([BIN, "dummy", "--preset", "tiny", "--dtype", "f32", "--format",
                            "safetensors", "--seed", "5", d], check=True,
                           stdout=subprocess.DEVNULL)
            ref = NumpyQwen2(d)
            prompt = [int(t) for t in np.random.default_rng(0).integers(0, 151000, size=16)]
            want = ref.logits(prompt)
            for quant, bound in {"q8_0": 0.03, "q4_k": 0.2, "q4_0": 0.3}.items():
                for model in (d, "dummy:tiny"):
                    spec = [[{"seq": 0, "tokens": prompt}]]
                    (got,) = run_tool_quantized(tmp, model, spec, quant)
                    err = rel_error(got, want)
                    print(f"--quantization {quant} {model}: relative error {err:.4f} "
                          f"(bound {bound})", file=sys.stderr)
                    self.assertLessEqual(err, bound, f"{quant} {model}")
                    self.assertGreater(err, 0, "quantization changed nothing")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def run_tool_quantized(tmp, model, steps, quantization):
    out_dir = os.path.join(tmp, "out_" + quantization)
    os.makedirs(out_dir, exist_ok=True)
    spec = {"model": model, "seed": 5, "quantization": quantization, "block_size": 4,
            "dtype": "f32" if model.startswith("dummy:") else "",
            "num_blocks": 64, "threads": 2, "steps": steps}
    spec_path = os.path.join(tmp, "spec.json")
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    subprocess.run([TOOL, spec_path, out_dir], check=True)
    return [np.load(os.path.join(out_dir, "step_0.npy"))]


if __name__ == "__main__":
    unittest.main()
