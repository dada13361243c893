"""`tinyserve serve FIXTURE.gguf` serves the OpenAI API for every llama.cpp-written fixture it
supports: a chat completion (the real Qwen2.5 tokenizer files, chat template from the GGUF), a
text completion, and a completion from llama.cpp's prompt token ids. (Token-level agreement with
llama.cpp is test_llamacpp_parity's job, on the model directly.) Over HTTP, the prompt tokens'
log-probabilities a scorer asks for (`prompt_logprobs`, and `echo` with `logprobs`) agree with
llama.cpp's recorded top-10 at each recorded prefix, within that test's tolerance per type.
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from llamacpp_fixtures import fixtures_dir  # noqa: E402
from test_llamacpp_parity import TOLERANCE, weight_type  # noqa: E402

BIN = os.environ.get("TINYSERVE_BIN", "build/release/tinyserve")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


class Server:
    def __init__(self, model, max_model_len=512, kv_cache_memory="32MiB"):
        self.model = model
        self.max_model_len = max_model_len
        self.kv_cache_memory = kv_cache_memory

    def __enter__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # The log goes to a file: an unread pipe could fill and stall the server.
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([BIN, "serve", self.model, "--port", str(self.port),
                                      "--kv-cache-memory", self.kv_cache_memory,
                                      "--max-model-len", str(self.max_model_len),
                                      "--max-num-seqs", "4"],
                                     stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.time() + 120
        while True:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError("server exited: " + self.log.read().decode())
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError("server did not become healthy")
            time.sleep(0.1)  # polling for readiness, bounded by the deadline

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(timeout=60)
        self.log.close()


def check_prompt_logprobs(test, server, stem, ref):
    """vLLM's prompt_logprobs (keyed by token id) against llama.cpp's top-10 after each
    recorded prefix ids[:k]: entry k of the list predicts ids[k] from that prefix. With 20
    alternatives per position, llama.cpp's 10 are all among them unless a logprob is off by
    more than the tolerance. The echo form must carry the same numbers."""
    ids = ref["ids"]
    status, body = post(server.url + "/v1/completions", {
        "prompt": ids, "max_tokens": 1, "temperature": 0, "prompt_logprobs": 20,
        "echo": True, "logprobs": 1})
    test.assertEqual(status, 200, body)
    choice = body["choices"][0]
    plp = choice["prompt_logprobs"]
    test.assertEqual(len(plp), len(ids))
    test.assertIsNone(plp[0])
    echo = choice["logprobs"]
    test.assertEqual(len(echo["token_logprobs"]), len(ids) + 1)
    test.assertIsNone(echo["token_logprobs"][0])
    tol = TOLERANCE[weight_type(stem)]
    checked = 0
    for pos in ref["positions"]:
        k = pos["k"]
        if k >= len(ids):
            continue  # the distribution after the whole prompt is the first sample's
        entry = plp[k]
        test.assertEqual(entry[str(ids[k])]["logprob"], echo["token_logprobs"][k])
        for token_id, logprob in pos["top"]:
            got = entry.get(str(token_id))
            test.assertIsNotNone(got, f"{stem} k={k}: llama.cpp's token {token_id} is not "
                                      f"among the top 20")
            test.assertLessEqual(abs(got["logprob"] - logprob), tol, f"{stem} k={k}")
            checked += 1
    test.assertGreater(checked, 0)


class GgufServeTest(unittest.TestCase):
    def test_every_supported_fixture_serves_openai_requests(self):
        d = fixtures_dir()
        stems = sorted(f[:-5] for f in os.listdir(d) if f.endswith(".gguf"))
        self.assertEqual(len(stems), 30)
        for stem in stems:
            with self.subTest(fixture=stem), Server(os.path.join(d, stem + ".gguf")) as s:
                with open(os.path.join(d, stem + ".reference.json")) as f:
                    ref = json.load(f)["prompts"][0]
                if stem.startswith("qwen2-tok-"):
                    status, body = post(s.url + "/v1/chat/completions", {
                        "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 8,
                        "temperature": 0})
                    self.assertEqual(status, 200, body)
                    self.assertGreater(body["usage"]["prompt_tokens"], 10)
                    self.assertIn(body["choices"][0]["finish_reason"], ("stop", "length"))
                status, body = post(s.url + "/v1/completions", {
                    "prompt": "The license", "max_tokens": 4, "temperature": 0})
                self.assertEqual(status, 200, body)
                # llama.cpp's prompt as token ids; ignore_eos so exactly n tokens come back.
                n = len(ref["greedy_16"])
                status, body = post(s.url + "/v1/completions", {
                    "prompt": ref["ids"], "max_tokens": n, "temperature": 0,
                    "ignore_eos": True})
                self.assertEqual(status, 200, body)
                self.assertEqual(body["usage"]["prompt_tokens"], len(ref["ids"]))
                self.assertEqual(body["usage"]["completion_tokens"], n)
                check_prompt_logprobs(self, s, stem, ref)


if __name__ == "__main__":
    unittest.main()
