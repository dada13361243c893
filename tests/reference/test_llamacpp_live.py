"""tinyserve against llama.cpp run live, where the shared fixtures' recorded outputs do not reach.

The fixtures hold llama.cpp's outputs for prompts of 15-30 tokens and 16 greedy steps. Here
llama.cpp itself (tests/tools/llamacpp_live.mjs: node-llama-cpp's prebuilt CPU build of libllama,
an npm dependency) records the same kind of rows for prompts of 700 and 1,600 tokens, on the
fixture files themselves: next-token top-10 log-probabilities at prefix lengths on either side of
tinyserve's cache blocks, attention steps and 512-key partitions, and 16 greedy steps.
tools/llamacpp_parity evaluates the same prefixes, and the rows are checked exactly as the
fixtures' are (test_llamacpp_parity.check_rows, the same tolerances per weight type, f16 and
int8 KV cache). Measured on Zen 5 (session 36): the f32 file within 1e-4 nats of llama.cpp at
1,600 tokens, every file within its short-prompt tolerance.

Also: the same long prompts through `tinyserve serve` (prompt_logprobs, the engine's chunked
path); files tinyserve writes, as llama.cpp reads them; and llama.cpp's ids for the whole
tokenizer corpus (tests/data/tokenizer_corpus.jsonl, with and without parsing special tokens)
against the GGUF tokenizer's, where the fixtures carry 30 strings, and its text of every token id.

Release pass only (112 s in CI there; the served long prompts would take minutes more under
ASan): ctest: no_asan
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from llamacpp_fixtures import BUILD_DIR, SOURCE_DIR, fixtures_dir  # noqa: E402
from test_gguf_serve import Server, check_prompt_logprobs  # noqa: E402
from test_llamacpp_parity import INT8_KV_ALLOWANCE, TOLERANCE, check_rows, weight_type  # noqa: E402

LIVE = os.path.join(SOURCE_DIR, "tests", "tools", "llamacpp_live.mjs")
LENGTHS = "700,1600"
# One file per kind of arithmetic: f32 (nothing rounded but the f16 cache: the tightest check of
# attention and RoPE at far positions), f16 and bf16 weights, the int8 paths of 8-bit, k-quant,
# codebook (IQ4_XS; IQ3_S with its 512-point grid in iq3_m) and 2-bit weights, and the real
# Qwen2.5 vocabulary with tied embeddings (qwen2-tok).
STEMS = ["qwen2-small-f32", "qwen2-small-f16", "qwen2-small-bf16", "qwen2-small-q8_0",
         "qwen2-small-q4_k_m", "qwen2-small-q6_k", "qwen2-small-iq4_xs", "qwen2-small-iq3_m",
         "qwen2-small-q2_k", "qwen2-tok-q8_0"]


def run(cmd):
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")


RECORDS = None  # the live records of STEMS, written once for every test class (setUpModule)


def setUpModule():
    global RECORDS
    RECORDS = tempfile.TemporaryDirectory()
    for stem in STEMS:
        run(["node", LIVE, "logits", os.path.join(fixtures_dir(), stem + ".gguf"),
             os.path.join(RECORDS.name, stem + ".live.json"), LENGTHS])


def tearDownModule():
    RECORDS.cleanup()


def live_record(stem):
    with open(os.path.join(RECORDS.name, stem + ".live.json")) as f:
        return json.load(f)


class LiveLlamaCppLongPromptTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = fixtures_dir()
        cls.tmp = tempfile.TemporaryDirectory()
        tool = os.path.join(BUILD_DIR, "tests", "tool_llamacpp_parity")
        for stem in STEMS:
            gguf = os.path.join(cls.dir, stem + ".gguf")
            ref = os.path.join(RECORDS.name, stem + ".live.json")
            for kv in ("f16", "int8"):
                run([tool, gguf, ref, os.path.join(cls.tmp.name, f"{stem}.{kv}.json"), kv])

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def load(self, stem, kv):
        with open(os.path.join(self.tmp.name, f"{stem}.{kv}.json")) as f:
            return json.load(f)

    def test_records_reach_past_partitions(self):
        ref = live_record(STEMS[0])
        self.assertEqual([len(p["ids"]) for p in ref["prompts"]], [700, 1600])
        ks = [pos["k"] for pos in ref["prompts"][1]["positions"]]
        for k in (64, 65, 512, 513, 1024, 1025, 1600):
            self.assertIn(k, ks)
        self.assertEqual(len(ref["prompts"][1]["greedy_16_top"]), 16)

    def test_logprobs_and_argmax_match_live_llama_cpp(self):
        self.check("f16", 0.0)

    def test_int8_kv_cache_logprobs_and_argmax_match_live_llama_cpp(self):
        self.check("int8", INT8_KV_ALLOWANCE)

    def check(self, kv, allowance):
        for stem in STEMS:
            with self.subTest(fixture=stem, kv=kv):
                tol = TOLERANCE[weight_type(stem)] + allowance
                line = check_rows(self, stem, live_record(stem), self.load(stem, kv), tol)
                print(f"{stem}, {kv} KV cache, live llama.cpp: {line}", file=sys.stderr)


class LiveLlamaCppServedLongPromptTest(unittest.TestCase):
    """The same long prompts through `tinyserve serve` (the engine's path: prefill in chunks,
    paged cache, the scheduler), as a scorer asks for them: vLLM's prompt_logprobs against
    llama.cpp's top-10 at every recorded prefix (test_gguf_serve.check_prompt_logprobs)."""

    def test_prompt_logprobs_of_long_prompts_match_live_llama_cpp(self):
        for stem in ("qwen2-small-f32", "qwen2-tok-q8_0"):
            gguf = os.path.join(fixtures_dir(), stem + ".gguf")
            with self.subTest(fixture=stem), \
                    Server(gguf, max_model_len=2048, kv_cache_memory="256MiB") as server:
                for prompt in live_record(stem)["prompts"]:
                    check_prompt_logprobs(self, server, stem, prompt)


