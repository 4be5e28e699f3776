#!/usr/bin/env bash
# Fuzzes retort's readers of untrusted input with libFuzzer. Installs clang-14, libFuzzer and
# clang's OpenMP when missing (apt), configures a CPU-only build in build-fuzz/ with
# -fsanitize=fuzzer-no-link,address,undefined (RETORT_FUZZ=ON) and runs one target or all of
# them for SECONDS each on a working corpus seeded from tests/fuzz_corpus/<target>/.
# Crashing inputs land in build-fuzz/artifacts/<target>/; once fixed, copy them into
# tests/fuzz_corpus/<target>/ as crash_* so scripts/test.sh replays them.
#   scripts/fuzz.sh                       # every target, 60 s each
#   scripts/fuzz.sh 300 recipe            # the recipe reader for 5 minutes
#   scripts/fuzz.sh 300 idx -max_len=65536  # extra arguments go to libFuzzer
# Targets: safetensors recipe idx cifar image checkpoint
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN="${1:-60}"
shift || true
ALL_TARGETS=(safetensors recipe idx cifar image checkpoint)
TARGETS=("${ALL_TARGETS[@]}")
if (($#)) && [[ "$1" != -* ]]; then
  [[ " ${ALL_TARGETS[*]} " == *" $1 "* ]] || { echo "[fuzz] unknown target '$1' (one of: ${ALL_TARGETS[*]})" >&2; exit 2; }
  TARGETS=("$1")
  shift
fi

source scripts/deps.sh
PACKAGES=(clang-14 libclang-rt-14-dev libomp-14-dev)
missing=()
for p in "${PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  echo "[fuzz] installing: ${missing[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

OUT=build-fuzz
FLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined"
cmake -S . -B "$OUT" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRETORT_ENABLE_CUDA=OFF -DRETORT_FUZZ=ON \
  -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$FLAGS" -DCMAKE_C_FLAGS_RELWITHDEBINFO="$FLAGS" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
cmake --build "$OUT" -j "${RETORT_JOBS:-$(nproc)}" --target "${TARGETS[@]/#/fuzz_}"

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}"
export OMP_NUM_THREADS=1
for t in "${TARGETS[@]}"; do
  mkdir -p "$OUT/corpus/$t" "$OUT/artifacts/$t"
  dict=(); [[ -f "fuzz/$t.dict" ]] && dict=(-dict="fuzz/$t.dict")
  seeds=("tests/fuzz_corpus/$t"); [[ $t == recipe ]] && seeds+=(recipes)  # the shipped recipes seed it too
  echo "[fuzz] $t for ${SECONDS_TO_RUN}s (corpus $OUT/corpus/$t, crashes -> $OUT/artifacts/$t/)"
  "$OUT/fuzz_$t" "$OUT/corpus/$t" "${seeds[@]}" "${dict[@]}" \
    -max_total_time="$SECONDS_TO_RUN" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$OUT/artifacts/$t/" -print_final_stats=1 "$@"
done
