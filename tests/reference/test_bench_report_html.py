"""report.html of `tinyserve bench serve` and `tinyserve bench compare`, opened as a person would.

A fake OpenAI server written here has a fixed capacity (2 slots, ~0.15 s per answer; more
requests queue) and exports the queue under SGLang's, llama.cpp's or vLLM's metric names. An
automatic sweep (`--users auto`) must stop once goodput stops rising while the queue grows and
refine between the last good and first bad level; the server table must be filled from the peer's
names. Then both pages are loaded in headless Chromium (Debian's `chromium`, installed by
scripts/setup.sh): no console message, every chart in the DOM, a screenshot that is not blank,
and the comparison names every run.
"""
import http.server
import json
import os
import re
import shutil
import socketserver
import struct
import subprocess
import tempfile
import threading
import time
import unittest
import zlib

BIN = os.environ.get("TINYSERVE_BIN", "tinyserve")

METRIC_NAMES = {
    "sglang": ("sglang:num_running_reqs", "sglang:num_queue_reqs", "sglang:token_usage"),
    "llamacpp": ("llamacpp:requests_processing", "llamacpp:requests_deferred",
                 "llamacpp:kv_cache_usage_ratio"),
    "vllm": ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc"),
}


def make_handler(flavor, slots):
    state = {"running": 0, "waiting": 0, "lock": threading.Lock()}
    slot = threading.Semaphore(slots)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _chunk(self, data):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        def do_GET(self):
            running, waiting, kv = METRIC_NAMES[flavor]
            with state["lock"]:
                body = ("# TYPE x gauge\n%s{model_name=\"m\"} %d\n%s %d\n%s 0.4\n" % (
                    running, state["running"], waiting, state["waiting"], kv)).encode()
            if self.path != "/metrics":
                body = b"{}"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            with state["lock"]:
                state["waiting"] += 1
            slot.acquire()
            with state["lock"]:
                state["waiting"] -= 1
                state["running"] += 1
            try:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                time.sleep(0.03)
                for i in range(8):
                    ev = {"choices": [{"index": 0, "delta": {"content": "t%d " % i}, "finish_reason": None}]}
                    self._chunk(b"data: " + json.dumps(ev).encode() + b"\n\n")
                    time.sleep(0.015)
                last = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 5, "completion_tokens": 8}}
                self._chunk(b"data: " + json.dumps(last).encode() + b"\n\ndata: [DONE]\n\n")
                self._chunk(b"")
            finally:
                with state["lock"]:
                    state["running"] -= 1
                slot.release()

    return Handler


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def start_server(flavor):
    server = Server(("127.0.0.1", 0), make_handler(flavor, slots=2))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, "http://127.0.0.1:%d/v1" % server.server_address[1]


