"""DequantizeRow / QuantizeRow of the ggml block formats against NumPy.

The NumPy decoders below are written from the ggml format description (ggml-common.h and
dequantize_row_* of ggml-quants.c), in float32 with ggml's order of operations, so the C++
results must match BIT FOR BIT on random (valid: finite f16 scales) block bytes. The round
trip QuantizeRow -> DequantizeRow must stay within half a quantization step of each sub-block
(step = the sub-block's effective scale, e.g. d for Q8_0, d * sc for Q4_K) plus float rounding.
Driven through $TINYSERVE_BUILD_DIR/tests/tool_quant_tool. IQ3_S's codebook (512 x 4
magnitudes) is read from ggml-common.h of the llama.cpp release that node-llama-cpp ships (a git
bundle in node_modules, see package.json), not from tinyserve's copy, so every entry of that copy
is checked against llama.cpp's own source.
"""
import os
import re
import subprocess
import tempfile
import unittest

import numpy as np

F32 = np.float32
BLOCK = {  # name: (weights per block, bytes per block)
    "q4_0": (32, 18), "q4_1": (32, 20), "q5_0": (32, 22), "q5_1": (32, 24), "q8_0": (32, 34),
    "q2_k": (256, 84), "q3_k": (256, 110), "q4_k": (256, 144), "q5_k": (256, 176),
    "q6_k": (256, 210), "iq4_nl": (32, 18), "iq4_xs": (256, 136), "mxfp4": (32, 17),
    "tq1_0": (256, 54), "tq2_0": (256, 66), "q1_0": (128, 18), "q2_0": (64, 18),
    "iq3_s": (256, 110),
}
# Formats without a quantizer in tinyserve (read from GGUF files only).
DEQUANT_ONLY = {"iq4_nl", "iq4_xs", "mxfp4", "tq1_0", "tq2_0", "q1_0", "q2_0", "iq3_s"}
# ggml's IQ4_NL grid and twice the E2M1 (FP4) values (kvalues_iq4nl, kvalues_mxfp4).
IQ4_VALUES = np.array([-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113],
                      np.int32)
MXFP4_VALUES = np.array([0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12], np.int32)
F16_FIELDS = {"q4_0": [0], "q4_1": [0, 2], "q5_0": [0], "q5_1": [0, 2], "q8_0": [0],
              "q2_k": [80, 82], "q3_k": [108], "q4_k": [0, 2], "q5_k": [0, 2], "q6_k": [208],
              "iq4_nl": [0], "iq4_xs": [0], "mxfp4": [], "tq1_0": [52], "tq2_0": [64],
              "q1_0": [0], "q2_0": [0], "iq3_s": [0]}
SOURCE_DIR = os.environ.get("TINYSERVE_SOURCE_DIR",
                            os.path.abspath(os.path.join(os.path.dirname(__file__), "../..")))
LLAMA_CPP_BUNDLE = os.path.join(SOURCE_DIR, "node_modules/node-llama-cpp/llama/gitRelease.bundle")


def llama_cpp_iq3s_grid():
    """iq3s_grid of ggml-common.h in llama.cpp's own source: uint8 [512, 4] magnitudes (byte j
    of each uint32 entry is the magnitude of weight j of its group of 4)."""
    with tempfile.TemporaryDirectory() as repo:
        subprocess.run(["git", "init", "-q", repo], check=True)
        subprocess.run(["git", "-C", repo, "fetch", "-q", LLAMA_CPP_BUNDLE], check=True)
        common = subprocess.run(["git", "-C", repo, "show", "FETCH_HEAD:ggml/src/ggml-common.h"],
                                check=True, capture_output=True, text=True).stdout
    body = common.split("GGML_TABLE_BEGIN(uint32_t, iq3s_grid, 512)", 1)[1]
    entries = re.findall(r"0x[0-9a-fA-F]+", body.split("GGML_TABLE_END()", 1)[0])
    assert len(entries) == 512, len(entries)
    return np.array([int(e, 16) for e in entries], "<u4").view(np.uint8).reshape(512, 4)


def f16(b, off):
    return b[:, off:off + 2].copy().view("<f2").astype(F32)[:, 0:1]  # [blocks, 1]


def u32(b, off):
    return b[:, off:off + 4].copy().view("<u4").astype(np.uint64)  # [blocks, 1]


def nibbles(qs):
    return np.concatenate([qs & 15, qs >> 4], axis=1).astype(np.int32)  # j, j + 16


def high_bits(qh):
    j = np.arange(32, dtype=np.uint64)
    return ((qh >> j) & 1).astype(np.int32)


