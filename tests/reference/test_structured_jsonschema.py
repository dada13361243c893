# ctest: no_asan (mask-driven generation over 60 schemas; structured_test covers ASan)
"""Outputs generated only through structured/'s token masks are valid.

tests/tools/structured_tool.cc compiles each spec with the real Qwen2.5 vocabulary and generates
seeded random outputs by picking uniformly among the tokens the mask allows (with the token
budget steering to a close). Independent checks: Debian's python3-jsonschema validates every JSON
output against its schema (tests/data/structured_schemas.jsonl), Python's re.fullmatch checks
regex outputs, choices must be in the list, a JSON GBNF's outputs must parse with json, and tool
calls must name a tool and carry arguments valid for its parameters.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

import jsonschema

SOURCE_DIR = os.environ.get("TINYSERVE_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD_DIR = os.environ.get("TINYSERVE_BUILD_DIR", os.path.join(SOURCE_DIR, "build", "release"))
TOOL = os.path.join(BUILD_DIR, "tests", "tool_structured_tool")
TOKENIZER = os.path.join(
    os.environ.get("TINYSERVE_CACHE",
                   os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "tinyserve")),
    "qwen-tokenizer", "tokenizer.json")


def under_sanitizer():
    try:
        with open(os.path.join(BUILD_DIR, "CMakeCache.txt")) as f:
            return "fsanitize=address" in f.read()
    except OSError:
        return False


SEEDS = 2 if under_sanitizer() else 3
MAX_TOKENS = 96

# RFC 3339 shapes, for formats this jsonschema build may not check (they need extra packages).
DATE = r"\d{4}-\d{2}-\d{2}"
TIME = r"\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})"
FORMAT_RE = {"date-time": re.compile(DATE + "T" + TIME), "time": re.compile(TIME)}


def format_checker():
    # The 2020-12 checker (the generic FormatChecker also holds draft 3's older "time").
    checker = (getattr(jsonschema.Draft202012Validator, "FORMAT_CHECKER", None)
               or getattr(jsonschema, "draft202012_format_checker", None) or jsonschema.FormatChecker())

    def check(fmt):
        def f(value):
            if not isinstance(value, str):
                return True
            if not FORMAT_RE[fmt].fullmatch(value):
                return False
            import datetime
            if fmt == "date-time":
                datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
            return True
        return f

    for fmt in FORMAT_RE:
        if fmt not in checker.checkers:
            checker.checks(fmt, raises=(ValueError,))(check(fmt))
    return checker


def run_tool(specs, seeds=SEEDS, max_tokens=MAX_TOKENS):
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for s in specs:
            f.write(json.dumps(s) + "\n")
        path = f.name
    try:
        out = subprocess.run([TOOL, path, str(seeds), str(max_tokens)], capture_output=True,
                             text=True, timeout=500)
    finally:
        os.unlink(path)
    if out.returncode != 0:
        raise AssertionError(f"tool failed ({out.returncode}): {out.stderr}")
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


class StructuredOutputsAreValid(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for path, what in ((TOOL, "tool_structured_tool (build the tests)"),
                           (TOKENIZER, "the Qwen tokenizer files (run scripts/setup.sh)")):
            if not os.path.exists(path):
                raise AssertionError(f"missing {what}: {path}")

    def test_json_schema_outputs_validate(self):
        with open(os.path.join(SOURCE_DIR, "tests", "data", "structured_schemas.jsonl")) as f:
            entries = [json.loads(line) for line in f if line.strip()]
        self.assertGreaterEqual(len(entries), 50)
        schemas = {e["id"]: e["schema"] for e in entries}
        results = run_tool([{"id": e["id"], "kind": "json_schema", "schema": e["schema"]} for e in entries])
        checker = format_checker()
        seen = set()
        for r in results:
            self.assertNotIn("error", r, f"schema {r['id']} failed to compile: {r.get('error')}")
            self.assertTrue(r["finished"], f"schema {r['id']} seed {r['seed']} did not close: {r['text']!r}")
            value = json.loads(r["text"])
            jsonschema.Draft202012Validator(schemas[r["id"]], format_checker=checker).validate(value)
            seen.add(r["id"])
        self.assertEqual(seen, set(schemas))

    def test_json_object_outputs_are_objects(self):
        for r in run_tool([{"id": 0, "kind": "json_object"}], seeds=SEEDS * 4):
            self.assertTrue(r["finished"], r["text"])
            self.assertIsInstance(json.loads(r["text"]), dict)

    def test_regex_outputs_fullmatch(self):
        patterns = [r"\d{3}-\d{4}", r"[A-Z][a-z]{2,8}( [A-Z][a-z]{2,8}){0,2}\.", r"(ab|cd)+e?",
                    r"[^\n]{1,10}", r"(\+\d{1,3} )?\(?\d{3}\)?[ -]?\d{3}-\d{4}", r"[a-f0-9]{8}",
                    r"(true|false|null)", r"\w+@\w+\.(com|org)", r"(a+)+b", r"x{2,5}y?"]
        results = run_tool([{"id": i, "kind": "regex", "text": p} for i, p in enumerate(patterns)])
        self.assertEqual(len(results), len(patterns) * SEEDS)
        for r in results:
            self.assertTrue(r["finished"], r)
            self.assertIsNotNone(re.fullmatch(patterns[r["id"]], r["text"]), (patterns[r["id"]], r["text"]))

    def test_choice_outputs_are_choices(self):
        choices = ["yes", "no", "y", "Paris, France", "ünïcode ✓"]
        for r in run_tool([{"id": 0, "kind": "choice", "choices": choices}], seeds=SEEDS * 4):
            self.assertIn(r["text"], choices)

    def test_gbnf_outputs_parse(self):
        json_gbnf = "\n".join([
            r'root ::= object',
            r'value ::= object | array | string | number | ("true" | "false" | "null")',
            r'object ::= "{" ws ( string ":" ws value ("," ws string ":" ws value)* )? "}"',
            r'array ::= "[" ws ( value ("," ws value)* )? "]"',
            r'string ::= "\"" ( [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4}) )* "\""',
            r'number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9] [0-9]{0,15})?',
            r'ws ::= | " " | "\n" [ \t]{0,20}',
        ])
        arith = 'root ::= expr\nexpr ::= term (("+" | "-") term)*\nterm ::= factor (("*" | "/") factor)*\n' \
                'factor ::= [0-9]+ | "(" expr ")"\n'
        results = run_tool([{"id": 0, "kind": "grammar", "text": json_gbnf},
                            {"id": 1, "kind": "grammar", "text": arith}])
        for r in results:
            self.assertNotIn("error", r)
            self.assertTrue(r["finished"], r)
            if r["id"] == 0:
                self.assertIsInstance(json.loads(r["text"]), dict)
            else:
                self.assertIsNotNone(re.fullmatch(r"[0-9+\-*/()]+", r["text"]), r["text"])
                self.assertEqual(r["text"].count("("), r["text"].count(")"))

    def test_tool_call_outputs_parse_and_validate(self):
        functions = [
            {"name": "get_weather", "parameters": {"type": "object", "properties": {
                "city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}},
                "required": ["city", "unit"]}},
            {"name": "add", "parameters": {"type": "object", "properties": {
                "a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}},
        ]
        by_name = {f["name"]: f["parameters"] for f in functions}
        spec = json.dumps({"functions": functions, "multiple": True})
        for r in run_tool([{"id": 0, "kind": "tool_calls", "text": spec}], max_tokens=128):
            self.assertTrue(r["finished"], r)
            blocks = re.findall(r"<tool_call>\n(.*?)\n</tool_call>", r["text"], flags=re.S)
            self.assertGreaterEqual(len(blocks), 1, r["text"])
            self.assertEqual("\n".join(f"<tool_call>\n{b}\n</tool_call>" for b in blocks), r["text"])
            for b in blocks:
                call = json.loads(b)
                self.assertIn(call["name"], by_name)
                jsonschema.validate(call["arguments"], by_name[call["name"]])

    def test_unsupported_and_bad_specs_are_errors(self):
        bad = [{"id": 0, "kind": "json_schema", "schema": {"type": "object", "minProperties": 2}},
               {"id": 1, "kind": "regex", "text": "(a)\\1"},
               {"id": 2, "kind": "regex", "text": "(x{1000}){1000}"},
               {"id": 3, "kind": "grammar", "text": "root ::= root \"a\" | \"b\""},
               {"id": 4, "kind": "grammar", "text": "root ::= undefined"}]
        results = run_tool(bad, seeds=1)
        self.assertEqual(len(results), len(bad))
        for r in results:
            self.assertIn("error", r, r)
        self.assertIn("minProperties", results[0]["error"])


if __name__ == "__main__":
    unittest.main()