def bench(base_url, out_dir, *extra):
    cmd = [BIN, "bench", "serve", "--base-url", base_url, "--model", "fake", "--think-time", "0",
           "--timeout", "5", "--seed", "3", "--mix", "summary=1,code=1", "--max-tokens", "8",
           "--slo", "ttft=5000,e2e=5000", "--output-dir", out_dir, *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def png_pixels(path):
    """Decodes an 8-bit RGB/RGBA non-interlaced PNG (what Chromium writes) into rows of bytes."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and interlace == 0 and color in (2, 6), (depth, color, interlace)
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw, stride, rows, prev = zlib.decompress(idat), width * channels, [], bytearray(width * channels)
    for y in range(height):
        ftype, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b, c = prev[i], prev[i - channels] if i >= channels else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 255
            elif ftype == 2:
                line[i] = (line[i] + b) & 255
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    return width, height, channels, rows


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise AssertionError("chromium is not installed: run `bash scripts/setup.sh` (Debian package chromium)")


def open_in_chromium(html, tmp, shot):
    """Loads the page; returns (DOM after scripts ran, console lines, screenshot path)."""
    base = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-dev-shm-usage", "--user-data-dir=" + os.path.join(tmp, "profile"),
            "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000",
            "--window-size=1280,2200"]
    url = "file://" + os.path.abspath(html)
    dom = subprocess.run(base + ["--dump-dom", url], capture_output=True, text=True, timeout=90)
    png = os.path.join(tmp, shot)
    pic = subprocess.run(base + ["--screenshot=" + png, url], capture_output=True, text=True, timeout=90)
    console = [l for l in (dom.stderr + pic.stderr).splitlines() if "CONSOLE" in l]
    return dom.stdout, console, png


class BenchReportHtmlTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        t = cls.tmp.name
        cls.servers = []
        server, url = start_server("sglang")
        cls.servers.append(server)
        cls.sweep_dir = os.path.join(t, "tinyserve-sweep")
        cls.sweep = bench(url, cls.sweep_dir, "--users", "auto", "--duration", "1.5", "--warmup",
                          "0.2", "--sweep-budget", "20", "--num-warmups", "2")
        server, url = start_server("llamacpp")
        cls.servers.append(server)
        cls.fixed_dir = os.path.join(t, "llamacpp")
        cls.fixed = bench(url, cls.fixed_dir, "--users", "1,2", "--duration", "1", "--warmup", "0.1",
                          "--num-warmups", "0")
        server, url = start_server("vllm")
        cls.servers.append(server)
        cls.rate_dir = os.path.join(t, "rate")
        cls.rate = bench(url, cls.rate_dir, "--request-rate", "auto", "--sweep-start", "4",
                         "--duration", "1.5", "--warmup", "0.2", "--sweep-budget", "12",
                         "--num-warmups", "0")
        cls.compare_dir = os.path.join(t, "compare")
        cls.compare = subprocess.run(
            [BIN, "bench", "compare", cls.sweep_dir, cls.fixed_dir, "--output-dir", cls.compare_dir,
             "--label", "tinyserve,llama.cpp"], capture_output=True, text=True, timeout=60)

    @classmethod
    def tearDownClass(cls):
        for s in cls.servers:
            s.shutdown()
        cls.tmp.cleanup()

    def results(self, d):
        with open(os.path.join(d, "results.json"), encoding="utf-8") as f:
            return json.load(f)

    def test_auto_sweep_stops_at_saturation_and_refines(self):
        self.assertEqual(self.sweep.returncode, 0, self.sweep.stderr)
        j = self.results(self.sweep_dir)
        users = [l["users"] for l in j["levels"]]
        self.assertEqual(users, sorted(users))
        self.assertIn("goodput stopped rising", j["sweep"]["summary"])
        # 2 slots: 1 -> 2 users doubles goodput without queueing, so saturation is found beyond
        # 2 (later when a short level's noise hides it), and refining closes the gap
        # between the last good and the first bad level to one user.
        m = re.search(r"\*\*Saturates after (\d+) users\*\*", j["sweep"]["saturation"])
        self.assertIsNotNone(m, j["sweep"])
        good = int(m.group(1))
        self.assertGreaterEqual(good, 2, j["sweep"])
        self.assertIn(good + 1, users, j["sweep"])
        # The same level, still found after the levels were sorted by load.
        after = j["sweep"]["saturates_after"]
        self.assertEqual(after["users"], good, j["sweep"])
        self.assertEqual(j["levels"][after["level"]]["users"], good, j["sweep"])
        self.assertLessEqual(max(users), 8, j["sweep"])
        self.assertIn("2 requests one by one", j["server_warmup"]["summary"])
        self.assertIn("ETA", self.sweep.stderr)
        # SGLang's names filled the server table.
        top = j["levels"][-1]["server"]
        self.assertGreaterEqual(top["waiting_max"], 1)
        self.assertAlmostEqual(top["kv_usage_max"], 0.4)
        self.assertGreater(top["running_mean"], 0)

    def test_open_loop_auto_sweep_raises_the_rate_within_its_budget(self):
        self.assertEqual(self.rate.returncode, 0, self.rate.stderr)
        j = self.results(self.rate_dir)
        rates = [l["request_rate"] for l in j["levels"]]
        self.assertEqual(rates, sorted(rates))
        self.assertEqual(rates[:2], [4, 8])
        self.assertTrue(all(l["users"] == 0 for l in j["levels"]))
        self.assertIn("automatic (request rate", j["sweep"]["summary"])
        # Capacity is ~13 requests/s: 16/s (or the refined rates above it) is bad.
        self.assertIn("until goodput stopped rising", j["sweep"]["summary"])
        self.assertLessEqual(max(rates), 16)
        # The budget bounds the levels (each ~1.7 s plus drain).
        self.assertLessEqual(sum(l["wall_s"] for l in j["levels"]), 12 + 5)

    def test_levels_carry_intervals_and_the_knee_its_uncertainty(self):
        j = self.results(self.sweep_dir)
        for level in j["levels"]:
            lo, hi = level["rps_ci"]
            self.assertLessEqual(lo, level["rps"] + 1e-9)
            self.assertGreaterEqual(hi, level["rps"] - 1e-9)
            lo, hi = level["ttft_ms"]["p50_ci"]
            self.assertLessEqual(lo, hi)
            self.assertIsNotNone(level["slo_attainment_ci"])
        self.assertIn("bootstrap resamples", j["knee_uncertainty"])
        with open(os.path.join(self.sweep_dir, "report.md"), encoding="utf-8") as f:
            md = f.read()
        self.assertIn("Knee uncertainty", md)
        # Fewer than 100 requests in a level: its p99 says so instead of a number.
        self.assertIn("too few (n=", md)

    def test_llamacpp_names_fill_the_server_table(self):
        self.assertEqual(self.fixed.returncode, 0, self.fixed.stderr)
        for level in self.results(self.fixed_dir)["levels"]:
            self.assertAlmostEqual(level["server"]["kv_usage_max"], 0.4)
            self.assertGreaterEqual(level["server"]["running_mean"], 0)

    def test_compare_markdown_sets_runs_side_by_side(self):
        self.assertEqual(self.compare.returncode, 0, self.compare.stderr)
        with open(os.path.join(self.compare_dir, "report.md"), encoding="utf-8") as f:
            md = f.read()
        self.assertIn("| users | tinyserve | llama.cpp |", md)
        self.assertIn("(×", md)
        self.assertIn("not run", md)  # llama.cpp's run has no 3 or 4 users level.

    def test_compare_rejects_a_directory_without_results(self):
        bad = subprocess.run([BIN, "bench", "compare", self.tmp.name, "--output-dir",
                              os.path.join(self.tmp.name, "x")], capture_output=True, text=True,
                             timeout=30)
        self.assertEqual(bad.returncode, 1)
        self.assertIn("results.json", bad.stderr)

    def check_page(self, html, shot, min_charts):
        with open(html, encoding="utf-8") as f:
            text = f.read()
        for remote in ("http://", "https://", "src=\"//"):
            self.assertNotIn(remote + "cdn", text)
        self.assertNotIn("<script src", text)
        dom, console, png = open_in_chromium(html, self.tmp.name, shot)
        self.assertEqual(console, [], "console messages while loading " + html)
        self.assertIn('data-ready="1"', dom)
        charts = dom.count('<div class="chart"')
        self.assertGreaterEqual(charts, min_charts)
        self.assertGreaterEqual(dom.count("<polyline") + dom.count("<circle"), min_charts)
        width, height, channels, rows = png_pixels(png)
        colors, ink = set(), 0
        for row in rows[::8]:
            for x in range(0, width * channels, channels * 8):
                px = bytes(row[x:x + 3])
                colors.add(px)
                ink += px != b"\xff\xff\xff" and px != b"\xfa\xfa\xfa"
        self.assertGreater(len(colors), 20, "screenshot looks blank")
        self.assertGreater(ink, 200, "screenshot looks blank")
        return dom

    def test_run_report_renders_in_chromium(self):
        dom = self.check_page(os.path.join(self.sweep_dir, "report.html"), "run.png", 10)
        for heading in ("Capacity", "Latency percentiles", "Per task", "Server (sampled",
                        "Failures by cause", "Knee:"):
            self.assertIn(heading, dom)

    def test_compare_report_renders_and_names_every_run(self):
        dom = self.check_page(os.path.join(self.compare_dir, "report.html"), "compare.png", 10)
        self.assertIn("tinyserve", dom)
        self.assertIn("llama.cpp", dom)
        self.assertIn("Side by side", dom)


if __name__ == "__main__":
    unittest.main()
