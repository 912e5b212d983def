#!/usr/bin/env bash
# Configures and builds sluice in build/ (Release). Extra arguments go to CMake's configure step.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p build
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@" > build/configure.log 2>&1 || { cat build/configure.log; exit 1; }
cmake --build build -j"$(nproc)" > build/build.log 2>&1 || { tail -n 80 build/build.log; exit 1; }
echo "build: done (log in build/build.log)"
