#!/usr/bin/env bash
# docs/tutorial.md in one go, on the CPU: builds the `retort` command, then trains what each
# step of the tutorial reads (a teacher, the student alone, KD at three temperatures, FitNets,
# FSP, AFT, alignment/uniformity and task-oriented transfer, all seed 0 on the whole of
# Fashion-MNIST) and writes the reports the tutorial looks at, into ${TUTORIAL_OUT:-runs/tutorial}.
# The teacher and the student alone are trained once and reused through the stage cache.
# Safe to run again: a finished run is kept, an interrupted one resumed.
set -euo pipefail
cd "$(dirname "$0")/.."
RETORT_BUILD_TARGET=retort scripts/build.sh
RETORT="${RETORT_BUILD_DIR:-build}/retort"
OUT="${TUTORIAL_OUT:-runs/tutorial}"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
source scripts/blas_kernels.sh  # the kernels docs/results.md's digits were computed with
mkdir -p "$OUT"
started=$SECONDS

# run NAME RECIPE [ARGS...]: one run into $OUT/NAME, unless it already finished.
run() {
  local name=$1 recipe=$2
  shift 2
  local dir="$OUT/$name"
  if [[ -f $dir/summary.json ]] && grep -q '"status": "finished"' "$dir/summary.json"; then
    echo "[tutorial] $name: finished before, kept"
    return
  fi
  local resume=()
  [[ -d $dir ]] && resume=(--resume)
  echo "[tutorial] $(date +%T) $name: retort run $recipe $*"
  "$RETORT" run "$recipe" --out "$dir" --stage-cache "$OUT/stage_cache" --quiet "${resume[@]}" "$@"
}
report() {
  local file=$1
  shift
  "$RETORT" report "${@/#/$OUT/}" -o "$OUT/$file"
}

# Step 1: a teacher, the student alone, the student with KD (same initial weights)
run kd recipes/fmnist_kd.toml
report kd.html kd
# Step 2: the temperature
run kd_T1 recipes/fmnist_kd.toml --set run.name=fmnist_kd_T1 --set stages.student_kd.losses.kd.T=1
run kd_T10 recipes/fmnist_kd.toml --set run.name=fmnist_kd_T10 --set stages.student_kd.losses.kd.T=10
report temperature.html kd kd_T1 kd_T10
# Step 3: hints (FitNets) and the flow between layers (FSP)
run fitnet recipes/fmnist_fitnet.toml
run fsp recipes/fmnist_fsp.toml
report fitnet.html fitnet
report fsp.html fsp
# Exercise 3.3's control: the student alone for two epochs, as many as FitNets' and FSP's students
run alone_2ep recipes/fmnist_kd.toml --set run.name=fmnist_alone_2ep --set stages.student_alone.epochs=2
# Step 4: transferring only the useful features (AFT)
run aft recipes/fmnist_aft.toml
report aft.html aft
# Step 5: alignment and uniformity
run align_uniform recipes/fmnist_align_uniform.toml
report align_uniform.html align_uniform
# Step 6: task-oriented transfer in three stages
run task_oriented recipes/fmnist_task_oriented.toml
report task_oriented.html task_oriented
# Everything side by side
report all.html kd kd_T1 kd_T10 alone_2ep fitnet fsp aft align_uniform task_oriented
echo "[tutorial] done in $(((SECONDS - started) / 60)) min $(((SECONDS - started) % 60)) s; reports: $OUT/*.html"