def scale_min_k4(s):
    """get_scale_min_k4 for j = 0..7: 6-bit scales and mins from 12 bytes."""
    s = s.astype(np.int32)
    sc = np.zeros((s.shape[0], 8), np.int32)
    mn = np.zeros_like(sc)
    for j in range(8):
        if j < 4:
            sc[:, j] = s[:, j] & 63
            mn[:, j] = s[:, j + 4] & 63
        else:
            sc[:, j] = (s[:, j + 4] & 0xF) | ((s[:, j - 4] >> 6) << 4)
            mn[:, j] = (s[:, j + 4] >> 4) | ((s[:, j] >> 6) << 4)
    return sc, mn


def dequant(name, b):
    """b: uint8 [blocks, bytes] -> (float32 [blocks, n], step float32 [blocks, n])."""
    nb = b.shape[0]
    if name in ("q4_0", "q5_0", "q8_0", "q4_1", "q5_1"):
        d = f16(b, 0)
        if name == "q8_0":
            q = b[:, 2:34].view(np.int8).astype(np.int32)
            return q.astype(F32) * d, np.broadcast_to(d, q.shape)
        if name == "q4_0":
            return (nibbles(b[:, 2:18]) - 8).astype(F32) * d, np.broadcast_to(d, (nb, 32))
        if name == "q5_0":
            q = nibbles(b[:, 6:22]) | (high_bits(u32(b, 2)) << 4)
            return (q - 16).astype(F32) * d, np.broadcast_to(d, (nb, 32))
        m = f16(b, 2)
        q = nibbles(b[:, 4:20]) if name == "q4_1" else (
            nibbles(b[:, 8:24]) | (high_bits(u32(b, 4)) << 4))
        return q.astype(F32) * d + m, np.broadcast_to(d, (nb, 32))
    if name in DEQUANT_ONLY:
        return dequant_extra(name, b), None
    y = np.zeros((nb, 256), F32)
    step = np.zeros((nb, 256), F32)
    if name == "q2_k":
        sc, qs, d, dmin = b[:, 0:16].astype(np.int32), b[:, 16:80], f16(b, 80), f16(b, 82)
        is_ = 0
        for n in range(2):
            q = qs[:, 32 * n:32 * n + 32].astype(np.int32)
            for j in range(4):
                shift = 2 * j
                for half in range(2):
                    dl = d[:, 0] * (sc[:, is_] & 0xF).astype(F32)
                    ml = dmin[:, 0] * (sc[:, is_] >> 4).astype(F32)
                    is_ += 1
                    ql = (q[:, 16 * half:16 * half + 16] >> shift) & 3
                    o = 128 * n + 32 * j + 16 * half
                    y[:, o:o + 16] = dl[:, None] * ql.astype(F32) - ml[:, None]
                    step[:, o:o + 16] = dl[:, None]
        return y, step
    if name == "q3_k":
        hm, qs, d = b[:, 0:32].astype(np.int32), b[:, 32:96], f16(b, 108)
        aux = b[:, 96:108].copy().view("<u4").astype(np.uint64)  # [blocks, 3]
        k1, k2 = np.uint64(0x03030303), np.uint64(0x0f0f0f0f)
        tmp = aux[:, 2]
        a = np.stack([(aux[:, 0] & k2) | (((tmp >> np.uint64(0)) & k1) << np.uint64(4)),
                      (aux[:, 1] & k2) | (((tmp >> np.uint64(2)) & k1) << np.uint64(4)),
                      ((aux[:, 0] >> np.uint64(4)) & k2) | (((tmp >> np.uint64(4)) & k1) << np.uint64(4)),
                      ((aux[:, 1] >> np.uint64(4)) & k2) | (((tmp >> np.uint64(6)) & k1) << np.uint64(4))],
                     axis=1).astype("<u4")
        scales = a.view(np.int8).astype(np.int32)  # [blocks, 16]
        is_, m = 0, 1
        for n in range(2):
            q = qs[:, 32 * n:32 * n + 32].astype(np.int32)
            for j in range(4):
                shift = 2 * j
                for half in range(2):
                    dl = d[:, 0] * (scales[:, is_] - 32).astype(F32)
                    is_ += 1
                    sl = slice(16 * half, 16 * half + 16)
                    v = ((q[:, sl] >> shift) & 3) - np.where(hm[:, sl] & m, 0, 4)
                    o = 128 * n + 32 * j + 16 * half
                    y[:, o:o + 16] = dl[:, None] * v.astype(F32)
                    step[:, o:o + 16] = np.abs(dl)[:, None]
                m <<= 1
        return y, step
    if name in ("q4_k", "q5_k"):
        d, dmin = f16(b, 0), f16(b, 2)
        sc, mn = scale_min_k4(b[:, 4:16])
        five = name == "q5_k"
        qs = b[:, 48:176] if five else b[:, 16:144]
        qh = b[:, 16:48].astype(np.int32)
        u1, u2 = 1, 2
        for j in range(4):
            q = qs[:, 32 * j:32 * j + 32].astype(np.int32)
            lo, hi = q & 0xF, q >> 4
            if five:
                lo = lo + np.where(qh & u1, 16, 0)
                hi = hi + np.where(qh & u2, 16, 0)
                u1, u2 = u1 << 2, u2 << 2
            for k, v in ((0, lo), (1, hi)):
                dl = d[:, 0] * sc[:, 2 * j + k].astype(F32)
                ml = dmin[:, 0] * mn[:, 2 * j + k].astype(F32)
                o = 64 * j + 32 * k
                y[:, o:o + 32] = dl[:, None] * v.astype(F32) - ml[:, None]
                step[:, o:o + 32] = dl[:, None]
        return y, step
    # q6_k
    ql_all, qh_all = b[:, 0:128].astype(np.int32), b[:, 128:192].astype(np.int32)
    sc, d = b[:, 192:208].view(np.int8).astype(F32), f16(b, 208)
    for n in range(2):
        ql, qh, s = ql_all[:, 64 * n:64 * n + 64], qh_all[:, 32 * n:32 * n + 32], sc[:, 8 * n:]
        for l in range(32):
            is_ = l // 16
            q1 = ((ql[:, l] & 0xF) | (((qh[:, l] >> 0) & 3) << 4)) - 32
            q2 = ((ql[:, l + 32] & 0xF) | (((qh[:, l] >> 2) & 3) << 4)) - 32
            q3 = ((ql[:, l] >> 4) | (((qh[:, l] >> 4) & 3) << 4)) - 32
            q4 = ((ql[:, l + 32] >> 4) | (((qh[:, l] >> 6) & 3) << 4)) - 32
            for k, qv in enumerate((q1, q2, q3, q4)):
                dl = d[:, 0] * s[:, is_ + 2 * k]
                y[:, 128 * n + 32 * k + l] = dl * qv.astype(F32)
                step[:, 128 * n + 32 * k + l] = np.abs(dl)
    return y, step


