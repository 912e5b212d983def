#!/usr/bin/env bash
# Builds the verifier's libFuzzer target (fuzz/) with clang into build-fuzz/ and runs it for SECONDS (default 60).
# Exits non-zero when the fuzzer finds a crash, undefined behaviour or a verifier bug (an accepted program that
# strays at run time); the input that did it is kept in build-fuzz/crashes/ and the report names the program.
# Usage: scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
launcher=()
if command -v ccache > /dev/null; then
    launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
mkdir -p build-fuzz
CC=clang CXX=clang++ cmake -S fuzz -B build-fuzz "${launcher[@]}" > build-fuzz/configure.log 2>&1 \
    || { cat build-fuzz/configure.log; exit 1; }
cmake --build build-fuzz -j"$(nproc)" > build-fuzz/build.log 2>&1 || { tail -n 80 build-fuzz/build.log; exit 1; }

# New inputs go to a working corpus in build-fuzz/; the committed seeds in fuzz/corpus/ are only read.
mkdir -p build-fuzz/corpus build-fuzz/crashes
echo "fuzz: verifier_fuzz for ${seconds} s (log in build-fuzz/fuzz.log)"
status=0
build-fuzz/verifier_fuzz -max_total_time="${seconds}" -timeout=30 -rss_limit_mb=4096 -max_len=4096 \
    -artifact_prefix=build-fuzz/crashes/ -print_final_stats=1 build-fuzz/corpus fuzz/corpus \
    > build-fuzz/fuzz.log 2>&1 || status=$?
grep -E "^(stat::number_of_executed_units|stat::new_units_added|verifier_fuzz:)" build-fuzz/fuzz.log || true
if [ "${status}" -ne 0 ]; then
    tail -n 120 build-fuzz/fuzz.log
    echo "fuzz: FAILED (exit ${status}); reproduce with build-fuzz/verifier_fuzz build-fuzz/crashes/<file>" >&2
    exit "${status}"
fi
echo "fuzz: no crash in ${seconds} s"
