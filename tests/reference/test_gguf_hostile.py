"""Corrupt and hostile GGUF files built from llama.cpp's fixtures: `tinyserve generate` must
refuse each with a clear error naming the fault (exit status 1, never a signal), and the
untouched file must still load (so each failure is caused by the one edit).
"""
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from gguf_edit import Gguf  # noqa: E402
from llamacpp_fixtures import fixtures_dir  # noqa: E402

BIN = os.environ.get("TINYSERVE_BIN", "build/release/tinyserve")
SOURCE = "qwen2-small-q8_0.gguf"


def generate(path):
    return subprocess.run([BIN, "generate", "--model", path, "--prompt", "Hello",
                           "--max-tokens", "2", "--temperature", "0"],
                          capture_output=True, text=True, timeout=120)


class HostileGgufTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.src = os.path.join(fixtures_dir(), SOURCE)
        cls.tmp = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def edited(self, edit):
        g = Gguf(self.src)
        edit(g)
        path = os.path.join(self.tmp.name, "edited.gguf")
        g.write(path)
        return path

    def expect_error(self, edit, *fragments):
        proc = generate(self.edited(edit))
        self.assertEqual(proc.returncode, 1, proc.stderr)
        for fragment in fragments:
            self.assertIn(fragment, proc.stderr)

    def test_unedited_rewrite_loads(self):
        proc = generate(self.edited(lambda g: None))
        self.assertEqual(proc.returncode, 0, proc.stderr)

    def test_token_type_out_of_range(self):
        def edit(g):
            g.get("tokenizer.ggml.token_type")[2][1][300] = 9
        self.expect_error(edit, "token 300 has type 9")

    def test_token_array_shorter_than_embedding(self):
        def edit(g):
            for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.token_type"):
                items = g.get(key)[2][1]
                del items[1000:]
        self.expect_error(edit, "tokenizer.ggml.tokens has 1000 entries but token_embd.weight "
                                "has 1024 rows")

    def test_token_array_longer_than_embedding(self):
        def edit(g):
            g.get("tokenizer.ggml.tokens")[2][1].append("extra")
            g.get("tokenizer.ggml.token_type")[2][1].append(1)
        self.expect_error(edit, "has 1025 entries but token_embd.weight has 1024 rows")

    def test_known_but_unsupported_tensor_type(self):
        def edit(g):
            g.tensor("blk.0.attn_q.weight")[2] = 40  # NVFP4: same 32-wide rows, other layout
        self.expect_error(edit, "unsupported tensor type nvfp4 (ggml type 40) in tensor "
                                "'blk.0.attn_q.weight'")

    def test_unknown_tensor_type_id(self):
        # An id past every type this build knows, as Q1_0 (41) / Q2_0 (42) were to older builds.
        def edit(g):
            g.tensor("output.weight")[2] = 43
        self.expect_error(edit, "unsupported tensor type 43", "in tensor 'output.weight'")

    def test_block_count_overflows(self):
        def edit(g):
            g.tensor("blk.1.ffn_up.weight")[1] = [256, 1 << 62]
        self.expect_error(edit, "blk.1.ffn_up.weight")

    def test_byte_size_overflows(self):
        def edit(g):
            g.tensor("blk.1.ffn_up.weight")[1] = [1 << 40, 1 << 22]
        self.expect_error(edit, "blk.1.ffn_up.weight")

    def test_row_not_a_multiple_of_the_block(self):
        def edit(g):
            g.tensor("blk.0.ffn_down.weight")[1] = [500, 256]
        self.expect_error(edit, "blk.0.ffn_down.weight", "not a multiple")

    def test_other_architecture(self):
        def edit(g):
            g.get("general.architecture")[2] = "llama"
            for kv in g.kv:
                kv[0] = kv[0].replace("qwen2.", "llama.")
        self.expect_error(edit, 'unsupported architecture "llama"')

    def test_eos_outside_vocabulary(self):
        def edit(g):
            g.get("tokenizer.ggml.eos_token_id")[2] = 5000
        self.expect_error(edit, "eos_token_id 5000 outside the vocabulary")


if __name__ == "__main__":
    unittest.main()
