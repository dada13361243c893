"""Accuracy of the int8 KV cache (--kv-cache-dtype int8), teacher-forced: the same token sequence
is fed to the model with its keys and values stored in int8 (one binary16 scale per token and KV
head) and in f16, and each position's next-token distribution is compared:
  - tinyserve with an int8 cache against the NumPy reference (test_qwen2_numpy.NumpyQwen2) whose
    keys and values are rounded to f16, on the dummy `tiny` model, 600 positions;
  - tinyserve int8 against tinyserve f16 on the dummy Qwen2.5-0.5B (q8_0 weights), 560 positions.
Top-1 is compared at the positions whose f16 top two are more than 0.01 nats apart (near-ties
may flip on any rounding); the largest log-probability difference of the f16 top-1 token is
printed (the issue asks for it in the note), with a loose bound that catches a broken scale or
layout (those give differences of several nats).
The tiny model must agree at >= 99%. The dummy Qwen2.5-0.5B (random weights, 24 layers) is
chaotic: rounding its cache from f32 to f16 alone flips ~4% of the top-1 tokens (measured here
as well, 96.3% with this seed), so there int8 vs f16 must agree at least as well as f16 vs f32
does, less one point.
"""
# ctest: no_asan  (the kernels' int8 paths run under ASan in kernels_test)
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_qwen2_numpy import BIN, TOOL, NumpyQwen2, run_dummy  # noqa: E402

NEAR_TIE_NATS = 0.01
MIN_AGREEMENT = 0.99


def log_softmax(x):
    x = x.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