class LiveLlamaCppReadsOurGgufTest(unittest.TestCase):
    """Files tinyserve writes (`tinyserve dummy`, GgufWriter) as llama.cpp reads them: loaded by
    llama.cpp, they give the rows tinyserve gives for the same file, within the tolerances of the
    llama.cpp-written files of the same weight type (f16; q4_k_m, whose super-blocks tinyserve
    packs itself). A misplaced tensor, a wrong shape or a block written in the wrong layout moves
    log-probabilities by whole nats."""

    def test_llama_cpp_agrees_on_files_tinyserve_wrote(self):
        tool = os.path.join(BUILD_DIR, "tests", "tool_llamacpp_parity")
        with tempfile.TemporaryDirectory() as tmp:
            for dtype in ("f16", "q4_k_m"):
                with self.subTest(dtype=dtype):
                    gguf = os.path.join(tmp, f"tiny-{dtype}.gguf")
                    run([os.environ["TINYSERVE_BIN"], "dummy", "--preset", "tiny", "--dtype",
                         dtype, gguf])
                    ref, ours = os.path.join(tmp, "live.json"), os.path.join(tmp, "ours.json")
                    run(["node", LIVE, "logits", gguf, ref, "100,300"])
                    run([tool, gguf, ref, ours, "f16"])
                    with open(ref) as f, open(ours) as g:
                        line = check_rows(self, f"tinyserve-{dtype}", json.load(f), json.load(g),
                                          TOLERANCE[dtype])
                    print(f"tinyserve dummy {dtype}, live llama.cpp: {line}", file=sys.stderr)


class LiveLlamaCppTokenizerTest(unittest.TestCase):
    def test_every_token_reads_as_llama_cpp_reads_it(self):
        """Each id's text (special tokens rendered), all 151,936 of the GGUF vocabulary. llama.cpp's
        comes through a JavaScript string, so a piece that is part of a character is U+FFFD there:
        ours is compared after the same replacement."""
        gguf = os.path.join(fixtures_dir(), "qwen2-tok-q8_0.gguf")
        with tempfile.TemporaryDirectory() as tmp:
            live, ours = os.path.join(tmp, "live.jsonl"), os.path.join(tmp, "ours.jsonl")
            run(["node", LIVE, "pieces", gguf, live])
            run([os.path.join(BUILD_DIR, "tests", "tool_tokenizer_tool"), "vocab", "gguf:" + gguf,
                 ours])
            with open(live) as f:
                theirs = [json.loads(line) for line in f if line.strip()]
            with open(ours) as f:
                mine = [json.loads(line) for line in f if line.strip()]
        self.assertEqual(len(theirs), 151936)
        self.assertEqual(len(mine), len(theirs))
        differ = [t["id"] for t, m in zip(theirs, mine) if t["hex"] != bytes.fromhex(
            m["bytes_hex"]).decode("utf-8", "replace").encode().hex()]
        self.assertEqual(differ, [])

    def test_corpus_ids_match_llama_cpp(self):
        gguf = os.path.join(fixtures_dir(), "qwen2-tok-q8_0.gguf")
        with open(os.path.join(SOURCE_DIR, "tests", "data", "tokenizer_corpus.jsonl")) as f:
            lines = [line for line in f if line.strip()]
        # Plus the texts of tokens llama.cpp makes control tokens though the file says NORMAL
        # ("</s>"), beside ones that stay plain ("<s>", "<unk>") and real control tokens.
        for i, text in enumerate(["a</s>b", "</s>", "x</s", "</s>\n</s></s>", "<s>", "<unk>",
                                  "<|im_end|></s><|endoftext|>"]):
            lines.append(json.dumps({"id": f"control-looking-{i}", "text": text}) + "\n")
        with tempfile.TemporaryDirectory() as tmp:
            corpus, live = os.path.join(tmp, "corpus.jsonl"), os.path.join(tmp, "live.jsonl")
            with open(corpus, "w") as f:
                f.writelines(lines)
            run(["node", LIVE, "tokenize", gguf, corpus, live])
            with open(live) as f:
                cases = [json.loads(line) for line in f if line.strip()]
            self.assertEqual(len(cases), len(lines))
            src, dst = os.path.join(tmp, "in.jsonl"), os.path.join(tmp, "out.jsonl")
            with open(src, "w") as f:
                for c in cases:
                    for allow in (True, False):
                        f.write(json.dumps({"hex": c["hex"], "allow_special": allow}) + "\n")
            run([os.path.join(BUILD_DIR, "tests", "tool_tokenizer_tool"), "batch",
                 "gguf:" + gguf, src, dst])
            with open(dst) as f:
                ours = [json.loads(line)["ids"] for line in f if line.strip()]
        self.assertEqual(len(ours), 2 * len(cases))
        for i, c in enumerate(cases):
            for j, key in enumerate(("ids", "ids_no_parse_special")):
                with self.subTest(case=c["id"], parse_special=(j == 0)):
                    self.assertEqual(ours[2 * i + j], c[key])


if __name__ == "__main__":
    unittest.main()
