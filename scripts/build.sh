#!/usr/bin/env bash
# Configures and builds retort in Release into ${RETORT_BUILD_DIR:-build}.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
BUILD_DIR="${RETORT_BUILD_DIR:-build}"
JOBS="${RETORT_JOBS:-$(nproc)}"
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release ${RETORT_CMAKE_ARGS:-} >/dev/null
# RETORT_BUILD_TARGET=retort builds the command alone (scripts/tutorial.sh), not the tests and benchmarks
cmake --build "$BUILD_DIR" -j "$JOBS" ${RETORT_BUILD_TARGET:+--target "$RETORT_BUILD_TARGET"}
