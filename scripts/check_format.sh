#!/usr/bin/env bash
# Fails when a C++ file under src/, tests/tools or benchmarks/ differs from .clang-format
# (clang-format 14, the version Debian 12 ships; other versions format a few constructs
# differently). Prints each file that differs and the count. Fix with:
#   git ls-files 'src/*.h' 'src/*.cc' 'tests/tools/*.cc' 'benchmarks/*.cc' | xargs clang-format-14 -i
set -euo pipefail
cd "$(dirname "$0")/.."
CLANG_FORMAT="${CLANG_FORMAT:-clang-format-14}"
command -v "$CLANG_FORMAT" >/dev/null || { echo "check_format: $CLANG_FORMAT not found" >&2; exit 2; }
mapfile -t files < <(git ls-files 'src/*.h' 'src/*.cc' 'tests/tools/*.h' 'tests/tools/*.cc' \
                                  'benchmarks/*.h' 'benchmarks/*.cc')
# One clang-format process for all files (its diagnostics start with the file name).
mapfile -t bad < <("$CLANG_FORMAT" --dry-run --Werror "${files[@]}" 2>&1 |
                   sed -n 's/^\([^:]*\):[0-9]*:[0-9]*: error: .*clang-format-violations.*/\1/p' |
                   sort -u)
for f in "${bad[@]}"; do echo "check_format: $f differs from .clang-format"; done
echo "check_format: ${#files[@]} files, ${#bad[@]} differ"
[ "${#bad[@]}" -eq 0 ]
