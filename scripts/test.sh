#!/usr/bin/env bash
# The second README command: installs what is missing, builds, runs the whole test suite.
# Exits non-zero on any failure. GPU tests skip (and say so) where no GPU is usable.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
BUILD_DIR="${RETORT_BUILD_DIR:-build}"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
cd "$BUILD_DIR"
ctest --output-on-failure -j "${RETORT_JOBS:-$(nproc)}" -LE slow
