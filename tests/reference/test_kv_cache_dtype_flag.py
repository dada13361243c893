"""--kv-cache-dtype as vLLM and llama.cpp users spell it: `serve` and `bench throughput` accept
f16 / auto, bf16, f32 and int8 (also i8 and llama.cpp's q8_0), and refuse anything else with a
clear error before the model is loaded (exit status 1, no "loaded ..." line): vLLM's fp8
spellings get a message that names int8 as the one-byte cache here.
"""
import os
import socket
import subprocess
import unittest

BIN = os.environ.get("TINYSERVE_BIN", "build/release/src/cli/tinyserve")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(kv_dtype):
    # The full-size dummy: refusing it after the load would take seconds and log "loaded".
    return subprocess.run([BIN, "serve", "dummy:qwen2.5-0.5b", "--port", str(free_port()),
                           "--kv-cache-dtype", kv_dtype], capture_output=True, text=True,
                          timeout=60)


class KvCacheDtypeFlagTest(unittest.TestCase):
    def test_fp8_is_refused_before_loading_and_points_at_int8(self):
        for spelling in ["fp8", "fp8_e4m3", "fp8_e5m2"]:
            with self.subTest(spelling=spelling):
                proc = serve(spelling)
                self.assertEqual(proc.returncode, 1, proc.stderr)
                self.assertIn(f"--kv-cache-dtype {spelling} is not supported on CPU",
                              proc.stderr)
                self.assertIn("int8", proc.stderr)
                self.assertNotIn("loaded", proc.stderr)

    def test_unknown_value_is_refused_before_loading(self):
        proc = serve("int4")
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertIn('--kv-cache-dtype must be f16, bf16, f32 or int8, got "int4"', proc.stderr)
        self.assertNotIn("loaded", proc.stderr)

    def test_accepted_spellings_run(self):
        # bench throughput reports the cache's type in its engine line. One spelling per type
        # (each run takes ~25 s under ASan), the aliases where one exists.
        want = {"auto": "f16", "bf16": "bf16", "f32": "f32", "q8_0": "i8"}
        for spelling, dtype in want.items():
            with self.subTest(spelling=spelling):
                proc = subprocess.run(
                    [BIN, "bench", "throughput", "--model", "dummy:tiny", "--num-prompts", "2",
                     "--input-len", "8", "--output-len", "2", "--kv-cache-dtype", spelling,
                     "--kv-cache-memory", "16MiB"],
                    capture_output=True, text=True, timeout=120)
                self.assertEqual(proc.returncode, 0, proc.stderr)
                self.assertIn(f"MiB, {dtype})", proc.stderr + proc.stdout)


if __name__ == "__main__":
    unittest.main()
