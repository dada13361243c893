#!/usr/bin/env python3
"""Fails when a module includes or links a module above it.

The order comes from one place: the top CMakeLists.txt's module loop
(`foreach(module util formats ... bench)`, leaf first); src/cli sits above every module.
Checked: every `#include "MODULE/..."` in src/MODULE/**, and the tinyserve_MODULE names in each
src/MODULE/CMakeLists.txt (its DEPS). tests/, benchmarks/ and src/cli may use any module.

Usage: check_layers.py [SOURCE_DIR]. Prints each violation as file:line and exits 1 if any.
"""
import os
import re
import sys


def module_order(root):
    with open(os.path.join(root, "CMakeLists.txt")) as f:
        text = f.read()
    m = re.search(r"#\s*Leaf first[^\n]*\n\s*foreach\(module ([^)]*)\)", text)
    if not m:
        sys.exit("check_layers: no '# Leaf first' foreach(module ...) line in CMakeLists.txt")
    return m.group(1).split() + ["cli"]


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    order = module_order(root)
    rank = {m: i for i, m in enumerate(order)}
    include_re = re.compile(r'^\s*#\s*include\s*"([a-z_0-9]+)/')
    link_re = re.compile(r"\btinyserve_([a-z_0-9]+)\b")
    errors = []
    checked = 0
    src = os.path.join(root, "src")
    for module in sorted(os.listdir(src)):
        mod_dir = os.path.join(src, module)
        if not os.path.isdir(mod_dir):
            continue
        if module not in rank:
            errors.append(f"src/{module}: not in the module list of CMakeLists.txt")
            continue
        for dirpath, _, files in os.walk(mod_dir):
            for name in sorted(files):
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, root)
                if name == "CMakeLists.txt":
                    with open(path) as f:
                        for n, line in enumerate(f, 1):
                            for dep in link_re.findall(line.split("#")[0]):
                                if dep in rank and rank[dep] > rank[module]:
                                    errors.append(f"{rel}:{n}: {module} links {dep}, a layer above")
                    continue
                if not name.endswith((".h", ".cc")):
                    continue
                checked += 1
                with open(path, encoding="utf-8") as f:
                    for n, line in enumerate(f, 1):
                        m = include_re.match(line)
                        if m and m.group(1) in rank and rank[m.group(1)] > rank[module]:
                            errors.append(f"{rel}:{n}: {module} includes {m.group(1)}, a layer "
                                          f"above (order: {' < '.join(order)})")
    for e in errors:
        print(e)
    print(f"check_layers: {checked} files, {len(errors)} violations "
          f"({' < '.join(order)})")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
