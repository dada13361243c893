"""A minimal GGUF v3 reader/writer for building corrupt files from the llama.cpp fixtures
(tests/reference/test_gguf_hostile.py). Metadata values are kept as (type, python value);
tensor data is carried over as raw bytes, so a file can be edited and written back.
"""
import struct

STRING, ARRAY = 8, 9
SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
           11: "<q", 12: "<d"}


class Gguf:
    def __init__(self, path):
        with open(path, "rb") as f:
            self.buf = f.read()
        self.pos = 0
        magic, self.version, n_tensors, n_kv = struct.unpack_from("<4sIQQ", self.buf, 0)
        assert magic == b"GGUF" and self.version == 3
        self.pos = 24
        self.kv = []  # [key, type, value]; arrays: value = (element type, [values])
        for _ in range(n_kv):
            key = self._str()
            t = self._u32()
            self.kv.append([key, t, self._value(t)])
        self.tensors = []  # [name, dims (ne order), type id, offset]
        for _ in range(n_tensors):
            name = self._str()
            nd = self._u32()
            dims = list(struct.unpack_from(f"<{nd}Q", self.buf, self.pos))
            self.pos += 8 * nd
            t = self._u32()
            off = struct.unpack_from("<Q", self.buf, self.pos)[0]
            self.pos += 8
            self.tensors.append([name, dims, t, off])
        self.alignment = 32
        start = (self.pos + 31) // 32 * 32
        self.data = self.buf[start:]

    def _u32(self):
        v = struct.unpack_from("<I", self.buf, self.pos)[0]
        self.pos += 4
        return v

    def _str(self):
        n = struct.unpack_from("<Q", self.buf, self.pos)[0]
        s = self.buf[self.pos + 8:self.pos + 8 + n]
        self.pos += 8 + n
        return s.decode("utf-8", "surrogateescape")

    def _value(self, t):
        if t == STRING:
            return self._str()
        if t == ARRAY:
            et = self._u32()
            n = struct.unpack_from("<Q", self.buf, self.pos)[0]
            self.pos += 8
            return (et, [self._value(et) for _ in range(n)])
        fmt = SCALARS[t]
        v = struct.unpack_from(fmt, self.buf, self.pos)[0]
        self.pos += struct.calcsize(fmt)
        return v

    def get(self, key):
        return next(kv for kv in self.kv if kv[0] == key)

    def tensor(self, name):
        return next(t for t in self.tensors if t[0] == name)

    @staticmethod
    def _enc_str(s):
        b = s.encode("utf-8", "surrogateescape")
        return struct.pack("<Q", len(b)) + b

    def _enc_value(self, t, v):
        if t == STRING:
            return self._enc_str(v)
        if t == ARRAY:
            et, items = v
            return struct.pack("<IQ", et, len(items)) + b"".join(self._enc_value(et, x) for x in items)
        return struct.pack(SCALARS[t], v)

    def write(self, path):
        out = bytearray(struct.pack("<4sIQQ", b"GGUF", 3, len(self.tensors), len(self.kv)))
        for key, t, v in self.kv:
            out += self._enc_str(key) + struct.pack("<I", t) + self._enc_value(t, v)
        for name, dims, t, off in self.tensors:
            out += self._enc_str(name) + struct.pack("<I", len(dims))
            out += struct.pack(f"<{len(dims)}Q", *dims) + struct.pack("<IQ", t, off)
        out += b"\0" * ((-len(out)) % self.alignment)
        out += self.data
        with open(path, "wb") as f:
            f.write(out)