def e8m0_half(e):
    """2^(e - 127) / 2 as float32 bits: (e - 1) << 23, or the subnormals 2^-128, 2^-127."""
    e = e.astype(np.uint32)
    bits = np.where(e < 2, np.uint32(0x00200000) << e, (e - 1) << np.uint32(23))
    return bits.astype(np.uint32).view(F32)


def tq1_digits(b):
    """TQ1_0 digits (0..2) of 256 weights: bytes hold base-3 numbers scaled to 0..255 by
    ceil(v * 256 / 243); digit n is the top digit after multiplying by 3^n modulo 256."""
    out = []

    def digits(byte_cols, count):
        for n in range(count):
            scaled = (byte_cols.astype(np.uint32) * (3 ** n)) & 0xFF
            out.append(((scaled * 3) >> 8).astype(np.int32))

    digits(b[:, 0:32], 5)
    digits(b[:, 32:48], 5)
    digits(b[:, 48:52], 4)
    return np.concatenate(out, axis=1)


def dequant_iq3_s(b, grid):
    """dequantize_row_iq3_s: per sub-block ib of 32, scale d * (1 + 2 * 4-bit field); weight i
    is that times grid[qs[8 ib + i / 4] + 256 * bit (i / 4) of qh[ib]][i % 4], negated when bit
    i % 8 of signs[4 ib + i / 8] is set."""
    d = f16(b, 0)[:, 0]
    qs, qh, signs = b[:, 2:66].astype(np.int32), b[:, 66:74].astype(np.int32), b[:, 74:106]
    i = np.arange(32)
    y = np.zeros((b.shape[0], 256), F32)
    for ib in range(8):
        field = (b[:, 106 + ib // 2].astype(np.int32) >> (4 * (ib % 2))) & 0xF
        db = d * (1 + 2 * field).astype(F32)
        index = qs[:, 8 * ib + i // 4] | (((qh[:, ib:ib + 1] >> (i // 4)) & 1) << 8)
        magnitude = grid[index, i % 4].astype(F32)
        negative = (signs[:, 4 * ib + i // 8].astype(np.int32) >> (i % 8)) & 1
        sign = np.where(negative == 1, -1, 1).astype(F32)
        y[:, 32 * ib:32 * ib + 32] = db[:, None] * magnitude * sign
    return y


def dequant_extra(name, b):
    nb = b.shape[0]
    if name == "iq3_s":
        return dequant_iq3_s(b, llama_cpp_iq3s_grid())
    if name in ("iq4_nl", "mxfp4"):
        table, off = (IQ4_VALUES, 2) if name == "iq4_nl" else (MXFP4_VALUES, 1)
        d = f16(b, 0) if name == "iq4_nl" else e8m0_half(b[:, 0:1])
        return table[nibbles(b[:, off:off + 16])].astype(F32) * d
    if name == "iq4_xs":
        d = f16(b, 0)[:, 0]
        sh = b[:, 2:4].copy().view("<u2")[:, 0].astype(np.int32)
        y = np.zeros((nb, 256), F32)
        for ib in range(8):
            ls = ((b[:, 4 + ib // 2].astype(np.int32) >> (4 * (ib % 2))) & 0xF) | \
                 (((sh >> (2 * ib)) & 3) << 4)
            dl = d * (ls - 32).astype(F32)
            qs = b[:, 8 + 16 * ib:24 + 16 * ib]
            y[:, 32 * ib:32 * ib + 32] = dl[:, None] * IQ4_VALUES[nibbles(qs)].astype(F32)
        return y
    if name in ("tq1_0", "tq2_0"):
        if name == "tq1_0":
            q, d = tq1_digits(b), f16(b, 52)
        else:
            q, d = np.zeros((nb, 256), np.int32), f16(b, 64)
            for j in range(2):
                for l in range(4):
                    q[:, 128 * j + 32 * l:128 * j + 32 * l + 32] = \
                        (b[:, 32 * j:32 * j + 32].astype(np.int32) >> (2 * l)) & 3
        return (q - 1).astype(F32) * d
    d = f16(b, 0)
    bits = b[:, 2:18].astype(np.int32)
    if name == "q1_0":
        j = np.arange(128)
        bit = (bits[:, j // 8] >> (j % 8)) & 1
        return np.where(bit == 1, d, -d).astype(F32)
    j = np.arange(64)  # q2_0
    q = (bits[:, j // 4] >> (2 * (j % 4))) & 3
    return (q - 1).astype(F32) * d


class DequantTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tool = os.path.join(os.environ.get("TINYSERVE_BUILD_DIR", "build/release"), "tests",
                                "tool_quant_tool")
        cls.tmp = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def run_tool(self, verb, name, data):
        src = os.path.join(self.tmp.name, "in.bin")
        dst = os.path.join(self.tmp.name, "out.bin")
        data.tofile(src)
        subprocess.run([self.tool, verb, name, src, dst], check=True)
        return np.fromfile(dst, dtype=np.uint8)

    def random_blocks(self, name, nb, rng):
        _, nbytes = BLOCK[name]
        b = rng.integers(0, 256, size=(nb, nbytes), dtype=np.uint8)
        for off in F16_FIELDS[name]:
            # Finite f16 scales of every exponent, both signs, subnormals and zero included.
            h = rng.integers(0, 0x7c00, size=nb, dtype=np.uint16)
            h |= (rng.integers(0, 2, size=nb, dtype=np.uint16) << 15)
            b[:, off:off + 2] = h.view(np.uint8).reshape(nb, 2)
        return b

    def test_dequantize_matches_numpy_bit_for_bit(self):
        rng = np.random.default_rng(20241124)
        for name in BLOCK:
            with self.subTest(type=name):
                b = self.random_blocks(name, 200, rng)
                got = self.run_tool("dequant", name, b).view(np.float32)
                want, _ = dequant(name, b)
                want = want.reshape(-1)
                self.assertEqual(got.shape, want.shape)
                diff = np.nonzero(got.view(np.uint32) != want.view(np.uint32))[0]
                self.assertEqual(diff.size, 0, f"{name}: first mismatch at {diff[:5]}: "
                                 f"{got[diff[:5]]} vs {want[diff[:5]]}")

    def test_quantize_round_trip_within_half_a_step(self):
        rng = np.random.default_rng(7)
        for name, (bs, nbytes) in BLOCK.items():
            if name in DEQUANT_ONLY:
                continue
            with self.subTest(type=name):
                x = rng.normal(size=bs * 40).astype(F32)
                x[: bs] *= 1e-3  # a block of tiny values
                x[bs: 2 * bs] = np.abs(x[bs: 2 * bs]) + 3  # all positive (min > 0)
                x[2 * bs: 3 * bs] = 0  # all zero
                q = self.run_tool("quant", name, x).reshape(-1, nbytes)
                y, step = dequant(name, q)
                y, step = y.reshape(-1), step.reshape(-1)
                # Half a step, plus float rounding in computing x / step and the dequantization.
                bound = 0.5 * step * (1 + 1e-5) + 1e-6 * np.abs(x) + 1e-30
                err = np.abs(y - x)
                bad = np.nonzero(err > bound)[0]
                self.assertEqual(bad.size, 0, f"{name}: {bad[:5]} err {err[bad[:5]]} "
                                 f"bound {bound[bad[:5]]}")
                self.assertTrue(np.all(y[2 * bs: 3 * bs] == 0))


if __name__ == "__main__":
    unittest.main()
