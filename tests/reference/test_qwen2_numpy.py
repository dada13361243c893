"""Qwen2 in NumPy, written from the architecture description (shared/reference/qwen2.5.md and
the Hugging Face Qwen2 model card), as an independent oracle for tinyserve's forward pass.

It reads the dummy `tiny` model that `tinyserve dummy` writes (safetensors parsed here with
NumPy), runs tinyserve's Qwen2Model through tests/tools/model_logits.cc, and compares logits
with ||a - b|| / ||b|| per token position:
  - every position of a 64-token prompt;
  - three sequences of different lengths in one forward call;
  - several decode steps through the paged KV cache with shuffled (scattered) blocks;
  - the same random weights saved as GGUF and as safetensors (f32 and bf16);
  - quantized dummy models (q8_0, q4_0, q4_k_m) against the f32 model, within stated bounds.
"""
# ctest: no_asan  (the same checks run under ASan in model_test against the C++ reference)
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

import numpy as np

BIN = os.environ.get("TINYSERVE_BIN")
BUILD_DIR = os.environ.get("TINYSERVE_BUILD_DIR")
TOOL = os.path.join(BUILD_DIR, "tests", "tool_model_logits") if BUILD_DIR else None
MATMUL_TOOL = os.path.join(BUILD_DIR, "tests", "tool_matmul_tool") if BUILD_DIR else None
SEED = 5
TOLERANCE = 1e-4


# ---- the reference model ------------------------------------------------------------------

def read_safetensors(path):
    """{name: float64 array} from a safetensors file (F32, F16 or BF16 tensors)."""
    with open(path, "rb") as f:
        data = f.read()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_len])
    base = 8 + header_len
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = data[base + begin:base + end]
        if info["dtype"] == "F32":
            arr = np.frombuffer(raw, dtype="<f4")
        elif info["dtype"] == "F16":
            arr = np.frombuffer(raw, dtype="<f2")
        elif info["dtype"] == "BF16":
            arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError(f"unexpected dtype {info['dtype']}")
        out[name] = arr.astype(np.float64).reshape(info["shape"])
    return out


def tinyserve_rounds_bf16_activations():
    """Whether tinyserve's matmuls round activations to bf16 before bf16 weights on this machine
    (kernels::UsesBf16Dot: AVX-512 BF16, unless TINYSERVE_ISA caps it), asked of the kernel
    through tool_matmul_tool on a 1 x 2 bf16 matrix."""
    with tempfile.TemporaryDirectory() as tmp:
        w, x = os.path.join(tmp, "w"), os.path.join(tmp, "x")
        np.array([0x3F80, 0x3F80], dtype="<u2").tofile(w)
        np.array([1.0, 2.0], dtype="<f4").tofile(x)
        proc = subprocess.run([MATMUL_TOOL, "--isa", "best", "--threads", "1", "bf16", "1", "2",
                               "1", w, x, "-", os.path.join(tmp, "out")],
                              capture_output=True, text=True, check=True)
    return proc.stdout.split() == ["bf16_dot", "1"]


def round_to_bf16(x):
    """x (float64) as tinyserve feeds it to the bf16 dot product: to f32, then f32 denormals to
    zero and round to nearest even to bf16 (what vcvtne2ps2bf16 does), widened back."""
    u = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = np.where((u & 0x7F800000) == 0, u & 0x80000000, u)
    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    return u.astype(np.uint32).view(np.float32).astype(np.float64)


