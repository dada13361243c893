"""The shipped deployment files, tested for real.

nginx (Debian's, run unprivileged from a temporary directory on loopback) with
deploy/nginx/tinyserve.conf in front of three `tinyserve serve dummy:tiny` instances:
- `nginx -t` accepts the shipped config;
- `tinyserve bench serve` drives nginx while one instance gets SIGTERM: zero failed requests
  (the draining instance answers 503 and nginx resends those elsewhere);
- another instance gets SIGKILL while streams run: only the streams it was serving fail, and
  new requests succeed.
deploy/k8s/*.yaml pass yamllint, and their ports, probes, flags and metric names match the
binary (`tinyserve serve --help`, /health, /version, /metrics).
Takes about a minute.
# ctest: no_asan (three servers, nginx and a bench run; the server paths have ASan tests of their own)
"""
import glob
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request

import yaml

BIN = os.environ.get("TINYSERVE_BIN", "tinyserve")
SOURCE = os.environ.get("TINYSERVE_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
NGINX_CONF = os.path.join(SOURCE, "deploy", "nginx", "tinyserve.conf")
K8S = os.path.join(SOURCE, "deploy", "k8s")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def status(url):
    try:
        return get(url, timeout=1)[0]
    except OSError:
        return -1


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def metric(text, name):
    total = None
    for line in text.splitlines():
        m = re.match(r"^" + re.escape(name) + r"(\{[^}]*\})? (\S+)$", line)
        if m:
            total = (total or 0) + float(m.group(2))
    return total


class Instance:
    def __init__(self, log_dir):
        self.port = free_port()
        self.log = open(os.path.join(log_dir, f"tinyserve-{self.port}.log"), "w")
        self.proc = subprocess.Popen(
            [BIN, "serve", "dummy:tiny", "--port", str(self.port), "--kv-cache-memory", "64MiB",
             "--max-model-len", "4096", "--request-timeout", "30", "--shutdown-timeout", "20"],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"

    def healthy(self):
        return status(self.url + "/health") == 200

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        self.log.close()


def nginx_config(tmp, listen_port, upstream_ports):
    """The shipped file with this test's ports, wrapped in a main config that needs no root."""
    with open(NGINX_CONF) as f:
        conf = f.read()
    conf = conf.replace("listen 8000;", f"listen 127.0.0.1:{listen_port};")
    for shipped, port in zip((8001, 8002, 8003), upstream_ports):
        conf = conf.replace(f"127.0.0.1:{shipped}", f"127.0.0.1:{port}")
    with open(os.path.join(tmp, "tinyserve.conf"), "w") as f:
        f.write(conf)
    main = f"""
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {tmp}/tinyserve.conf;
}}
"""
    path = os.path.join(tmp, "nginx.conf")
    with open(path, "w") as f:
        f.write(main)
    return path


def stream(port, out, idx, started):
    """One long streaming completion through nginx (2,000 tokens: long enough on a fast machine
    to be still running when the test kills its instance); records ok / failure."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request("POST", "/v1/completions", json.dumps(
            {"prompt": "count", "max_tokens": 2000, "ignore_eos": True, "stream": True}),
            {"Content-Type": "application/json"})
        r = c.getresponse()
        if r.status != 200:
            out[idx] = f"http_{r.status}"
            started.release()
            return
        first = True
        body = b""
        while True:
            chunk = r.read1(65536)
            if not chunk:
                break
            body += chunk
            if first and b"data: " in body:
                first = False
                started.release()
        out[idx] = "ok" if body.rstrip().endswith(b"data: [DONE]") else "truncated"
    except (OSError, http.client.HTTPException) as e:
        out[idx] = f"error: {e}"
    finally:
        if first:
            started.release()


class DeployTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for tool in ("nginx", "yamllint"):
            if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
                raise AssertionError(f"{tool} is not installed (scripts/setup.sh installs it)")
        cls.nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
        cls.tmp = tempfile.mkdtemp(prefix="tinyserve-deploy-")
        # Run as root, nginx's workers drop to `nobody`: they must reach their temp paths (large
        # request bodies are buffered to disk).
        os.chmod(cls.tmp, 0o755)
        cls.instances = [Instance(cls.tmp) for _ in range(3)]
        cls.nginx = None
        try:
            for i in cls.instances:
                wait_until(i.healthy, 120, f"instance on port {i.port}")
            cls.port = free_port()
            cls.conf = nginx_config(cls.tmp, cls.port, [i.port for i in cls.instances])
            cls.nginx = subprocess.Popen([cls.nginx_bin, "-c", cls.conf, "-g", "daemon off;"],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
            wait_until(lambda: status(f"http://127.0.0.1:{cls.port}/health") == 200, 20, "nginx")
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.nginx is not None and cls.nginx.poll() is None:
            cls.nginx.terminate()
            cls.nginx.wait(timeout=10)
        for i in cls.instances:
            i.stop()
        if not os.environ.get("TINYSERVE_KEEP_TMP"):
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_1_nginx_accepts_the_shipped_config(self):
        r = subprocess.run([self.nginx_bin, "-t", "-c", self.conf], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("test is successful", r.stderr)

    def test_2_sigterm_mid_run_loses_no_request(self):
        out = os.path.join(self.tmp, "bench")
        bench = subprocess.Popen(
            [BIN, "bench", "serve", "--base-url", f"http://127.0.0.1:{self.port}/v1",
             "--model", "dummy:tiny", "--users", "6", "--think-time", "0.05-0.2", "--duration", "12",
             "--warmup", "0", "--timeout", "30", "--max-tokens", "24", "--mix", "summary=1,code=1",
             "--output-dir", out],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            victim = self.instances[0]
            # Mid-run: once the victim has finished some of the bench's requests.
            wait_until(lambda: (metric(get(victim.url + "/metrics")[1],
                                       "tinyserve:request_success_total") or 0) >= 3, 30,
                       "requests on the first instance")
            victim.proc.send_signal(signal.SIGTERM)
            self.assertEqual(victim.proc.wait(timeout=40), 0)
            _, err = bench.communicate(timeout=90)
        finally:
            if bench.poll() is None:
                bench.kill()
        self.assertEqual(bench.returncode, 0, err)
        with open(os.path.join(out, "results.json")) as f:
            level = json.load(f)["levels"][0]
        self.assertGreater(level["ok"], 10)
        self.assertEqual(level["failures"], 0, level["failures_by_cause"])

    def test_3_sigkill_fails_only_the_streams_it_served(self):
        live = [i for i in self.instances if i.proc.poll() is None]
        self.assertGreaterEqual(len(live), 2)
        victim = live[0]
        results = [None] * 6
        started = threading.Semaphore(0)
        threads = [threading.Thread(target=stream, args=(self.port, results, k, started))
                   for k in range(len(results))]
        for t in threads:
            t.start()
        for _ in threads:
            self.assertTrue(started.acquire(timeout=30))
        # Every stream has read a token, so the victim counts each of its streams (running, or
        # waiting if preempted since) in /metrics.
        text = get(victim.url + "/metrics")[1]
        held = (metric(text, "tinyserve:num_requests_running") +
                metric(text, "tinyserve:num_requests_waiting"))
        victim.proc.kill()
        victim.proc.wait(timeout=10)
        for t in threads:
            t.join(timeout=60)
        failed = [r for r in results if r != "ok"]
        self.assertGreaterEqual(held, 1, "least_conn sent no stream to the victim")
        self.assertEqual(len(failed), held, results)
        # New requests go to the instances that are left (nginx skips the dead one).
        for _ in range(6):
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            c.request("POST", "/v1/completions", json.dumps({"prompt": "hi", "max_tokens": 4}),
                      {"Content-Type": "application/json"})
            r = c.getresponse()
            self.assertEqual(r.status, 200, r.read())
            r.read()

    def test_4_k8s_manifests_lint_and_match_the_binary(self):
        r = subprocess.run(["yamllint", "-c", os.path.join(K8S, ".yamllint"), K8S],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        docs = {}
        for path in glob.glob(os.path.join(K8S, "*.yaml")):
            with open(path) as f:
                for d in yaml.safe_load_all(f):
                    docs[d["kind"]] = d
        pod = docs["Deployment"]["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        args = c["args"]
        self.assertEqual(args[0], "serve")
        help_text = subprocess.run([BIN, "serve", "--help"], capture_output=True, text=True).stdout
        flags = [a for a in args if a.startswith("--")]
        for flag in flags:
            self.assertRegex(help_text, r"\s" + re.escape(flag) + r"[\s=]", flag)
        value = {f: args[args.index(f) + 1] for f in flags}
        port = int(value["--port"])
        (container_port,) = c["ports"]
        self.assertEqual(container_port["containerPort"], port)
        self.assertEqual(docs["Service"]["spec"]["ports"][0]["targetPort"], container_port["name"])
        annotations = docs["Deployment"]["spec"]["template"]["metadata"]["annotations"]
        self.assertEqual(int(annotations["prometheus.io/port"]), port)
        # Probes: readiness and startup on /health (503 while draining), liveness elsewhere;
        # each path answers 200 on a running instance.
        live = next(i for i in self.instances if i.proc.poll() is None)
        self.assertEqual(c["readinessProbe"]["httpGet"]["path"], "/health")
        self.assertNotEqual(c["livenessProbe"]["httpGet"]["path"], "/health")
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            self.assertEqual(c[probe]["httpGet"]["port"], container_port["name"])
            self.assertEqual(get(live.url + c[probe]["httpGet"]["path"])[0], 200, probe)
        self.assertEqual(get(live.url + annotations["prometheus.io/path"])[0], 200)
        # The grace covers preStop, the drain (--shutdown-timeout) and the 5 s abort wait.
        pre_stop = int(c["lifecycle"]["preStop"]["exec"]["command"][1])
        self.assertGreaterEqual(pod["terminationGracePeriodSeconds"],
                                pre_stop + float(value["--shutdown-timeout"]) + 5)
        # The HPA's metric is the adapter's rename of a metric the binary exports.
        metrics_text = get(live.url + "/metrics")[1]
        hpa_metric = docs["HorizontalPodAutoscaler"]["spec"]["metrics"][0]["pods"]["metric"]["name"]
        adapter = yaml.safe_load(docs["ConfigMap"]["data"]["config.yaml"])["rules"][0]
        series = re.match(r"^([a-z_:]+)\{", adapter["seriesQuery"]).group(1)
        self.assertIsNotNone(metric(metrics_text, series), series)
        renamed = re.sub(adapter["name"]["matches"], adapter["name"]["as"].replace("${1}", r"\1"),
                         series)
        self.assertEqual(renamed, hpa_metric)
        self.assertEqual(docs["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"],
                         docs["Deployment"]["metadata"]["name"])
        self.assertEqual(docs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
                         docs["Deployment"]["spec"]["selector"]["matchLabels"])


if __name__ == "__main__":
    unittest.main()
