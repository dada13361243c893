#!/usr/bin/env python3
"""Soak test (issue 17): mixed hostile load against one `tinyserve serve` for a long time.

Workers loop over a weighted mix of: normal completions and chats (streamed or not),
structured-output requests (regex, JSON Schema, choice, GBNF), streams dropped mid-way,
non-streamed requests abandoned while they generate, malformed and hostile requests (bad JSON,
deeply nested JSON, oversized heads, smuggling framing, gzip bodies), slowloris connections,
large bodies (near --max-request-bytes, often sent slowly, against the global body budget) and
connection floods from a second loopback address (127.0.0.2, past --max-connections-per-client:
the flood's extra connections get 503 while everyone on 127.0.0.1, /health included, is served).
Meanwhile it samples the server's RSS (/proc/PID/status) every --rss-every seconds and times
GET /health every second. Passes when the server never dies, /health always answers within 1 s,
RSS after warm-up (the first --warmup seconds) grows by less than --rss-slack MiB, and RSS is
flat: over the second half of the time after warm-up, the least-squares slope of the RSS floor
(each minute's lowest sample, so that bodies in flight at a sampling instant do not count) is
below --rss-slope MiB per 10 minutes. A leak of 100 bytes per request at this mix's ~20
requests/s is ~1.2 MiB per 10 minutes, so the default bound of 1 catches leaks of that order;
slow growth that only levels off after the run (a cache filling) fails it too, deliberately.

Default: 30 minutes (the issue's soak). Not part of CI. Standard library only.
  python3 benchmarks/soak.py --bin build/release/tinyserve --duration 1800
"""
import argparse
import http.client
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def rss_floor(samples, warmup):
    """(minute start, lowest RSS in that minute) for each whole minute after warm-up."""
    minutes = {}
    for t, m in samples:
        if t >= warmup:
            k = int((t - warmup) // 60)
            minutes.setdefault(k, []).append(m)
    last = max(minutes) if minutes else -1
    # The last minute is partial (and may include the shutdown): left out.
    return [(warmup + 60 * k, min(v)) for k, v in sorted(minutes.items()) if k < last]


def slope_per_10min(points):
    """Least-squares slope of (seconds, MiB) points, in MiB per 10 minutes; NaN if < 3 points."""
    if len(points) < 3:
        return float("nan")
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mm = sum(m for _, m in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    return sum((t - mt) * (m - mm) for t, m in points) / var * 600


class Soak:
    def __init__(self, args):
        self.args = args
        self.port = free_port()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.counts = {}
        self.health_ms = []
        self.health_failures = 0
        self.rss = []  # (t, MiB)

    def count(self, key):
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + 1

    def conn(self, timeout=30):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def post(self, path, body, timeout=60):
        c = self.conn(timeout)
        try:
            c.request("POST", path, body=body if isinstance(body, (bytes, str)) else json.dumps(body),
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            return r.status
        finally:
            c.close()

    def raw(self, data, pause=0.0, read=True):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=15)
        try:
            for piece in data if isinstance(data, list) else [data]:
                s.sendall(piece)
                if pause:
                    time.sleep(pause)
            if read:
                try:
                    return s.recv(4096)
                except OSError:
                    return b""
        finally:
            s.close()

    # --- the mix ---
    def normal(self, rng):
        body = {"prompt": "hello " * rng.randint(1, 40), "max_tokens": rng.randint(1, 48)}
        if rng.random() < 0.5:
            body = {"messages": [{"role": "user", "content": "hi " * rng.randint(1, 30)}],
                    "max_tokens": rng.randint(1, 48)}
            path = "/v1/chat/completions"
        else:
            path = "/v1/completions"
        body["stream"] = rng.random() < 0.5
        status = self.post(path, body)
        self.count(f"normal_{status}")

    def grammar(self, rng):
        kind = rng.choice(["regex", "json", "choice", "grammar"])
        spec = {"regex": r"[a-z]{1,8}@[a-z]{1,8}\.com",
                "json": {"type": "object", "properties": {"a": {"type": "integer"},
                                                          "b": {"type": "string", "maxLength": 5}},
                         "required": ["a"]},
                "choice": ["yes", "no", "maybe"],
                "grammar": 'root ::= "x" [0-9]+'}[kind]
        body = {"prompt": "answer", "max_tokens": 24, "structured_outputs": {kind: spec}}
        self.count(f"grammar_{self.post('/v1/completions', body)}")

    def dropped_stream(self, rng):
        c = self.conn()
        c.request("POST", "/v1/completions", headers={"Content-Type": "application/json"},
                  body=json.dumps({"prompt": "x", "max_tokens": 200, "ignore_eos": True,
                                   "stream": True}))
        r = c.getresponse()
        r.read(rng.randint(1, 300))
        c.sock.close()  # hang up mid-stream
        c.close()
        self.count("dropped_stream")

    def abandoned(self, rng):
        body = json.dumps({"prompt": "x", "max_tokens": 200, "ignore_eos": True}).encode()
        self.raw([b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept-Encoding: gzip\r\n"
                  b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body],
                 read=False)
        self.count("abandoned")

    def bad(self, rng):
        deep = "[" * 50000 + "]" * 50000
        choice = rng.randrange(7)
        if choice == 0:
            self.count(f"bad_json_{self.post('/v1/completions', '{bad')}")
        elif choice == 1:
            status = self.post("/v1/chat/completions", '{"messages":' + deep + "}")
            self.count(f"bad_deep_{status}")
        elif choice == 2:
            status = self.post("/v1/completions", '{"prompt":"a","prompt":"b"}')
            self.count(f"bad_dup_{status}")
        elif choice == 3:
            self.raw(b"GET /health HTTP/1.1\r\nHost: a\r\nX: " + b"a" * 100000 + b"\r\n\r\n")
            self.count("bad_head")
        elif choice == 4:
            self.raw(b"POST /v1/completions HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
            self.count("bad_smuggle")
        elif choice == 5:
            self.raw(b"POST /v1/completions HTTP/1.1\r\nHost: a\r\nContent-Encoding: gzip\r\n"
                     b"Content-Length: 4\r\n\r\nabcd")
            self.count("bad_gzip")
        else:
            n = rng.randint(1, 16)
            status = self.post("/v1/completions", {"prompt": ["a"] * 64, "n": n, "max_tokens": 1})
            self.count(f"bad_choices_{status}")

    def big_body(self, rng):
        # 1-3.5 MiB of valid JSON (the prompt is short; the rest is whitespace), half of them
        # trickled in 8 pieces so that several are in flight at once.
        size = rng.randint(1 << 20, 7 << 19)
        head = json.dumps({"prompt": "big", "max_tokens": 2})
        body = (head + " " * (size - len(head))).encode()
        req = (b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
               b"\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body))
        pieces = [req + body] if rng.random() < 0.5 else (
            [req] + [body[i:i + len(body) // 8 + 1] for i in range(0, len(body), len(body) // 8 + 1)])
        reply = self.raw(pieces, pause=0.2 if len(pieces) > 1 else 0.0)
        self.count(f"big_body_{reply[9:12].decode(errors='replace') or 'none'}")

    def conn_flood(self, rng):
        socks, statuses = [], {}
        try:
            for _ in range(80):
                s = socket.create_connection(("127.0.0.1", self.port), timeout=10,
                                             source_address=("127.0.0.2", 0))
                s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                socks.append(s)
            for s in socks:
                try:
                    st = s.recv(4096)[9:12].decode(errors="replace") or "none"
                except OSError:
                    st = "reset"
                statuses[st] = statuses.get(st, 0) + 1
        finally:
            for s in socks:
                s.close()
        for st, n in statuses.items():
            with self.lock:
                key = f"flood_{st}"
                self.counts[key] = self.counts.get(key, 0) + n

    def slowloris(self, rng):
        self.raw([b"POST /v1/completions HTTP/1.1\r\n", b"Host: a\r\n", b"X-Slow: 1\r\n"],
                 pause=rng.uniform(0.5, 2.0), read=False)
        self.count("slowloris")

    def worker(self, seed):
        rng = random.Random(seed)
        mix = [(self.normal, 40), (self.grammar, 20), (self.dropped_stream, 10),
               (self.abandoned, 5), (self.bad, 20), (self.slowloris, 5), (self.big_body, 4),
               (self.conn_flood, 1)]
        fns, weights = zip(*mix)
        while not self.stop.is_set():
            fn = rng.choices(fns, weights)[0]
            try:
                fn(rng)
            except (OSError, http.client.HTTPException) as e:
                self.count(f"client_error_{fn.__name__}_{type(e).__name__}")

    def monitor(self, pid, t0):
        next_rss = 0.0
        while not self.stop.is_set():
            t = time.time() - t0
            if t >= next_rss:
                self.rss.append((t, rss_mib(pid)))
                next_rss += self.args.rss_every
            start = time.time()
            try:
                c = self.conn(timeout=5)
                c.request("GET", "/health")
                ok = c.getresponse().status == 200
                c.close()
            except OSError:
                ok = False
            ms = (time.time() - start) * 1000
            with self.lock:
                self.health_ms.append(ms)
                if not ok or ms > 1000:
                    self.health_failures += 1
            self.stop.wait(max(0.0, 1.0 - (time.time() - start)))

    def run(self):
        a = self.args
        cmd = [a.bin, "serve", a.model, "--port", str(self.port), "--kv-cache-memory", "64MiB",
               "--max-model-len", "512", "--header-timeout", "3", "--read-timeout", "6"]
        log = open(a.log, "w")
        proc = subprocess.Popen(cmd, stdout=log, stderr=log)
        deadline = time.time() + 120
        while True:
            try:
                c = self.conn(timeout=2)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                sys.exit(f"server did not start; see {a.log}")
            time.sleep(0.2)
        t0 = time.time()
        threads = [threading.Thread(target=self.monitor, args=(proc.pid, t0))]
        threads += [threading.Thread(target=self.worker, args=(i,)) for i in range(a.clients)]
        for t in threads:
            t.start()
        while time.time() - t0 < a.duration and proc.poll() is None:
            time.sleep(1)
        self.stop.set()
        for t in threads:
            t.join()
        crashed = proc.poll() is not None
        if not crashed:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=60)
        else:
            code = proc.returncode
        after = [m for t, m in self.rss if t >= a.warmup]
        growth = (max(after) - after[0]) if len(after) >= 2 else float("nan")
        floor = rss_floor(self.rss, a.warmup)
        # Short runs (under 6 whole minutes after warm-up) fit all of it; under 3, no verdict.
        half = floor[len(floor) // 2:] if len(floor) >= 6 else floor
        slope = slope_per_10min(half)
        report = {
            "duration_s": round(time.time() - t0),
            "clients": a.clients,
            "crashed": crashed,
            "exit_code": code,
            "health_p50_ms": round(statistics.median(self.health_ms), 1) if self.health_ms else None,
            "health_max_ms": round(max(self.health_ms), 1) if self.health_ms else None,
            "health_over_1s_or_failed": self.health_failures,
            "rss_mib_first_after_warmup": round(after[0], 1) if after else None,
            "rss_mib_max_after_warmup": round(max(after), 1) if after else None,
            "rss_growth_after_warmup_mib": round(growth, 1),
            "rss_floor_per_minute_mib": [(round(t), round(m, 1)) for t, m in floor],
            "rss_slope_second_half_mib_per_10min": round(slope, 2),
            "rss_slope_bound_mib_per_10min": a.rss_slope,
            "rss_samples": [(round(t), round(m, 1)) for t, m in self.rss],
            "requests": dict(sorted(self.counts.items())),
        }
        print(json.dumps(report, indent=1))
        ok = (not crashed and code == 0 and self.health_failures == 0 and
              not growth > a.rss_slack and slope <= a.rss_slope)
        if slope != slope:
            print("RSS flatness not judged: fewer than 3 whole minutes after warm-up")
        print("PASS" if ok else "FAIL")
        return 0 if ok else 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--bin", default="build/release/tinyserve")
    p.add_argument("--model", default="dummy:tiny")
    p.add_argument("--duration", type=float, default=1800, help="seconds (default 30 min)")
    p.add_argument("--warmup", type=float, default=None, help="seconds (default: duration/6)")
    p.add_argument("--clients", type=int, default=12)
    p.add_argument("--rss-every", type=float, default=5)
    p.add_argument("--rss-slack", type=float, default=16, help="MiB of RSS growth allowed")
    p.add_argument("--rss-slope", type=float, default=1.0,
                   help="MiB per 10 min: bound on the RSS floor's slope over the second half "
                        "after warm-up (flatness)")
    p.add_argument("--log", default="/tmp/tinyserve_soak.log")
    args = p.parse_args()
    if args.warmup is None:
        args.warmup = args.duration / 6
    if not os.path.exists(args.bin):
        sys.exit(f"no binary at {args.bin}")
    sys.exit(Soak(args).run())


if __name__ == "__main__":
    main()
