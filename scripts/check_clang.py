#!/usr/bin/env python3
"""Parses every C++ file of a clang build's compile_commands.json with -fsyntax-only.

The `clang` preset configures (never builds) a tree compiled by clang 14 with -Wall -Wextra
-Wthread-safety -Werror, so this is the warnings-as-errors build of CI and the check of the
thread-safety annotations (util/thread_annotations.h). Parsing without code generation costs a
fraction of a build (clang's warnings all come from the front end, so none are lost).

CI passes --exclude '^src/|/Unity/': clang-tidy (check_tidy.sh) parses every src/ file (through
the modules' unity files) with the same flags and fails on the same compiler errors, so only the
files it does not read are parsed here.

Usage: check_clang.py BUILD_DIR [-j N] [--filter REGEX] [--exclude REGEX]. The regexes match
paths relative to the repository root. Exits 1 and prints the diagnostics if any file fails.
"""
import argparse
import concurrent.futures
import json
import os
import re
import shlex
import subprocess
import sys
import time


def command_of(entry):
    args = entry["arguments"] if "arguments" in entry else shlex.split(entry["command"])
    out = []
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if a == "-o":  # no object is written
            skip = True
            continue
        out.append(a)
    return out + ["-fsyntax-only"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build_dir")
    ap.add_argument("-j", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--filter", default="", help="only files whose path matches this regex")
    ap.add_argument("--exclude", default=None, help="skip files whose path matches this regex")
    args = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def wanted(file):
        rel = os.path.relpath(file, root)
        return re.search(args.filter, rel) and not (args.exclude and re.search(args.exclude, rel))

    with open(os.path.join(args.build_dir, "compile_commands.json")) as f:
        entries = [e for e in json.load(f) if wanted(e["file"])]
    start = time.monotonic()

    def run(entry):
        p = subprocess.run(command_of(entry), cwd=entry["directory"], capture_output=True,
                           text=True)
        return entry["file"], p.returncode, p.stdout + p.stderr

    failed = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.j) as pool:
        for file, rc, out in pool.map(run, entries):
            if rc != 0 or out.strip():
                failed += rc != 0
                sys.stdout.write(out)
                if rc != 0:
                    print(f"check_clang: FAILED {file}")
    print(f"check_clang: {len(entries)} files, {failed} failed, "
          f"{time.monotonic() - start:.0f} s with -j{args.j}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
