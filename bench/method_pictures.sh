#!/usr/bin/env bash
# The runs behind the pictures of docs/methods/*.md: each method's full-data recipe
# (recipes/fmnist_<method>.toml, seed 0, wrn_16_2 -> resnet8 on all of Fashion-MNIST) run once,
# its report written with every chart as an SVG file; the method pages show some of those charts
# (copied to docs/img/methods/). The teacher and the student alone come from the stage cache,
# e.g. scripts/tutorial.sh's. Usage:
#   bench/method_pictures.sh OUT_DIR STAGE_CACHE [METHODS]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: bench/method_pictures.sh OUT_DIR STAGE_CACHE [METHODS]}
CACHE=${2:?usage: bench/method_pictures.sh OUT_DIR STAGE_CACHE [METHODS]}
METHODS=${3:-"at sp nst cc pkt rkd vid ab ft kdsvd crd dkd dist reviewkd ofd deit"}
RETORT=${RETORT:-build/retort}
REPORT=${REPORT:-$RETORT}  # the binary that writes the reports (any build with `report --charts`)
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
source scripts/blas_kernels.sh
mkdir -p "$OUT"
for m in $METHODS; do
  dir="$OUT/$m"
  if [[ -f $dir/summary.json ]] && grep -q '"status": "finished"' "$dir/summary.json"; then
    echo "[pictures] $m: finished before, kept"
  else
    resume=()
    [[ -d $dir ]] && resume=(--resume)
    echo "[pictures] $(date +%T) $m"
    "$RETORT" run "recipes/fmnist_$m.toml" --out "$dir" --stage-cache "$CACHE" --quiet "${resume[@]}"
  fi
  "$REPORT" report "$dir" -o "$OUT/$m.html" --charts "$OUT/$m-charts"
done
