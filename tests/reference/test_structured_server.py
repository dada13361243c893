# ctest: no_asan (hundreds of HTTP generations; engine_structured_test covers the path under ASan)
"""Structured output end to end: `tinyserve serve dummy:tiny` (random weights, the real Qwen2.5
vocabulary, so only the grammar mask keeps outputs valid) answers every request form; Debian's
python3-jsonschema validates every answer that finished with reason "stop" against its schema
(60 schemas x 3 seeds, tests/data/structured_schemas.jsonl), Python's re checks regex outputs,
choices must be listed, GBNF outputs parse. Bad constraints get a 400 in bounded time and leave
the server serving; /metrics counts masks and grammar-cache hits.
"""
import concurrent.futures
import json
import os
import re
import socket
import subprocess
import time
import unittest
import urllib.error
import urllib.request

import jsonschema

from test_structured_jsonschema import format_checker

SOURCE_DIR = os.environ.get("TINYSERVE_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("TINYSERVE_BIN", os.path.join(SOURCE_DIR, "build", "release", "src", "cli", "tinyserve"))
SEEDS = 3


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url, body, timeout=300):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


class Server:
    def __enter__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([BIN, "serve", "dummy:tiny", "--port", str(self.port),
                                      "--kv-cache-memory", "64MiB", "--max-model-len", "1024",
                                      "--max-num-seqs", "16"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 120
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited: " + self.proc.stderr.read().decode())
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError("server did not become healthy")
            time.sleep(0.1)

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(timeout=60)

    def chat(self, extra, content="Answer.", **kw):
        body = {"messages": [{"role": "user", "content": content}], "temperature": 1.0,
                "max_tokens": 128, **extra}
        return post(self.url + "/v1/chat/completions", body, **kw)

    def completion(self, extra):
        body = {"prompt": "Output:", "temperature": 1.0, "max_tokens": 64, **extra}
        return post(self.url + "/v1/completions", body)

    def metrics(self):
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as r:
            text = r.read().decode()
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                values[name.split("{")[0]] = float(value)
        return values


class StructuredServer(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server().__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.server.__exit__(None, None, None)

    def test_json_schema_answers_validate(self):
        with open(os.path.join(SOURCE_DIR, "tests", "data", "structured_schemas.jsonl")) as f:
            entries = [json.loads(line) for line in f if line.strip()]
        self.assertGreaterEqual(len(entries), 50)
        checker = format_checker()
        jobs = [(e, seed) for e in entries for seed in range(SEEDS)]

        def run(job):
            e, seed = job
            rf = {"type": "json_schema", "json_schema": {"name": f"s{e['id']}", "schema": e["schema"], "strict": True}}
            return job, self.server.chat({"response_format": rf, "seed": seed})

        stopped = 0
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            for (e, seed), (status, body) in pool.map(run, jobs):
                self.assertEqual(status, 200, (e["id"], body))
                choice = body["choices"][0]
                self.assertIn(choice["finish_reason"], ("stop", "length"))
                if choice["finish_reason"] != "stop":
                    continue
                stopped += 1
                value = json.loads(choice["message"]["content"])
                jsonschema.Draft202012Validator(e["schema"], format_checker=checker).validate(value)
        # The budget steers to a close: nearly every answer must finish with "stop".
        self.assertGreaterEqual(stopped, 0.9 * len(jobs))
        m = self.server.metrics()
        self.assertGreaterEqual(m["tinyserve:structured_mask_seconds_count"], stopped)
        self.assertGreaterEqual(m["tinyserve:structured_grammar_cache_hits_total"], len(entries))

    def test_every_request_form_constrains_the_output(self):
        regex = r"[A-Z][a-z]{2,6}-\d{2,4}"
        choices = ["alpha", "beta", "gamma delta"]
        gbnf = 'root ::= "(" num ("," num)* ")"\nnum ::= [0-9]{1,3}'
        forms = [
            ("chat", {"structured_outputs": {"regex": regex}}, "regex"),
            ("completion", {"guided_regex": regex}, "regex"),
            ("chat", {"guided_choice": choices}, "choice"),
            ("completion", {"structured_outputs": {"choice": choices}}, "choice"),
            ("chat", {"grammar": gbnf}, "gbnf"),
            ("completion", {"guided_grammar": gbnf}, "gbnf"),
            ("chat", {"response_format": {"type": "json_object"}}, "object"),
            ("completion", {"json_schema": {"type": "array", "items": {"type": "integer"}, "maxItems": 4}}, "array"),
        ]
        for endpoint, extra, kind in forms:
            for seed in range(SEEDS):
                with self.subTest(endpoint=endpoint, extra=extra, seed=seed):
                    call = self.server.chat if endpoint == "chat" else self.server.completion
                    status, body = call({**extra, "seed": seed})
                    self.assertEqual(status, 200, body)
                    choice = body["choices"][0]
                    self.assertEqual(choice["finish_reason"], "stop", choice)
                    text = choice["message"]["content"] if endpoint == "chat" else choice["text"]
                    if kind == "regex":
                        self.assertIsNotNone(re.fullmatch(regex, text), text)
                    elif kind == "choice":
                        self.assertIn(text, choices)
                    elif kind == "gbnf":
                        self.assertIsNotNone(re.fullmatch(r"\(\d{1,3}(,\d{1,3})*\)", text), text)
                    elif kind == "object":
                        self.assertIsInstance(json.loads(text), dict)
                    else:
                        value = json.loads(text)
                        self.assertIsInstance(value, list)
                        self.assertLessEqual(len(value), 4)
                        self.assertTrue(all(isinstance(v, int) for v in value))

    def test_bad_constraints_are_400_in_bounded_time_and_the_server_keeps_serving(self):
        deep = {"type": "string"}
        for _ in range(100):
            deep = {"type": "array", "items": deep}
        huge = {"type": "object", "properties": {f"p{i}_" + "x" * 40: {"type": "string"} for i in range(8000)}}
        cases = [
            ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object", "minProperties": 2}}}}, "minProperties"),
            ({"guided_json": {"type": "strnig"}}, None),
            ({"guided_regex": "(a)\\1"}, None),
            ({"guided_regex": "(x{1000}){1000}"}, None),
            ({"guided_grammar": "root ::= undefined"}, None),
            ({"guided_grammar": "root ::= root \"a\" | \"b\""}, None),
            ({"guided_json": deep}, None),
            ({"guided_json": huge}, None),
            ({"guided_choice": []}, None),
        ]
        for extra, must_mention in cases:
            with self.subTest(extra=str(extra)[:80]):
                start = time.time()
                status, body = self.server.chat(extra)
                elapsed = time.time() - start
                self.assertEqual(status, 400, body)
                self.assertEqual(body["error"]["type"], "invalid_request_error")
                self.assertTrue(body["error"]["param"], body)
                if must_mention:
                    self.assertIn(must_mention, body["error"]["message"])
                self.assertLess(elapsed, 10.0, "a bad constraint must fail in bounded time")
        status, body = self.server.chat({"guided_choice": ["still", "serving"], "seed": 1})
        self.assertEqual(status, 200, body)
        self.assertIn(body["choices"][0]["message"]["content"], ["still", "serving"])


if __name__ == "__main__":
    unittest.main()
