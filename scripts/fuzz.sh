#!/usr/bin/env bash
# Fuzzes the safetensors reader: installs clang-14 and libFuzzer when missing (apt), builds
# build-fuzz/fuzz_safetensors with -fsanitize=fuzzer,address,undefined, and runs it for N
# seconds (first argument, default 60) on a working corpus seeded from
# tests/fuzz_corpus/safetensors/. Crashing inputs land in build-fuzz/artifacts/; copy them
# into tests/fuzz_corpus/safetensors/ once fixed so scripts/test.sh replays them.
# Usage: scripts/fuzz.sh [seconds] [extra libFuzzer flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN="${1:-60}"
shift || true

PACKAGES=(clang-14 libclang-rt-14-dev libfmt-dev nlohmann-json3-dev)
missing=()
for p in "${PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  echo "[fuzz] installing: ${missing[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
CXX="${CXX_FUZZ:-clang++-14}"
command -v "$CXX" >/dev/null || CXX=clang++

OUT=build-fuzz
mkdir -p "$OUT/corpus" "$OUT/artifacts"
echo "[fuzz] building $OUT/fuzz_safetensors with $CXX"
"$CXX" -std=c++20 -g -O1 -fno-omit-frame-pointer \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I. fuzz/fuzz_safetensors.cpp engine/io/safetensors_format.cpp \
  -lfmt -o "$OUT/fuzz_safetensors"

echo "[fuzz] running for ${SECONDS_TO_RUN}s (corpus $OUT/corpus, crashes -> $OUT/artifacts/)"
"$OUT/fuzz_safetensors" "$OUT/corpus" tests/fuzz_corpus/safetensors \
  -dict=fuzz/safetensors.dict -max_total_time="$SECONDS_TO_RUN" -max_len=8192 -timeout=10 \
  -rss_limit_mb=2048 -artifact_prefix="$OUT/artifacts/" -print_final_stats=1 "$@"
