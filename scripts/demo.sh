#!/usr/bin/env bash
# The first README command: installs what is missing, builds, and runs the default recipe
# (recipes/fmnist_kd.toml: teacher, student alone, student with KD on Fashion-MNIST).
# Extra arguments go to `retort run`, e.g. scripts/demo.sh --set stages.0.epochs=8
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
BUILD_DIR="${RETORT_BUILD_DIR:-build}"
OUT="${RETORT_DEMO_OUT:-runs/demo}"
# OpenMP threads that spin while waiting steal the cores the data loader needs on small CPUs.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
source scripts/blas_kernels.sh  # the kernels the README's digits were computed with
"$BUILD_DIR/retort" run recipes/fmnist_kd.toml --out "$OUT" "$@"
"$BUILD_DIR/retort" report "$OUT"
echo "[demo] results: $OUT/summary.json, the report: $OUT/report.html (docs/report.md)"
