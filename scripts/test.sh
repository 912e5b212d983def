#!/usr/bin/env bash
# The test command: installs what is missing, builds with warnings as errors, runs the whole suite through ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh -DSLUICE_WERROR=ON
ctest --test-dir build --output-on-failure --timeout 600 -j"$(nproc)"
