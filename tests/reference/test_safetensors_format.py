"""Independent check of tinyserve's safetensors writer (formats/safetensors.h).

Runs tests/tools/write_test_safetensors.cc, then parses the files with the Python standard
library and NumPy only, following the format's published rules (8-byte little-endian header
length, JSON header, contiguous data in data_offsets order), and compares every value with the
formulas the tool documents.
"""
import json
import os
import struct
import subprocess
import tempfile
import unittest

import numpy as np

BUILD_DIR = os.environ.get("TINYSERVE_BUILD_DIR", "")
TOOL = os.path.join(BUILD_DIR, "tests", "tool_write_test_safetensors")

# name -> (dtype, shape), as the tool writes them.
EXPECTED = {
    "model.embed_tokens.weight": ("BF16", [5, 3]),
    "model.norm.weight": ("F32", [7]),
    "lm_head.weight": ("F16", [3, 1, 3]),
    "f64": ("F64", [2, 2]),
    "i8": ("I8", [9]),
    "i16": ("I16", [3]),
    "i32": ("I32", [1, 5]),
    "i64": ("I64", [3]),
    "scalar": ("F32", []),
    "empty": ("F16", [0, 4]),
}
NUMPY_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I8": "i1", "I16": "<i2",
                "I32": "<i4", "I64": "<i8"}
ITEM_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I8": 1, "I16": 2, "I32": 4, "I64": 8}


def expected_values(dtype, n):
    i = np.arange(n, dtype=np.int64)
    if dtype in ("F64", "F32", "F16", "BF16"):
        return i.astype(np.float64) * 0.25 - 1.0
    bits = int(dtype[1:])
    lim = 2 ** (bits - 1) - 1
    return np.array([lim - k if k % 2 == 0 else -lim + k - 1 for k in range(n)], dtype=object)


def no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError(f"duplicate keys in {keys}")
    return dict(pairs)


def parse(path):
    """Returns (metadata, {name: (dtype, shape, numpy float64 or object array)}, data size)."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    assert 8 + n <= len(blob), "header past the end"
    text = blob[8:8 + n].decode("utf-8")
    assert n % 8 == 0, "header not padded to 8 bytes"
    assert text == text.rstrip(" ") + " " * (len(text) - len(text.rstrip(" ")))
    header = json.loads(text, object_pairs_hook=no_duplicates)
    assert isinstance(header, dict)
    data = blob[8 + n:]
    metadata = header.pop("__metadata__", {})
    tensors = {}
    spans = []
    for name, entry in header.items():
        dtype, shape, (begin, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        assert end - begin == count * ITEM_BYTES[dtype], name
        assert (8 + n + begin) % ITEM_BYTES[dtype] == 0, f"{name} misaligned"
        raw = data[begin:end]
        if dtype == "BF16":
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            values = bits.view(np.float32).astype(np.float64)
        elif dtype.startswith("F"):
            values = np.frombuffer(raw, dtype=NUMPY_DTYPES[dtype]).astype(np.float64)
        else:
            values = np.array([int(v) for v in np.frombuffer(raw, dtype=NUMPY_DTYPES[dtype])],
                              dtype=object)
        tensors[name] = (dtype, shape, values)
        spans.append((begin, end))
    # The reference reader requires the data to be exactly covered, without gaps or overlap.
    position = 0
    for begin, end in sorted(spans):
        assert begin == position, f"gap or overlap at {begin} (expected {position})"
        position = end
    assert position == len(data), "trailing bytes after the last tensor"
    return metadata, tensors, len(data)


class SafetensorsFormatTest(unittest.TestCase):
    def setUp(self):
        if not os.path.exists(TOOL):
            self.fail(f"{TOOL} not built (set TINYSERVE_BUILD_DIR)")
        self.tmp = tempfile.TemporaryDirectory()
        subprocess.run([TOOL, self.tmp.name], check=True)

    def tearDown(self):
        self.tmp.cleanup()

    def check_tensor(self, name, dtype, shape, values):
        want_dtype, want_shape = EXPECTED[name]
        self.assertEqual(dtype, want_dtype, name)
        self.assertEqual(shape, want_shape, name)
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        want = expected_values(dtype, count)
        self.assertEqual(len(values), count, name)
        self.assertTrue(all(a == b for a, b in zip(values, want)), f"{name}: {values} != {want}")

    def test_single_file_matches_independent_parse(self):
        metadata, tensors, _ = parse(os.path.join(self.tmp.name, "single.safetensors"))
        self.assertEqual(metadata, {"format": "pt", "writer": "tinyserve"})
        self.assertEqual(set(tensors), set(EXPECTED))
        for name, (dtype, shape, values) in tensors.items():
            self.check_tensor(name, dtype, shape, values)

    def test_sharded_files_and_index_match_independent_parse(self):
        root = os.path.join(self.tmp.name, "sharded")
        with open(os.path.join(root, "model.safetensors.index.json"), encoding="utf-8") as f:
            index = json.load(f, object_pairs_hook=no_duplicates)
        weight_map = index["weight_map"]
        self.assertEqual(set(weight_map), set(EXPECTED))
        shards = sorted(set(weight_map.values()))
        self.assertGreater(len(shards), 1)
        total = 0
        seen = set()
        for shard in shards:
            self.assertRegex(shard, r"^model-\d{5}-of-\d{5}\.safetensors$")
            _, tensors, size = parse(os.path.join(root, shard))
            total += size
            self.assertTrue(size <= 64 or len(tensors) == 1, shard)
            self.assertEqual({n for n, s in weight_map.items() if s == shard}, set(tensors))
            for name, (dtype, shape, values) in tensors.items():
                self.check_tensor(name, dtype, shape, values)
                seen.add(name)
        self.assertEqual(seen, set(EXPECTED))
        self.assertEqual(index["metadata"]["total_size"], total)


if __name__ == "__main__":
    unittest.main()