class NumpyQwen2:
    """Pre-norm decoder: x += o(attn(rope(q), rope(k), v)); x += down(silu(gate) * up).
    bf16_acts: the input of every matmul is rounded to bf16 first (as tinyserve and llama.cpp
    do for bf16 weights on CPUs with a bf16 dot product; set it only for bf16 weights)."""


    bf16_acts = False

    def act(self, x):
        return round_to_bf16(x) if self.bf16_acts else x

    def __init__(self, model_dir):
        with open(os.path.join(model_dir, "config.json")) as f:
            cfg = json.load(f)
        self.w = read_safetensors(os.path.join(model_dir, "model.safetensors"))
        self.hidden = cfg["hidden_size"]
        self.n_layers = cfg["num_hidden_layers"]
        self.n_heads = cfg["num_attention_heads"]
        self.n_kv = cfg["num_key_value_heads"]
        self.head_dim = self.hidden // self.n_heads
        self.theta = cfg["rope_theta"]
        self.eps = cfg["rms_norm_eps"]
        self.lm_head = (self.w["model.embed_tokens.weight"] if cfg["tie_word_embeddings"]
                        else self.w["lm_head.weight"])

    def rms_norm(self, x, weight):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * weight

    def rope(self, x, positions):
        # x: [T, heads, head_dim]; neox form: dimension i pairs with i + head_dim / 2.
        half = self.head_dim // 2
        inv_freq = self.theta ** (-np.arange(half) * 2.0 / self.head_dim)
        angles = positions[:, None] * inv_freq[None, :]  # [T, half]
        cos, sin = np.cos(angles)[:, None, :], np.sin(angles)[:, None, :]
        a, b = x[..., :half], x[..., half:]
        return np.concatenate([a * cos - b * sin, b * cos + a * sin], axis=-1)

    def logits(self, tokens):
        """Logits of every position of one sequence processed from position 0: [T, vocab]."""
        tokens = np.asarray(tokens)
        T, d = len(tokens), self.head_dim
        positions = np.arange(T, dtype=np.float64)
        x = self.w["model.embed_tokens.weight"][tokens]
        causal = np.triu(np.full((T, T), -np.inf), k=1)
        for l in range(self.n_layers):
            p = f"model.layers.{l}."
            n = self.act(self.rms_norm(x, self.w[p + "input_layernorm.weight"]))
            q = n @ self.w[p + "self_attn.q_proj.weight"].T + self.w[p + "self_attn.q_proj.bias"]
            k = n @ self.w[p + "self_attn.k_proj.weight"].T + self.w[p + "self_attn.k_proj.bias"]
            v = n @ self.w[p + "self_attn.v_proj.weight"].T + self.w[p + "self_attn.v_proj.bias"]
            q = self.rope(q.reshape(T, self.n_heads, d), positions)
            k = self.rope(k.reshape(T, self.n_kv, d), positions)
            v = v.reshape(T, self.n_kv, d)
            group = self.n_heads // self.n_kv
            out = np.empty((T, self.n_heads, d))
            for h in range(self.n_heads):
                scores = q[:, h, :] @ k[:, h // group, :].T / np.sqrt(d) + causal
                scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
                out[:, h, :] = (scores / scores.sum(axis=-1, keepdims=True)) @ v[:, h // group, :]
            x = x + self.act(out.reshape(T, -1)) @ self.w[p + "self_attn.o_proj.weight"].T
            m = self.act(self.rms_norm(x, self.w[p + "post_attention_layernorm.weight"]))
            gate = m @ self.w[p + "mlp.gate_proj.weight"].T
            up = m @ self.w[p + "mlp.up_proj.weight"].T
            h = self.act(gate / (1.0 + np.exp(-gate)) * up)
            x = x + h @ self.w[p + "mlp.down_proj.weight"].T
        return self.act(self.rms_norm(x, self.w["model.norm.weight"])) @ self.lm_head.T


def read_gguf(path):
    """(metadata dict, {name: (ggml type, dims ne0-first, absolute offset)}, file size): a GGUF
    v3 reader written from the GGUF spec, independent of tinyserve's."""
    with open(path, "rb") as f:
        data = f.read()
    pos = 0

    def take(fmt):
        nonlocal pos
        vals = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return vals[0] if len(vals) == 1 else vals

    def string():
        nonlocal pos
        n = take("Q")
        s = data[pos:pos + n].decode("utf-8")
        pos += n
        return s

    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q",
              12: "d"}

    def value(t):
        if t == 8:
            return string()
        if t == 9:
            et, n = take("I"), take("Q")
            return [value(et) for _ in range(n)]
        return take(scalar[t])

    assert data[:4] == b"GGUF", "bad magic"
    pos = 4
    version, n_tensors, n_kv = take("I"), take("Q"), take("Q")
    assert version == 3, version
    meta = {}
    for _ in range(n_kv):
        key = string()
        meta[key] = value(take("I"))
    infos = {}
    for _ in range(n_tensors):
        name = string()
        n_dims = take("I")
        dims = [take("Q") for _ in range(n_dims)]
        infos[name] = [take("I"), dims, take("Q")]
    align = meta.get("general.alignment", 32)
    base = (pos + align - 1) // align * align
    for info in infos.values():
        assert info[2] % align == 0, "tensor offset not aligned"
        info[2] += base
    return meta, infos, len(data)


# ---- driving tinyserve --------------------------------------------------------------------

def rel_error(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def run_dummy(out, dtype, fmt):
    subprocess.run([BIN, "dummy", "--preset", "tiny", "--dtype", dtype, "--format", fmt,
                    "--seed", str(SEED), out], check=True, stdout=subprocess.DEVNULL)


def run_tool(tmp, model, steps, name, isa=None):
    """Runs the steps through tinyserve (its kernels capped at TINYSERVE_ISA=isa if given);
    returns one [rows, vocab] array per step."""
    out_dir = os.path.join(tmp, "out_" + name)
    os.makedirs(out_dir, exist_ok=True)
    spec = {"model": model, "block_size": 4, "num_blocks": 64, "shuffle_seed": 3,
            "threads": 2, "steps": steps}
    spec_path = os.path.join(tmp, f"spec_{name}.json")
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    env = dict(os.environ, TINYSERVE_ISA=isa) if isa else None
    subprocess.run([TOOL, spec_path, out_dir], check=True, env=env)
    return [np.load(os.path.join(out_dir, f"step_{i}.npy")) for i in range(len(steps))]


class Qwen2NumpyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not BIN or not TOOL or not os.path.exists(TOOL):
            raise unittest.SkipTest("TINYSERVE_BIN / TINYSERVE_BUILD_DIR not set")
        cls.tmp = tempfile.mkdtemp(prefix="tinyserve_qwen2_numpy_")
        cls.paths = {}
        for dtype in ("f32", "bf16"):
            st = os.path.join(cls.tmp, f"st_{dtype}")
            run_dummy(st, dtype, "safetensors")
            gguf = os.path.join(cls.tmp, f"tiny_{dtype}.gguf")
            run_dummy(gguf, dtype, "gguf")
            cls.paths[dtype] = (st, gguf)
        cls.ref = NumpyQwen2(cls.paths["f32"][0])
        rng = np.random.default_rng(0)
        cls.vocab = cls.ref.lm_head.shape[0]
        cls.prompt = [int(t) for t in rng.integers(0, cls.vocab, size=64)]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def assert_close(self, got, want, what, tol=TOLERANCE):
        err = rel_error(got, want)
        self.assertLessEqual(err, tol, f"{what}: relative error {err:.3g} > {tol:g}")

    def test_every_position_of_a_64_token_prompt(self):
        want = self.ref.logits(self.prompt)
        (got,) = run_tool(self.tmp, self.paths["f32"][0],
                          [[{"seq": 0, "tokens": self.prompt}]], "prompt64")
        self.assertEqual(got.shape, want.shape)
        for t in range(len(self.prompt)):
            self.assert_close(got[t], want[t], f"position {t}")

    def test_three_sequences_of_different_lengths_in_one_call(self):
        seqs = [self.prompt[:13], self.prompt[20:21], self.prompt[30:59]]
        (got,) = run_tool(self.tmp, self.paths["f32"][0],
                          [[{"seq": i, "tokens": s} for i, s in enumerate(seqs)]], "three")
        row = 0
        for i, s in enumerate(seqs):
            want = self.ref.logits(s)
            for t in range(len(s)):
                self.assert_close(got[row], want[t], f"sequence {i} position {t}")
                row += 1

    def test_decode_steps_through_scattered_paged_cache(self):
        rng = np.random.default_rng(1)
        seqs = [list(self.prompt[:9]), list(self.prompt[9:10]), list(self.prompt[10:17])]
        steps = [[{"seq": i, "tokens": list(s)} for i, s in enumerate(seqs)]]
        for _ in range(5):  # five decode steps, one token per sequence
            step = []
            for i in range(3):
                tok = int(rng.integers(0, self.vocab))
                seqs[i].append(tok)
                step.append({"seq": i, "tokens": [tok]})
            steps.append(step)
        got = run_tool(self.tmp, self.paths["f32"][0], steps, "decode")
        full = [self.ref.logits(s) for s in seqs]
        for step_idx in range(1, len(steps)):
            for i in range(3):
                pos = len(seqs[i]) - len(steps) + step_idx
                self.assert_close(got[step_idx][i], full[i][pos],
                                  f"decode step {step_idx} sequence {i} position {pos}")

    def test_gguf_and_safetensors_give_the_same_logits(self):
        steps = [[{"seq": 0, "tokens": self.prompt[:16]}]]
        for dtype in ("f32", "bf16"):
            st, gguf = self.paths[dtype]
            (a,) = run_tool(self.tmp, st, steps, f"st_{dtype}")
            (b,) = run_tool(self.tmp, gguf, steps, f"gguf_{dtype}")
            # Identical weights; only rms_norm_eps differs in its last bits (GGUF stores f32).
            self.assert_close(b, a, f"{dtype}: GGUF vs safetensors", tol=1e-6)
        # The bf16 model against NumPy over the same bf16 weights, on the f32 FMA path
        # (TINYSERVE_ISA=avx2: activations stay f32 on both sides).
        ref = NumpyQwen2(self.paths["bf16"][0])
        want = ref.logits(self.prompt[:16])
        (got,) = run_tool(self.tmp, self.paths["bf16"][1], steps, "gguf_bf16_ref", isa="avx2")
        for t in range(16):
            self.assert_close(got[t], want[t], f"bf16 GGUF position {t}")
        # Where tinyserve takes the bf16 dot product (AVX-512 BF16) the oracle rounds every
        # matmul input to bf16 too; both sides then agree to f32-vs-f64 arithmetic, except where
        # an input lies within about an f32 ulp of a bf16 rounding tie and the two sides round it
        # apart (2^-8 of that value): measured, 1 of these 16 positions moves by 3.6e-3. Without
        # the rounding every position is 3e-3 to 6e-3 off, so "all but 2 within TOLERANCE" holds
        # only if the model rounds exactly where the oracle does.
        if tinyserve_rounds_bf16_activations():
            ref.bf16_acts = True
            want = ref.logits(self.prompt[:16])
            (got,) = run_tool(self.tmp, self.paths["bf16"][1], steps, "gguf_bf16_dot")
            errs = [rel_error(got[t], want[t]) for t in range(16)]
            self.assertLessEqual(max(errs), 1e-2, errs)
            self.assertGreaterEqual(sum(e <= TOLERANCE for e in errs), 14, errs)
        else:
            print("no bf16 dot product on this machine (no AVX-512 BF16): f32 path only")

    def test_dummy_gguf_has_the_official_keys_names_and_tokenizer(self):
        meta, infos, size = read_gguf(self.paths["f32"][1])
        self.assertEqual(meta["general.architecture"], "qwen2")
        self.assertEqual(meta["general.alignment"], 32)
        self.assertEqual(meta["general.file_type"], 0)
        for key in ("context_length", "embedding_length", "block_count", "feed_forward_length",
                    "attention.head_count", "attention.head_count_kv", "rope.freq_base",
                    "attention.layer_norm_rms_epsilon"):
            self.assertIn("qwen2." + key, meta)
        self.assertEqual(meta["qwen2.embedding_length"], 64)
        self.assertEqual(meta["tokenizer.ggml.model"], "gpt2")
        self.assertEqual(meta["tokenizer.ggml.pre"], "qwen2")
        self.assertEqual(len(meta["tokenizer.ggml.tokens"]), self.vocab)
        self.assertEqual(len(meta["tokenizer.ggml.token_type"]), self.vocab)
        self.assertEqual(meta["tokenizer.ggml.tokens"][151644], "<|im_start|>")
        self.assertEqual(meta["tokenizer.ggml.token_type"][151644], 3)  # CONTROL
        self.assertEqual(meta["tokenizer.ggml.tokens"][151700], "[PAD151700]")
        self.assertEqual(meta["tokenizer.ggml.merges"][0], "\u0120 \u0120")
        self.assertEqual(meta["tokenizer.ggml.eos_token_id"], 151645)
        self.assertEqual(meta["tokenizer.ggml.padding_token_id"], 151643)
        self.assertEqual(meta["tokenizer.ggml.bos_token_id"], 151643)
        self.assertIs(meta["tokenizer.ggml.add_bos_token"], False)
        self.assertIn("<|im_start|>", meta["tokenizer.chat_template"])
        expected = {"token_embd.weight", "output_norm.weight"}
        for l in range(2):
            for n in ("attn_norm.weight", "attn_q.weight", "attn_q.bias", "attn_k.weight",
                      "attn_k.bias", "attn_v.weight", "attn_v.bias", "attn_output.weight",
                      "ffn_norm.weight", "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight"):
                expected.add(f"blk.{l}.{n}")
        self.assertEqual(set(infos), expected)
        ggml_type, dims, offset = infos["token_embd.weight"]
        self.assertEqual((ggml_type, dims), (0, [64, self.vocab]))  # F32, ne0 = columns first
        self.assertLessEqual(offset + 64 * self.vocab * 4, size)
        with open(self.paths["f32"][1], "rb") as f:
            f.seek(offset)
            embd = np.frombuffer(f.read(64 * self.vocab * 4), dtype="<f4").reshape(self.vocab, 64)
        np.testing.assert_array_equal(embd, self.ref.w["model.embed_tokens.weight"])

    def test_quantized_models_are_finite_and_close_to_f32(self):
        # Bounds on ||quantized - f32|| / ||f32|| over 16 positions. Weights of random scale r are
        # rounded to within r/254 (q8_0: 8-bit, per 32 weights), r/30 (q4_0: 4-bit) or between
        # (q4_k_m mixes q5_0/q8_0/q4_k/q6_k); activations are also rounded to int8 per block.
        # Errors add up over 2 layers and the lm_head; the bounds are ~2x what these seeds show.
        bounds = {"q8_0": 0.03, "q4_k_m": 0.2, "q4_0": 0.3}
        steps = [[{"seq": 0, "tokens": self.prompt[:16]}]]
        want = self.ref.logits(self.prompt[:16])
        for dtype, bound in bounds.items():
            path = os.path.join(self.tmp, f"tiny_{dtype}.gguf")
            run_dummy(path, dtype, "gguf")
            (got,) = run_tool(self.tmp, path, steps, f"q_{dtype}")
            self.assertTrue(np.all(np.isfinite(got)), dtype)
            err = rel_error(got, want)
            print(f"{dtype}: relative error vs f32 NumPy {err:.4f} (bound {bound})",
                  file=sys.stderr)
            self.assertLessEqual(err, bound, dtype)


if __name__ == "__main__":
    unittest.main()
