"""`tinyserve serve FIXTURE.gguf` serves the OpenAI API for every llama.cpp-written fixture it
supports: a chat completion (the real Qwen2.5 tokenizer files, chat template from the GGUF), a
text completion, and a completion from llama.cpp's prompt token ids. (Token-level agreement with
llama.cpp is test_llamacpp_parity's job.)
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

BIN = os.environ.get("TINYSERVE_BIN", "build/release/tinyserve")
UNSUPPORTED = {"qwen2-small-iq3_s", "qwen2-small-iq3_m"}


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
    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # The log goes to a file: an unread pipe could fill and stall the server.
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([BIN, "serve", self.model, "--port", str(self.port),
                                      "--kv-cache-memory", "32MiB", "--max-model-len", "512",
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


class GgufServeTest(unittest.TestCase):
    def test_every_supported_fixture_serves_openai_requests(self):
        d = fixtures_dir()
        stems = sorted(f[:-5] for f in os.listdir(d) if f.endswith(".gguf"))
        self.assertEqual(len(stems), 30)
        for stem in stems:
            if stem in UNSUPPORTED:
                continue
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

if __name__ == "__main__":
    unittest.main()
