#!/usr/bin/env bash
# The GPU kit's packing, run here (bench/gpu/README.md): builds retort with CUDA (sm_90) and
# fills the ignored folder .gpukit/ with what the GPU machine lacks, under the device tool's
# 64 MiB (the working tree travels too):
#   payload.tar.xz   bin/ (retort, retort_tests, retort_bench) and lib/ (the Debian shared
#                    libraries they load: fmt, OpenBLAS, toml++, libgomp, ...; lib/fallback/
#                    holds libstdc++ and libgcc_s, used only if the machine's are older)
#   data/            Fashion-MNIST's four gzip files (Debian's dataset-fashion-mnist)
#   cpu_reference/   summary.json and metrics.jsonl of the recipe stage's run on this CPU
#   MANIFEST.json    commit, date, sizes, checksums
# The CUDA libraries (cudart, cuBLAS, cuDNN) are not carried: the machine has them.
# The build is its own folder (RETORT_BUILD_DIR, default build-gpukit) made for any x86-64-v3
# CPU (RETORT_CPU_ARCH=portable): the GPU machine's CPU is of unknown kind, and a build tuned to
# this machine's AVX-512 would stop there with an illegal instruction.
# Usage: bench/gpu/pack.sh [--no-reference]
set -euo pipefail
cd "$(dirname "$0")/../.."
REFERENCE=1
for arg in "$@"; do
  case "$arg" in
    --no-reference) REFERENCE=0 ;;
    *) echo "pack: unknown argument '$arg' (use --no-reference)" >&2; exit 2 ;;
  esac
done
BUILD_DIR="${RETORT_BUILD_DIR:-build-gpukit}"
export RETORT_BUILD_DIR="$BUILD_DIR" RETORT_CMAKE_ARGS="-DRETORT_CPU_ARCH=portable ${RETORT_CMAKE_ARGS:-}"
KIT=.gpukit
LIMIT=$((64 * 1024 * 1024))
DATA_SRC=/usr/share/datasets/fashion-mnist

scripts/build.sh >/dev/null
for b in retort retort_tests retort_bench; do
  ldd "$BUILD_DIR/$b" | grep -q 'libcudart\.so' ||
    { echo "pack: $BUILD_DIR/$b has no CUDA backend (was nvcc at /usr/local/cuda when it was built?)" >&2; exit 1; }
done
grep -q '^RETORT_CUDA_ARCHS:STRING=.*90' "$BUILD_DIR/CMakeCache.txt" ||
  { echo "pack: $BUILD_DIR is not built for sm_90 (RETORT_CUDA_ARCHS)" >&2; exit 1; }

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/lib/fallback"
cp "$BUILD_DIR"/{retort,retort_tests,retort_bench} "$stage/bin/"

# The shared libraries the binaries load, but glibc's own (the machine's glibc is newer) and
# CUDA's (the machine has matching ones).
for b in "$stage"/bin/*; do ldd "$b"; done | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | sort -u |
  while read -r soname path; do
    case "$soname" in
      libc.so.*|libm.so.*|libdl.so.*|libpthread.so.*|librt.so.*|ld-linux*) ;;
      libcudart*|libcublas*|libcudnn*|libnccl*|libcuda.so*) ;;
      libstdc++.so.*|libgcc_s.so.*) cp -L "$path" "$stage/lib/fallback/$soname" ;;
      *) cp -L "$path" "$stage/lib/$soname" ;;
    esac
  done

rm -rf "$KIT"
mkdir -p "$KIT/data/fashion-mnist"
# One xz thread at -9: its 64 MiB window spans the three binaries, which carry the same CUDA
# kernels (the static kernel library), so the second and third copies cost almost nothing;
# several threads cut the stream into blocks that do not see each other (29.7 MB at -T0 -6
# against 23.1 MB here, 2026-12-06), and the kit must fit 64 MiB with the working tree.
echo "[pack] compressing binaries and libraries (xz -9, one thread: about a minute)"
tar -C "$stage" -cf - bin lib | xz -T1 -9 > "$KIT/payload.tar.xz"
cp "$DATA_SRC"/*.gz "$KIT/data/fashion-mnist/"

# The recipe stage's CPU reference: the same command the kit runs with --device cuda
# (bench/gpu/kit_stages.py, recipe_flags), kept in the build folder across packs of one commit.
commit=$(git rev-parse HEAD)
dirty=$(git status --porcelain --untracked-files=no | wc -l)
if ((REFERENCE)); then
  key="$commit-$(git diff HEAD | sha256sum | cut -c1-16)"
  ref="$BUILD_DIR/gpukit_cpu_reference"
  if [[ ! -f "$ref/summary.json" || "$(cat "$ref/key" 2>/dev/null)" != "$key" ]]; then
    echo "[pack] CPU reference run of recipes/fmnist_kd.toml on 12,800 images (a few minutes on 2 cores)"
    rm -rf "$ref"
    OMP_WAIT_POLICY=passive "$BUILD_DIR/retort" run recipes/fmnist_kd.toml --device cpu --out "$ref/run" \
      --set data.root="$DATA_SRC" --set data.train_subset=12800 --quiet
    cp "$ref/run/summary.json" "$ref/run/metrics.jsonl" "$ref/"
    echo "$key" > "$ref/key"
  fi
  mkdir -p "$KIT/cpu_reference"
  cp "$ref/summary.json" "$ref/metrics.jsonl" "$KIT/cpu_reference/"
fi

kit_bytes=$(du -sb "$KIT" | cut -f1)
tree_bytes=$(git ls-files -z -co --exclude-standard | xargs -0 -r stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
total=$((kit_bytes + tree_bytes))
python3 - "$KIT" "$commit" "$dirty" "$kit_bytes" "$tree_bytes" <<'PY'
import hashlib, json, os, sys, time
kit, commit, dirty, kit_bytes, tree_bytes = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
files = {}
for dirpath, _, names in os.walk(kit):
    for n in names:
        p = os.path.join(dirpath, n)
        with open(p, "rb") as f:
            files[os.path.relpath(p, kit)] = {"bytes": os.path.getsize(p), "sha256": hashlib.sha256(f.read()).hexdigest()}
manifest = {"commit": commit + ("+uncommitted changes" if dirty else ""), "packed": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "kit_bytes": kit_bytes, "working_tree_bytes": tree_bytes, "files": files}
with open(os.path.join(kit, "MANIFEST.json"), "w") as f:
    json.dump(manifest, f, indent=1)
PY
awk -v k="$kit_bytes" -v t="$total" -v d="$KIT" 'BEGIN {
  printf "[pack] %s: %.1f MiB; with the working tree %.1f MiB of the 64 MiB the device tool carries\n", d, k / 1048576, t / 1048576 }'
if ((total > LIMIT)); then
  echo "pack: over the limit: the device tool would refuse this tree" >&2
  exit 1
fi
echo "[pack] next: bench/gpu/check.py --smoke (here), then on the device: python3 bench/gpu/check.py (carry .gpukit)"
