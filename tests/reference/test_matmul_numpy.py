"""NumPy (float64) oracle for kernels::MatMul with 16-bit and f32 weights.

Runs tests/tools/matmul_tool.cc (tool_matmul_tool) on random inputs, on every instruction set the
machine supports (the tool exits 3 for the others) with 1 and 2 threads, and compares with an
exact float64 product. Where the tool reports the bf16 dot product (bf16 weights on AVX-512 BF16:
activations rounded to bf16, f32 sums), the bounds are kernels/matmul.h's, for K = cols:
  |got - exact(w, bf16(x))| <= K * 2^-23 * sum |w bf16(x)|          (f32 sums only)
  |got - exact(w, x)|       <= (2^-8 + K * 2^-23) * sum |w x|         (plus bf16 rounding of x)
with bf16(x) computed here independently (f32 denormals to zero, round to nearest even). Other
paths (f32 FMA) get K * 2^-23 * sum |w x|. The bias adds one f32 rounding. Results must be the
same bits with 1 and 2 threads. Sizes: odd ones, Qwen2.5-0.5B's 896 / 4864 and the 151936-row
LM head.
"""
# ctest: no_asan  (kernels_test's matmul_bf16_test runs the same checks under ASan)
import os
import subprocess
import tempfile
import unittest

import numpy as np

BUILD_DIR = os.environ.get("TINYSERVE_BUILD_DIR", "")
TOOL = os.path.join(BUILD_DIR, "tests", "tool_matmul_tool")
ISAS = ("scalar", "avx2", "avx512")


def bf16_bits(x):
    """f32 -> bf16 bits as the bf16 dot product rounds activations: denormals read as zero,
    round to nearest even (finite inputs)."""
    u = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = np.where((u & 0x7F800000) == 0, u & 0x80000000, u)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16)


def bf16_to_f64(b):
    return (b.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


class MatMulOracleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.exists(TOOL):
            raise RuntimeError(f"{TOOL} not built (set TINYSERVE_BUILD_DIR)")
        cls.tmp = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def run_case(self, dtype, rows, cols, num_rows, with_bias, seed, isas=ISAS):
        rng = np.random.default_rng(seed)
        if dtype == "bf16":
            # bf16 bits drawn directly (the LM head would need GBs as floats): random sign and
            # significand, magnitudes 2^-10 .. 2^-3 (a real model's weights).
            bits = (rng.integers(0, 2, (rows, cols), dtype=np.uint16) << 15) | \
                (rng.integers(117, 125, (rows, cols), dtype=np.uint16) << 7) | \
                rng.integers(0, 128, (rows, cols), dtype=np.uint16)
            bits.tofile(self.path("w"))
            chunk = lambda r0, r1: bf16_to_f64(bits[r0:r1])
        else:
            wf = (rng.standard_normal((rows, cols)) * 0.05).astype(np.float32)
            w16 = wf.astype(np.float16) if dtype == "f16" else wf
            w16.tofile(self.path("w"))
            chunk = lambda r0, r1: w16[r0:r1].astype(np.float64)
        x = rng.standard_normal((num_rows, cols)).astype(np.float32)
        x.tofile(self.path("x"))
        bias = rng.standard_normal(rows).astype(np.float32)
        bias_arg = "-"
        if with_bias:
            bias.tofile(self.path("bias"))
            bias_arg = self.path("bias")
        b = bias.astype(np.float64) if with_bias else np.zeros(rows)
        x64 = x.astype(np.float64)
        xr = bf16_to_f64(bf16_bits(x))
        # Exact products and sums of |terms|, 8192 weight rows at a time.
        exact, exact_r, abs_sum, abs_sum_r = (np.empty((num_rows, rows)) for _ in range(4))
        for r0 in range(0, rows, 8192):
            r1 = min(rows, r0 + 8192)
            w = chunk(r0, r1)
            exact[:, r0:r1] = x64 @ w.T + b[r0:r1]
            exact_r[:, r0:r1] = xr @ w.T + b[r0:r1]
            abs_sum[:, r0:r1] = np.abs(x64) @ np.abs(w).T
            abs_sum_r[:, r0:r1] = np.abs(xr) @ np.abs(w).T
        k_sums = cols * 2.0**-23
        bias_round = 1e-6 * (np.abs(exact) + np.abs(b))
        ran = 0
        for isa in isas:
            outs = []
            for threads in (1, 2):
                proc = subprocess.run(
                    [TOOL, "--isa", isa, "--threads", str(threads), dtype, str(rows), str(cols),
                     str(num_rows), self.path("w"), self.path("x"), bias_arg, self.path("out")],
                    capture_output=True, text=True)
                if proc.returncode == 3:
                    break
                self.assertEqual(proc.returncode, 0, proc.stderr)
                bf16_dot = proc.stdout.split() == ["bf16_dot", "1"]
                outs.append(np.fromfile(self.path("out"), dtype=np.float32))
            if not outs:
                continue
            ran += 1
            label = f"{dtype} {isa} {rows}x{cols} m={num_rows} bias={with_bias}"
            self.assertTrue(np.array_equal(outs[0].view(np.uint32), outs[1].view(np.uint32)),
                            f"{label}: 1 and 2 threads differ")
            got = outs[0].astype(np.float64).reshape(num_rows, rows)
            # AVX-512 implies AVX-512 BF16 here (kernels/isa.h), so bf16 weights must take it.
            self.assertEqual(bf16_dot, dtype == "bf16" and isa == "avx512", label)
            if bf16_dot:
                err_r = np.abs(got - exact_r) - (k_sums * abs_sum_r + bias_round)
                self.assertLessEqual(err_r.max(), 0, f"{label}: vs bf16-rounded x")
                err = np.abs(got - exact) - ((2.0**-8 + k_sums) * abs_sum + bias_round)
            else:
                err = np.abs(got - exact) - (k_sums * abs_sum + bias_round)
            self.assertLessEqual(err.max(), 0, f"{label}: vs exact")
        return ran

    def test_odd_sizes(self):
        seed = 0
        for dtype in ("bf16", "f16", "f32"):
            for rows, cols, num_rows in ((1, 1, 1), (17, 33, 13), (37, 45, 7), (70, 3, 25),
                                         (16, 64, 12)):
                seed += 1
                self.assertGreater(self.run_case(dtype, rows, cols, num_rows, seed % 2 == 0, seed),
                                   0)

    def test_model_sizes(self):
        for rows, cols, num_rows in ((896, 896, 5), (4864, 896, 2), (896, 4864, 13)):
            self.assertGreater(self.run_case("bf16", rows, cols, num_rows, rows == 896,
                                             rows + num_rows), 0)

    def test_lm_head(self):
        # The tied LM head at decode (one activation row, 151936 weight rows) on the bf16 dot
        # product only: 272 MB of weights per run, and the f32 paths are covered above.
        if self.run_case("bf16", 151936, 896, 1, False, 7, isas=("avx512",)) == 0:
            self.skipTest("skipped: no AVX-512 BF16 on this CPU (bf16 weights use f32 FMA)")


if __name__ == "__main__":
    unittest.main()