class F16KvNumpyQwen2(NumpyQwen2):
    """The reference with k (after RoPE) and v rounded to f16, as an f16 KV cache stores them;
    returns the final hidden states so logits can be formed a few rows at a time."""

    def final_hidden(self, tokens):
        tokens = np.asarray(tokens)
        T, d = len(tokens), self.head_dim
        positions = np.arange(T, dtype=np.float64)
        x = self.w["model.embed_tokens.weight"][tokens]
        causal = np.triu(np.full((T, T), -np.inf), k=1)
        f16 = lambda a: a.astype(np.float32).astype(np.float16).astype(np.float64)  # noqa: E731
        for l in range(self.n_layers):
            p = f"model.layers.{l}."
            n = self.rms_norm(x, self.w[p + "input_layernorm.weight"])
            q = n @ self.w[p + "self_attn.q_proj.weight"].T + self.w[p + "self_attn.q_proj.bias"]
            k = n @ self.w[p + "self_attn.k_proj.weight"].T + self.w[p + "self_attn.k_proj.bias"]
            v = n @ self.w[p + "self_attn.v_proj.weight"].T + self.w[p + "self_attn.v_proj.bias"]
            q = self.rope(q.reshape(T, self.n_heads, d), positions)
            k = f16(self.rope(k.reshape(T, self.n_kv, d), positions))
            v = f16(v.reshape(T, self.n_kv, d))
            group = self.n_heads // self.n_kv
            out = np.empty((T, self.n_heads, d))
            for h in range(self.n_heads):
                scores = q[:, h, :] @ k[:, h // group, :].T / np.sqrt(d) + causal
                scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
                out[:, h, :] = (scores / scores.sum(axis=-1, keepdims=True)) @ v[:, h // group, :]
            x = x + out.reshape(T, -1) @ self.w[p + "self_attn.o_proj.weight"].T
            m = self.rms_norm(x, self.w[p + "post_attention_layernorm.weight"])
            gate = m @ self.w[p + "mlp.gate_proj.weight"].T
            up = m @ self.w[p + "mlp.up_proj.weight"].T
            x = x + (gate / (1.0 + np.exp(-gate)) * up) @ self.w[p + "mlp.down_proj.weight"].T
        return self.rms_norm(x, self.w["model.norm.weight"])


def run_tool(tmp, name, model, tokens, kv_dtypes, dtype=""):
    """{kv dtype: logits of every position of `tokens` in one prefill call, [T, vocab] float32};
    one process (one model load) for all the cache types."""
    out_dir = os.path.join(tmp, name)
    os.makedirs(out_dir, exist_ok=True)
    spec = {"model": model, "dtype": dtype, "block_size": 16,
            "num_blocks": (len(tokens) + 15) // 16 + 4, "shuffle_seed": 5, "threads": 2,
            "kv_dtypes": kv_dtypes, "steps": [[{"seq": 0, "tokens": tokens}]]}
    spec_path = os.path.join(tmp, name + ".json")
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    subprocess.run([TOOL, spec_path, out_dir], check=True)
    return {kv: np.load(os.path.join(out_dir, kv, "step_0.npy"), mmap_mode="r")
            for kv in kv_dtypes}


class Agreement:
    """Accumulates the comparison of int8-cache rows against f16-cache rows."""

    def __init__(self):
        self.counted = self.agree = self.near_ties = 0
        self.max_logprob_diff = 0.0

    def add(self, lp_int8, lp_f16):
        for a, b in zip(lp_int8, lp_f16):
            top2 = np.partition(b, -2)[-2:]
            best = int(np.argmax(b))
            self.max_logprob_diff = max(self.max_logprob_diff, abs(a[best] - b[best]))
            if top2[1] - top2[0] <= NEAR_TIE_NATS:
                self.near_ties += 1
                continue
            self.counted += 1
            self.agree += int(np.argmax(a) == best)

    def report(self, what):
        rate = self.agree / max(self.counted, 1)
        print(f"{what}: top-1 agreement {self.agree}/{self.counted} = {100 * rate:.2f}% "
              f"({self.near_ties} near-ties excluded); largest log-prob difference of the "
              f"f16 top-1 token {self.max_logprob_diff:.4f} nats", file=sys.stderr)
        return rate


class KvInt8AccuracyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not BIN or not TOOL or not os.path.exists(TOOL):
            raise unittest.SkipTest("TINYSERVE_BIN / TINYSERVE_BUILD_DIR not set")
        cls.tmp = tempfile.mkdtemp(prefix="tinyserve_kv_int8_")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_tiny_model_int8_cache_against_numpy_f16_cache(self):
        st = os.path.join(self.tmp, "tiny")
        run_dummy(st, "f32", "safetensors")
        ref = F16KvNumpyQwen2(st)
        vocab = ref.lm_head.shape[0]
        tokens = [int(t) for t in np.random.default_rng(7).integers(0, vocab, size=600)]
        got = run_tool(self.tmp, "tiny", st, tokens, ["i8"])["i8"]
        hidden = ref.final_hidden(tokens)
        acc = Agreement()
        for r in range(0, len(tokens), 50):
            want = hidden[r:r + 50] @ ref.lm_head.T
            acc.add(log_softmax(np.asarray(got[r:r + 50])), log_softmax(want))
        rate = acc.report("tiny, int8 cache vs NumPy f16 cache")
        self.assertGreaterEqual(acc.counted, 500)
        self.assertGreaterEqual(rate, MIN_AGREEMENT)
        self.assertLess(acc.max_logprob_diff, 0.5)

    def test_qwen25_05b_int8_cache_against_f16_cache(self):
        model = "dummy:qwen2.5-0.5b"
        tokens = [int(t) for t in np.random.default_rng(8).integers(0, 151936, size=560)]
        logits = run_tool(self.tmp, "q05", model, tokens, ["i8", "f16", "f32"], dtype="q8_0")

        def compare(a, b, what):
            acc = Agreement()
            for r in range(0, len(tokens), 40):
                acc.add(log_softmax(np.asarray(logits[a][r:r + 40])),
                        log_softmax(np.asarray(logits[b][r:r + 40])))
            return acc, acc.report("Qwen2.5-0.5B dummy q8_0, " + what)

        acc, rate = compare("i8", "f16", "int8 cache vs f16 cache")
        _, f16_rate = compare("f16", "f32", "f16 cache vs f32 cache")
        self.assertGreaterEqual(acc.counted, 500)
        self.assertGreaterEqual(rate, f16_rate - 0.01)
        self.assertLess(acc.max_logprob_diff, 0.5)


if __name__ == "__main__":
    unittest.main()
