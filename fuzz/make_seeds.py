#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz/*_fuzzer targets under OUT/<target>/ from the tests' data
(tests/data), small model files built here in GGUF and safetensors form, and the first bytes of
the llama.cpp GGUF fixtures when present. Deterministic; run by scripts/fuzz.sh."""
import hashlib
import json
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write(out, target, data):
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + hashlib.sha1(data).hexdigest()[:16]), "wb") as f:
        f.write(data)


def gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf_value(kind, v):
    fmt = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
           11: "<q", 12: "<d"}
    if kind == 8:
        return gguf_string(v)
    if kind == 9:
        sub, items = v
        return struct.pack("<IQ", sub, len(items)) + b"".join(gguf_value(sub, x) for x in items)
    return struct.pack(fmt[kind], v)


def gguf(kvs, tensors, alignment=32):
    """kvs: [(key, type, value)]; tensors: [(name, dims innermost-first, ggml type, data)]."""
    kvs = list(kvs)
    if alignment != 32:
        kvs.append(("general.alignment", 4, alignment))
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs))
    for key, kind, value in kvs:
        out += gguf_string(key) + struct.pack("<I", kind) + gguf_value(kind, value)
    offset = 0
    blobs = []
    for name, dims, ggml_type, data in tensors:
        out += gguf_string(name) + struct.pack("<I", len(dims))
        out += b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", ggml_type, offset)
        blobs.append((offset, data))
        offset += (len(data) + alignment - 1) // alignment * alignment
    out += b"\0" * ((-len(out)) % alignment)
    body = bytearray(offset)
    for off, data in blobs:
        body[off:off + len(data)] = data
    return out + bytes(body)


def gguf_seeds(out):
    kvs = [("general.architecture", 8, "qwen2"), ("general.name", 8, "fuzz"),
           ("qwen2.block_count", 4, 1), ("qwen2.context_length", 4, 64),
           ("qwen2.embedding_length", 4, 8), ("qwen2.rope.freq_base", 6, 10000.0),
           ("tokenizer.ggml.model", 8, "gpt2"),
           ("tokenizer.ggml.tokens", 9, (8, ["a", "b", "ab", "<|endoftext|>"])),
           ("tokenizer.ggml.token_type", 9, (5, [1, 1, 1, 3])),
           ("tokenizer.ggml.merges", 9, (8, ["a b"])), ("flag", 7, True),
           ("u8", 0, 7), ("i8", 1, -7), ("u16", 2, 700), ("i16", 3, -700), ("u64", 10, 1 << 40),
           ("i64", 11, -(1 << 40)), ("f64", 12, 0.5), ("nested", 9, (9, []))]
    f32 = struct.pack("<8f", *range(8))
    f16 = struct.pack("<8e", *range(8))
    q8_0 = struct.pack("<e", 0.5) + bytes(range(32))  # one Q8_0 block of 32 values
    write(out, "gguf_reader_fuzzer", gguf(kvs, [("token_embd.weight", [8, 1], 0, f32)]))
    write(out, "gguf_reader_fuzzer", gguf(kvs[:3], [("a", [4, 2], 1, f16), ("b", [32], 8, q8_0)]))
    write(out, "gguf_reader_fuzzer", gguf(kvs[:1], [("c", [2, 2, 2], 0, f32)], alignment=64))
    write(out, "gguf_reader_fuzzer", gguf([], []))
    fixtures = os.environ.get("TINYSERVE_FIXTURES",
                              os.path.join(os.path.dirname(ROOT), "shared", "fixtures", "llamacpp"))
    if not os.path.isdir(fixtures):
        fixtures = "/work/shared/fixtures/llamacpp"
    if os.path.isdir(fixtures):
        for name in [n for n in sorted(os.listdir(fixtures)) if n.endswith(".gguf")][:4]:
            with open(os.path.join(fixtures, name), "rb") as f:
                write(out, "gguf_reader_fuzzer", f.read(4096))  # header start: metadata


def safetensors(tensors, metadata=None):
    header, offset, body = {}, 0, b""
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        body += data
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * ((-len(h)) % 8)
    return struct.pack("<Q", len(h)) + h + body


def safetensors_seeds(out):
    write(out, "safetensors_reader_fuzzer",
          safetensors([("w", "F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4)),
                       ("b", "BF16", [2], b"\x80\x3f\x00\x40")], {"format": "pt"}))
    write(out, "safetensors_reader_fuzzer",
          safetensors([("x", "F16", [3], struct.pack("<3e", 1, 2, 3)), ("s", "I64", [], b"\1" * 8)]))
    write(out, "safetensors_reader_fuzzer", safetensors([]))


def text_seeds(out):
    with open(os.path.join(ROOT, "tests", "data", "tokenizer_corpus.jsonl")) as f:
        for i, line in enumerate(f):
            entry = json.loads(line)
            if "hex" in entry:  # raw bytes (invalid UTF-8 cases)
                write(out, "tokenizer_fuzzer", bytes.fromhex(entry["hex"])[:2048])
            elif i % 4 == 0 or entry.get("allow_special"):
                write(out, "tokenizer_fuzzer", entry["text"][:2048])
    write(out, "tokenizer_fuzzer", "<|im_start|>user\nhi<|im_end|>\n<|endoftext|> <tool_call>")


def chat_seeds(out, schemas):
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi <|im_end|>"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function",
                 "function": {"name": "get", "arguments": "{\"city\": \"Paris\"}"}}]},
            {"role": "tool", "content": "sunny", "tool_call_id": "c1"},
            {"role": "user", "content": [{"type": "text", "text": "and now?"}]}]
    tools = [{"type": "function", "function": {"name": "get", "description": "weather",
              "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                             "required": ["city"]}}}]
    bodies = [
        {"model": "tiny", "messages": msgs[:2], "max_tokens": 8},
        {"messages": msgs, "tools": tools, "tool_choice": "auto", "n": 2, "logprobs": True,
         "top_logprobs": 2, "stream": True, "stream_options": {"include_usage": True}},
        {"messages": msgs[:2], "tools": tools, "tool_choice": {"type": "function",
                                                               "function": {"name": "get"}}},
        {"messages": msgs[:2], "response_format": {"type": "json_object"}, "seed": 1,
         "temperature": 0.5, "top_p": 0.9, "stop": ["x"], "logit_bias": {"5": -100}},
        {"messages": msgs[:2], "guided_regex": "[a-z]{1,8}", "min_tokens": 2},
        {"messages": msgs[:2], "guided_grammar": "root ::= \"yes\" | \"no\""},
        {"messages": msgs[:2], "guided_choice": ["a", "b"], "continue_final_message": False},
        {"prompt": ["hello", "world"], "max_tokens": 4, "echo": True, "logprobs": 1},
        {"prompt": [1, 2, 3], "suffix": None, "best_of": 1},
        # /v1/responses bodies (the fuzzer also translates every body as one).
        {"model": "tiny", "input": "Hi", "instructions": "Be brief.", "max_output_tokens": 8,
         "stream": True},
        {"input": [{"role": "user", "content": [{"type": "input_text", "text": "2+3?"}]},
                   {"type": "function_call", "call_id": "c1", "name": "get",
                    "arguments": "{\"city\": \"Paris\"}"},
                   {"type": "function_call_output", "call_id": "c1", "output": "sunny"}],
         "tools": [{"type": "function", "name": "get", "parameters": tools[0]["function"]["parameters"]}],
         "tool_choice": {"type": "function", "name": "get"},
         "text": {"format": {"type": "json_schema", "name": "s", "schema": {"type": "object"}}}},
        # /v1/messages bodies (the fuzzer also translates every body as one).
        {"model": "tiny", "max_tokens": 8, "system": [{"type": "text", "text": "Be brief."}],
         "messages": [{"role": "user", "content": "Hi"}], "stop_sequences": ["x"], "stream": True},
        {"max_tokens": 64, "tools": [{"name": "get", "input_schema": tools[0]["function"]["parameters"]}],
         "tool_choice": {"type": "tool", "name": "get", "disable_parallel_tool_use": True},
         "messages": [{"role": "user", "content": "Weather?"},
                      {"role": "assistant", "content": [
                          {"type": "text", "text": "Checking."},
                          {"type": "tool_use", "id": "t1", "name": "get", "input": {"city": "Paris"}}]},
                      {"role": "user", "content": [
                          {"type": "tool_result", "tool_use_id": "t1", "content": "sunny"}]}],
         "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}}},
    ]
    for s in schemas[:8]:
        bodies.append({"messages": msgs[:2], "response_format": {
            "type": "json_schema", "json_schema": {"name": "s", "schema": s, "strict": True}}})
    for b in bodies:
        write(out, "chat_request_fuzzer", json.dumps(b))


def grammar_seeds(out, schemas):
    # First byte: 0 JSON Schema, 1 regex, 2 GBNF, 3 choice, 4 tool-call spec, 5 any JSON object.
    for s in schemas:
        write(out, "grammar_fuzzer", b"\0" + json.dumps(s).encode())
    for r in ["[a-z]+@[a-z]+\\.(com|org)", "(?:a?){20}b", "\\d{2,4}-\\w*", "(ab|cd)*e?",
              "[^\"\\\\]{0,10}", "(?P<x>\\s+)|\\u00e9+"]:
        write(out, "grammar_fuzzer", b"\1" + r.encode())
    for g in ['root ::= "a" root | "b"', 'root ::= item+ "."\nitem ::= [a-c] | "(" root ")"',
              'root ::= x\nx ::= "a" x "b" | "d"', 'root ::= [^\\n]{1,5} ("\\n" root)?',
              'root ::= ("x"? "y"*){2,3}']:
        write(out, "grammar_fuzzer", b"\2" + g.encode())
    write(out, "grammar_fuzzer", b"\3" + json.dumps(["yes", "no", "maybe"]).encode())
    write(out, "grammar_fuzzer", b"\4" + json.dumps({"functions": [
        {"name": "get", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}],
        "multiple": True}).encode())
    write(out, "grammar_fuzzer", b"\5")


def main():
    out = sys.argv[1]
    with open(os.path.join(ROOT, "tests", "data", "structured_schemas.jsonl")) as f:
        schemas = [json.loads(line)["schema"] for line in f]
    gguf_seeds(out)
    safetensors_seeds(out)
    text_seeds(out)
    chat_seeds(out, schemas)
    grammar_seeds(out, schemas)


if __name__ == "__main__":
    main()
