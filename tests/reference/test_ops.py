"""NumPy (float64) oracle for the kernels of kernels/ops.h and kernels/attention.h.

Runs tests/tools/ops_tool.cc (tool_ops_tool) on random inputs, once per instruction set the
machine supports (the tool exits 3 for unsupported ones), and compares with float64 NumPy.
"""
import os
import subprocess
import tempfile
import unittest

import numpy as np

BUILD_DIR = os.environ.get("TINYSERVE_BUILD_DIR", "")
TOOL = os.path.join(BUILD_DIR, "tests", "tool_ops_tool")
ISAS = ("scalar", "avx2", "avx512")


def to_bf16_bits(x):
    """Round-to-nearest-even f32 -> bf16 bits (finite inputs)."""
    u = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16)


def bf16_bits_to_f64(b):
    return (b.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


class OpsOracleTest(unittest.TestCase):
    def setUp(self):
        if not os.path.exists(TOOL):
            self.fail(f"{TOOL} not built (set TINYSERVE_BUILD_DIR)")
        self.tmp = tempfile.TemporaryDirectory()
        self.rng = np.random.default_rng(1234)

    def tearDown(self):
        self.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def save(self, name, array):
        array.tofile(self.path(name))
        return self.path(name)

    def run_tool(self, isa, *args):
        """Returns the output array, or None when the ISA is unsupported here."""
        cmd = [TOOL, "--isa", isa] + [str(a) for a in args]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode == 3:
            return None
        self.assertEqual(proc.returncode, 0, proc.stderr)
        return np.fromfile(args[-1], dtype=np.float32)

    def for_each_isa(self, *args):
        ran = 0
        for isa in ISAS:
            out = self.run_tool(isa, *args)
            if out is None:
                continue
            ran += 1
            yield isa, out
        self.assertGreater(ran, 0)

    def test_rms_norm_matches_float64(self):
        for rows, dim in [(1, 1), (3, 17), (5, 35), (2, 896), (1, 4864)]:
            x = self.rng.standard_normal((rows, dim)).astype(np.float32)
            w = self.rng.standard_normal(dim).astype(np.float32)
            x64 = x.astype(np.float64)
            want = x64 / np.sqrt((x64**2).mean(axis=1, keepdims=True) + 1e-6) * w
            args = ["rms_norm", rows, dim, "1e-6", self.save("x", x), self.save("w", w),
                    self.path("out")]
            for isa, out in self.for_each_isa(*args):
                np.testing.assert_allclose(out.reshape(rows, dim), want, rtol=1e-5, atol=1e-6,
                                           err_msg=f"{isa} {rows}x{dim}")

    def test_rope_cos_sin_is_accurate_to_position_32768(self):
        head_dim, theta = 64, 1e6
        pos = np.array([0, 1, 2, 1000, 4095, 16384, 32767, 32768], dtype=np.int32)
        inv_freq = theta ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
        angle = pos.astype(np.float64)[:, None] * inv_freq[None, :]
        want = np.concatenate([np.cos(angle), np.sin(angle)], axis=1)
        args = ["rope_cos_sin", len(pos), head_dim, theta, self.save("pos", pos),
                self.path("out")]
        for isa, out in self.for_each_isa(*args):
            np.testing.assert_allclose(out.reshape(len(pos), head_dim), want, rtol=0, atol=1e-6)

    def test_rope_neox_rotates_half_pairs(self):
        for tokens, heads, head_dim in [(3, 14, 64), (2, 1, 2), (4, 3, 38)]:
            pos = self.rng.integers(0, 32768, tokens)
            inv_freq = 1e6 ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
            angle = pos[:, None] * inv_freq[None, :]
            cos_sin = np.concatenate([np.cos(angle), np.sin(angle)], axis=1).astype(np.float32)
            x = self.rng.standard_normal((tokens, heads, head_dim)).astype(np.float32)
            half = head_dim // 2
            c = cos_sin[:, None, :half].astype(np.float64)
            s = cos_sin[:, None, half:].astype(np.float64)
            a, b = x[..., :half].astype(np.float64), x[..., half:].astype(np.float64)
            want = np.concatenate([a * c - b * s, b * c + a * s], axis=-1)
            args = ["rope_neox", tokens, heads, head_dim, self.save("x", x),
                    self.save("cs", cos_sin), self.path("out")]
            for isa, out in self.for_each_isa(*args):
                np.testing.assert_allclose(out.reshape(want.shape), want, rtol=1e-5, atol=1e-6,
                                           err_msg=isa)

    def test_silu_mul_matches_float64(self):
        for rows, dim in [(1, 1), (3, 19), (2, 4864)]:
            gu = (self.rng.standard_normal((rows, 2 * dim)) * 6).astype(np.float32)
            g, u = gu[:, :dim].astype(np.float64), gu[:, dim:].astype(np.float64)
            want = g / (1 + np.exp(-g)) * u
            args = ["silu_mul", rows, dim, self.save("gu", gu), self.path("out")]
            for isa, out in self.for_each_isa(*args):
                np.testing.assert_allclose(out.reshape(rows, dim), want, rtol=1e-5, atol=1e-6,
                                           err_msg=isa)

    def test_softmax_matches_float64(self):
        for rows, dim in [(1, 1), (4, 33), (2, 151936 // 64)]:
            x = (self.rng.standard_normal((rows, dim)) * 10).astype(np.float32)
            x64 = x.astype(np.float64)
            e = np.exp(x64 - x64.max(axis=1, keepdims=True))
            want = e / e.sum(axis=1, keepdims=True)
            args = ["softmax", rows, dim, self.save("x", x), self.path("out")]
            for isa, out in self.for_each_isa(*args):
                np.testing.assert_allclose(out.reshape(rows, dim), want, rtol=1e-5, atol=1e-7,
                                           err_msg=isa)

    def test_logsumexp_matches_float64(self):
        # Logits as a model's (a few large, most far below), a masked share, the Qwen2.5
        # vocabulary and rows shorter than a vector.
        for rows, dim in [(1, 1), (3, 17), (2, 151936)]:
            x = (self.rng.standard_normal((rows, dim)) * 4).astype(np.float32)
            x[:, ::7] = -np.inf
            x[:, 0] = 12.0
            x64 = x.astype(np.float64)
            m = x64.max(axis=1)
            want = m + np.log(np.exp(x64 - m[:, None]).sum(axis=1))
            args = ["logsumexp", rows, dim, self.save("x", x), self.path("out")]
            for isa, out in self.for_each_isa(*args):
                np.testing.assert_allclose(out, want, rtol=1e-6, atol=1e-6, err_msg=isa)

    def test_argmax_is_numpys(self):
        # Values rounded to quarters (ties: the lowest index wins, as numpy.argmax), a masked
        # (-inf) share, the Qwen2.5 vocabulary; rows shorter than a vector and with every tail.
        for rows, dim in [(1, 1), (3, 17), (4, 33), (2, 151936)]:
            x = np.round(self.rng.standard_normal((rows, dim)) * 8) / 4
            x[self.rng.random((rows, dim)) < 0.3] = -np.inf
            x = x.astype(np.float32)
            want = np.argmax(x, axis=1)
            args = ["argmax", rows, dim, self.save("x", x), self.path("out")]
            for isa, out in self.for_each_isa(*args):
                np.testing.assert_array_equal(out.astype(np.int64), want, err_msg=isa)

    def test_add_bias_matches(self):
        x = self.rng.standard_normal((5, 37)).astype(np.float32)
        b = self.rng.standard_normal(37).astype(np.float32)
        args = ["add_bias", 5, 37, self.save("x", x), self.save("b", b), self.path("out")]
        for isa, out in self.for_each_isa(*args):
            np.testing.assert_array_equal(out.reshape(5, 37), x + b, err_msg=isa)

    def test_embedding_lookup_of_float_tables(self):
        vocab, dim = 11, 45
        values = self.rng.standard_normal((vocab, dim)).astype(np.float32)
        ids = np.array([10, 0, 5, 5, 3], dtype=np.int32)
        tables = {
            "f32": (values, values.astype(np.float64)),
            "f16": (values.astype(np.float16), values.astype(np.float16).astype(np.float64)),
            "bf16": (to_bf16_bits(values), bf16_bits_to_f64(to_bf16_bits(values))),
        }
        for dtype, (stored, exact) in tables.items():
            args = ["embedding", dtype, vocab, dim, len(ids), self.save("t", stored),
                    self.save("ids", ids), self.path("out")]
            for isa, out in self.for_each_isa(*args):
                np.testing.assert_array_equal(out.reshape(len(ids), dim), exact[ids],
                                              err_msg=f"{isa} {dtype}")

    def test_paged_attention_matches_dense_causal_attention(self):
        block_size, num_kv_heads, head_dim, num_heads = 16, 2, 64, 14
        group = num_heads // num_kv_heads
        ctx = [1, 40, 77, 18]
        q_len = [1, 40, 1, 7]
        blocks_per_seq = [(c + block_size - 1) // block_size for c in ctx]
        max_blocks = max(blocks_per_seq)
        num_blocks = 2 * sum(blocks_per_seq) + 1
        perm = self.rng.permutation(num_blocks)
        tables = np.zeros((len(ctx), max_blocks), dtype=np.int32)
        k_dense, v_dense = [], []
        cache_shape = (num_blocks, block_size, num_kv_heads, head_dim)
        k_cache = self.rng.standard_normal(cache_shape).astype(np.float32)
        v_cache = self.rng.standard_normal(cache_shape).astype(np.float32)
        used = 0
        for s, c in enumerate(ctx):
            ids = perm[used:used + blocks_per_seq[s]]
            used += blocks_per_seq[s]
            tables[s, :len(ids)] = ids
            k_dense.append(k_cache[ids].reshape(-1, num_kv_heads, head_dim)[:c])
            v_dense.append(v_cache[ids].reshape(-1, num_kv_heads, head_dim)[:c])
        query_start = np.concatenate([[0], np.cumsum(q_len)]).astype(np.int32)
        q = self.rng.standard_normal((query_start[-1], num_heads, head_dim)).astype(np.float32)
        scale = 1.0 / np.sqrt(head_dim)

        for dtype in ("f32", "f16", "bf16"):
            if dtype == "f32":
                kc, vc = k_cache, v_cache
                deq = lambda a: a.astype(np.float64)
            elif dtype == "f16":
                kc, vc = k_cache.astype(np.float16), v_cache.astype(np.float16)
                deq = lambda a: a.astype(np.float16).astype(np.float64)
            else:
                kc, vc = to_bf16_bits(k_cache), to_bf16_bits(v_cache)
                deq = lambda a: bf16_bits_to_f64(to_bf16_bits(a))
            want = np.zeros(q.shape, dtype=np.float64)
            for s in range(len(ctx)):
                k, v = deq(k_dense[s]), deq(v_dense[s])
                for j in range(q_len[s]):
                    pos = ctx[s] - q_len[s] + j
                    row = query_start[s] + j
                    for h in range(num_heads):
                        kvh = h // group
                        scores = k[:pos + 1, kvh] @ q[row, h].astype(np.float64) * scale
                        p = np.exp(scores - scores.max())
                        want[row, h] = p @ v[:pos + 1, kvh] / p.sum()
            args = ["attention", dtype, num_blocks, block_size, num_kv_heads, head_dim,
                    num_heads, len(ctx), max_blocks, repr(float(scale)), self.save("q", q),
                    self.save("k", kc), self.save("v", vc), self.save("qs", query_start),
                    self.save("sl", np.array(ctx, dtype=np.int32)), self.save("bt", tables),
                    self.path("out")]
            for isa, out in self.for_each_isa(*args):
                np.testing.assert_allclose(out.reshape(q.shape), want, rtol=1e-5, atol=1e-6,
                                           err_msg=f"{isa} {dtype}")


if __name__ == "__main__":
    unittest.main()
