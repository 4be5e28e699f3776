#!/usr/bin/env bash
# The test suite under AddressSanitizer and UndefinedBehaviorSanitizer: a CPU-only build in
# ${RETORT_SANITIZE_DIR:-build-sanitize} (-O1, frame pointers, UBSan errors fatal), then every
# test scripts/test.sh runs. Exits non-zero on any failure or sanitizer report.
#   scripts/test_sanitize.sh            # build and run everything
#   scripts/test_sanitize.sh -R loader  # extra arguments go to ctest
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
DIR="${RETORT_SANITIZE_DIR:-build-sanitize}"
FLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined"
cmake -S . -B "$DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRETORT_ENABLE_CUDA=OFF \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$FLAGS" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
cmake --build "$DIR" -j "${RETORT_JOBS:-$(nproc)}"
# LeakSanitizer is on: memory still reachable at exit (registries, the host pool) is not a leak.
# allocator_may_return_null: a failed huge allocation returns null, as it does without ASan, so
# the out-of-memory messages are tested too.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export OMP_WAIT_POLICY=passive
cd "$DIR"
ctest --output-on-failure -j "${RETORT_JOBS:-$(nproc)}" -LE slow "$@"
