#!/usr/bin/env bash
# Runs the regime (b) few-label recipes (recipes/fmnist_few_*.toml) for the given seeds and
# methods, sharing trained stages through the stage cache; bench/results_table.py then writes
# the table. Usage:
#   [PAIR=...] bench/run_fewlabel_results.sh [SEEDS] [METHODS] [EXTRA retort run ARGS...]
#   bench/run_fewlabel_results.sh "0 1 2" "alone aft task_oriented"
#   PAIR=vit-resnet bench/run_fewlabel_results.sh "0 1 2" "kd fsp"
# PAIR (bench/study_pairs.sh): resnet-resnet (default, wrn_16_2 -> resnet8), vit-resnet
# (vit_tiny -> resnet8), resnet-vit (wrn_16_2 -> vit_tiny). Results land in
# runs/results/fmnist_few_<infix><method>-s<seed>/ (infix "", "vit_", "vitstudent_"); an
# existing finished run is not redone, one cut off after a checkpoint continues (--resume).
# RESULTS_DIR and STAGE_CACHE move the runs and the stage cache elsewhere (default runs/results,
# runs/stage_cache).
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${1:-"0 1 2"}
METHODS=${2:-"alone aft aft_fixed kd fitnet fsp align_uniform task_oriented task_agnostic"}
shift $(( $# > 2 ? 2 : $# )) || true
source bench/study_pairs.sh  # PAIR, RETORT, RESULTS_DIR, STAGE_CACHE, infix, pair_overrides, run_study_row

for seed in $SEEDS; do
  for m in $METHODS; do
    recipe=recipes/fmnist_few_$m.toml
    extra=(--set run.seed=$seed)
    if [ "$m" = aft_fixed ]; then
      recipe=recipes/fmnist_few_aft.toml
      extra+=(--set stages.student.losses.1.learn_rho=false)
    fi
    [ -n "$infix" ] && extra+=(--set run.name=fmnist_few_$infix$m)
    case "$m" in
      task_oriented|task_agnostic) student_stages="distil finetune" ;;
      *) student_stages="student" ;;
    esac
    pair_overrides "$PAIR" "$m" "foundation" "student" "$student_stages" \
      stages.student.losses.1 stages.student.losses.1
    run_study_row "$recipe" "$RESULTS_DIR/fmnist_few_$infix$m-s$seed" "${extra[@]}" "$@"
  done
done
