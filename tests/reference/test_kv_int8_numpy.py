"""Accuracy of the int8 KV cache (--kv-cache-dtype int8), teacher-forced: one token sequence is
fed to the model with its keys and values stored in int8 (one binary16 scale per token and KV
head; attention rounds each query head row to 16 bits, kernels/kv_quant.h) and each
position's next-token distribution is compared:
  - tinyserve int8 against the NumPy reference (test_qwen2_numpy.NumpyQwen2) with an f16 cache,
    on the dummy `tiny` model, 600 positions: top-1 agreement >= 99% (the issue's criterion);
  - tinyserve int8 against NumPy running the int8 format itself (keys, values and queries
    rounded as kv_quant.h rounds them, everything else in double), on Qwen2.5-0.5B's own shapes
    (hidden 896, 14 heads, 2 KV heads, head_dim 64) cut to 2 layers, 560 positions: >= 99% and
    log-probabilities within 0.01 nats: the kernels compute what the format stores;
  - the format's own cost there, the issue's number: tinyserve int8 against tinyserve f16 over
    six sequences (~3,200 positions, so that the criterion sits a few standard errors from the
    measured rate rather than one): >= 99% and within 0.1 nats;
  - tinyserve int8 against tinyserve f16 on the full 24-layer dummy Qwen2.5-0.5B (q8_0
    weights), 560 positions, as a check for gross errors that only deep layers or long rows
    would show (a wrong scale or layer offset flips most tokens and moves log-probabilities by
    nats). Its random weights make it chaotic: rounding the cache from f32 to f16 alone flips
    ~4% of the top-1 tokens, and any float-rounding change in the int8 kernels draws another
    ~95% (94-96% measured): a criterion there finer than a gross-error bound passes or fails by
    the draw, so the fine criteria live on the two models above, where nothing is chaotic.
Top-1 is compared at the positions whose reference top two are more than 0.01 nats apart
(near-ties may flip on any rounding); the largest log-probability difference of the
reference's top-1 token is printed and bounded.
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


def to_f16(a):
    return a.astype(np.float32).astype(np.float16).astype(np.float64)


def to_int8_rows(a, scale):
    """a's last axis rounded as kv_quant.h rounds a row: q = round(a / scale) (ties to even,
    clamped to +-127) times scale; a row whose scale is 0 stores zeros."""
    safe = np.where(scale > 0, scale, 1.0)
    return np.where(scale > 0, np.clip(np.rint(a / safe), -127, 127) * scale, 0.0)


class F16KvNumpyQwen2(NumpyQwen2):
    """The reference with k (after RoPE) and v rounded to f16, as an f16 KV cache stores them;
    returns the final hidden states so logits can be formed a few rows at a time. Subclasses
    change how the cache stores a row (cached) and how attention reads a query (query)."""

    def cached(self, x):  # x: [T, kv heads, head_dim]
        return to_f16(x)

    def query(self, q):  # q: [T, heads, head_dim]
        return q

    def final_hidden(self, tokens):
        tokens = np.asarray(tokens)
        T, d = len(tokens), self.head_dim
        positions = np.arange(T, dtype=np.float64)
        x = self.w["model.embed_tokens.weight"][tokens]
        causal = np.triu(np.full((T, T), -np.inf), k=1)
        for l in range(self.n_layers):
            p = f"model.layers.{l}."
            n = self.rms_norm(x, self.w[p + "input_layernorm.weight"])
            q = n @ self.w[p + "self_attn.q_proj.weight"].T + self.w[p + "self_attn.q_proj.bias"]
            k = n @ self.w[p + "self_attn.k_proj.weight"].T + self.w[p + "self_attn.k_proj.bias"]
            v = n @ self.w[p + "self_attn.v_proj.weight"].T + self.w[p + "self_attn.v_proj.bias"]
            q = self.query(self.rope(q.reshape(T, self.n_heads, d), positions))
            k = self.cached(self.rope(k.reshape(T, self.n_kv, d), positions))
            v = self.cached(v.reshape(T, self.n_kv, d))
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


class Int8KvNumpyQwen2(F16KvNumpyQwen2):
    """The int8 format itself, written from kv_quant.h's description: a cached row (one token,
    one KV head) as int8 times a binary16 scale max|x| / 127; a query head row as integers of
    +-127 * 256 (16 bits) times an f32 scale max|q| / (127 * 256). Everything else in double."""

    def cached(self, x):
        return to_int8_rows(x, to_f16(np.abs(x).max(axis=-1, keepdims=True) / 127.0))

    def query(self, q):
        limit = 127 * 256
        scale = (np.abs(q).max(axis=-1, keepdims=True) / limit).astype(np.float32)
        scale = scale.astype(np.float64)
        safe = np.where(scale > 0, scale, 1.0)
        return np.where(scale > 0, np.clip(np.rint(q / safe), -limit, limit) * scale, 0.0)


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
    """Accumulates the comparison of int8-cache rows against reference rows."""

    def __init__(self):
        self.counted = self.agree = self.near_ties = 0
        self.max_logprob_diff = 0.0

    def add(self, got, want):
        for a, b in zip(got, want):
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
              f"reference top-1 token {self.max_logprob_diff:.4f} nats", file=sys.stderr)
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

    def test_qwen25_shapes_int8_cache_against_numpy_int8_format(self):
        st = os.path.join(self.tmp, "q05_2layers")
        subprocess.run([BIN, "dummy", "--preset", "qwen2.5-0.5b", "--num-layers", "2",
                        "--dtype", "f32", "--format", "safetensors", "--seed", "5", st],
                       check=True, stdout=subprocess.DEVNULL)
        ref = Int8KvNumpyQwen2(st)
        acc, cost = Agreement(), Agreement()
        for seed in range(8, 14):  # NumPy (minutes on the reference BLAS) on the first only
            tokens = [int(t) for t in np.random.default_rng(seed).integers(0, 151936, size=560)]
            logits = run_tool(self.tmp, f"q05_2layers_{seed}", st, tokens, ["i8", "f16"])
            hidden = ref.final_hidden(tokens) if seed == 8 else None
            for r in range(0, len(tokens), 40):
                got = log_softmax(np.asarray(logits["i8"][r:r + 40]))
                if hidden is not None:
                    acc.add(got, log_softmax(hidden[r:r + 40] @ ref.lm_head.T))
                cost.add(got, log_softmax(np.asarray(logits["f16"][r:r + 40])))
        rate = acc.report("Qwen2.5-0.5B shapes, 2 layers, int8 cache vs NumPy int8 format")
        cost_rate = cost.report("Qwen2.5-0.5B shapes, 2 layers, 6 sequences, the format's cost: "
                                "int8 cache vs f16 cache")
        self.assertGreaterEqual(acc.counted, 500)
        self.assertGreaterEqual(rate, MIN_AGREEMENT)
        self.assertLess(acc.max_logprob_diff, 0.01)
        self.assertGreaterEqual(cost.counted, 3000)
        self.assertGreaterEqual(cost_rate, MIN_AGREEMENT)
        self.assertLess(cost.max_logprob_diff, 0.1)

    def test_qwen25_05b_int8_cache_no_gross_error(self):
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
        compare("f16", "f32", "f16 cache vs f32 cache (the chaos this model adds)")
        self.assertGreaterEqual(acc.counted, 500)
        # ~95% by chaos alone, about 5 standard errors above this; a broken cache is far below.
        self.assertGreaterEqual(rate, 0.90)
        self.assertLess(acc.max_logprob_diff, 0.5)


if __name__ == "__main__":
    unittest.main()
