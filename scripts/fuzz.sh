#!/usr/bin/env bash
# Builds the libFuzzer targets (the `fuzz` preset: clang, ASan+UBSan) and runs each one for a
# bounded time on a corpus seeded from the tests (fuzz/make_seeds.py) plus fuzz/corpus/<target>
# when present. Any crash, hang (-timeout), out-of-memory (-rss_limit_mb), leak or sanitizer
# report fails the script, and the input that caused it is kept in build/fuzz/artifacts/.
#   FUZZ_SECONDS   seconds per target (default 30)
#   FUZZ_TARGETS   space-separated subset of targets (default: every fuzz/*_fuzzer.cc)
# Reproduce a failure: build/fuzz/fuzz/NAME build/fuzz/artifacts/NAME-crash-...
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-30}
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j"$(nproc)"
corpus=build/fuzz/corpus
artifacts=build/fuzz/artifacts
mkdir -p "$corpus" "$artifacts"
python3 fuzz/make_seeds.py "$corpus"
targets=${FUZZ_TARGETS:-$(ls fuzz/*_fuzzer.cc | xargs -n1 basename | sed 's/\.cc$//')}

run_target() {  # run_target NAME: fuzzes NAME for $seconds; its status file says ok or failed
  local name=$1 log=build/fuzz/$1.log start=$SECONDS extra=()
  mkdir -p "$corpus/$name"
  if [ -d "fuzz/corpus/$name" ]; then extra+=("fuzz/corpus/$name"); fi
  # -timeout: one input running longer is a hang; -max_len keeps inputs request-sized.
  if UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
     ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
     "build/fuzz/fuzz/$name" "$corpus/$name" "${extra[@]}" \
       -max_total_time="$seconds" -timeout=15 -rss_limit_mb=2560 -max_len=16384 \
       -print_final_stats=1 -artifact_prefix="$artifacts/$name-" >"$log" 2>&1; then
    echo "ok ($((SECONDS - start)) s, $(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$') runs)" >"build/fuzz/$name.status"
  else
    echo failed >"build/fuzz/$name.status"
  fi
}

# One fuzzer per core at a time: each is single-threaded, so on N cores N of them run in the
# time of one and every target still gets its full $seconds.
jobs_max=$(nproc)
rm -f build/fuzz/*.status
for name in $targets; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n || true; done
  run_target "$name" &
done
wait

failed=()
for name in $targets; do
  status=$(cat "build/fuzz/$name.status" 2>/dev/null || echo failed)
  if [ "$status" = failed ]; then
    echo "fuzz: $name FAILED (log: build/fuzz/$name.log)"
    tail -n 40 "build/fuzz/$name.log"
    failed+=("$name")
  else
    echo "fuzz: $name $status"
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: failures in ${failed[*]}"
  exit 1
fi
