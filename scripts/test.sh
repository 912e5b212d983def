#!/usr/bin/env bash
# The test command: installs what is missing, builds with warnings as errors, runs the whole suite through ctest,
# then the verifier's fuzz target for a bounded time (scripts/fuzz.sh: a crash or a verifier bug fails the run).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh -DSLUICE_WERROR=ON
ctest --test-dir build --output-on-failure --timeout 600 -j"$(nproc)" 2>&1 | tee build/ctest.log
scripts/fuzz.sh 60
# End with ctest's summary line, as before the fuzzer ran.
grep -E "tests passed" build/ctest.log | tail -n 1
