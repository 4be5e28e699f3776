#!/usr/bin/env bash
# Runs the regime (a) full-data recipes (recipes/fmnist_{kd,fitnet,fsp,aft,align_uniform,
# task_oriented,task_agnostic}.toml:
# teacher and student on all 60,000 training images, RepDistiller-style) for the given seeds and
# methods, sharing each seed's teacher through the stage cache (the recipes' "teacher" stages
# are identical); bench/results_table.py then writes the table. Usage:
#   [PAIR=...] bench/run_fulldata_results.sh [SEEDS] [METHODS] [EXTRA retort run ARGS...]
#   bench/run_fulldata_results.sh "0 1 2"
#   python3 bench/results_table.py runs/results fmnist_full_
# METHODS: kd (recipes/fmnist_kd.toml, which also trains the student alone: the "alone" row),
# fitnet, fsp, aft, aft_fixed, align_uniform, task_oriented, task_agnostic, and the RepDistiller
# family at sp nst cc pkt rkd vid ab ft kdsvd crd and the later methods dkd dist reviewkd ofd (each
# recipe also has the student_alone stage, which the stage cache shares; its student starts from
# the same initial weights, init_from), and, with PAIR=resnet-vit only, deit and deit_soft
# (recipes/fmnist_deit.toml, whose students are ViTs already: hard and soft distillation). PAIR as in
# bench/study_pairs.sh. Results land in runs/results/fmnist_full_<infix><method>-s<seed>/; a
# finished run is not redone, one cut off after a checkpoint continues (--resume). RESULTS_DIR and
# STAGE_CACHE move the runs and the stage cache elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${1:-"0 1 2"}
REPDISTILLER_FAMILY="at sp nst cc pkt rkd vid ab ft kdsvd crd"
LATER_METHODS="dkd dist reviewkd ofd"
METHODS=${2:-"kd fitnet fsp aft aft_fixed align_uniform task_oriented task_agnostic $REPDISTILLER_FAMILY $LATER_METHODS"}
shift $(( $# > 2 ? 2 : $# )) || true
source bench/study_pairs.sh  # PAIR, RETORT, RESULTS_DIR, STAGE_CACHE, infix, pair_overrides, run_study_row

for seed in $SEEDS; do
  for m in $METHODS; do
    recipe=recipes/fmnist_$m.toml
    extra=(--set run.seed=$seed --set run.name=fmnist_full_$infix$m)
    students="student"
    case "$m" in
      kd) students="student student_kd"; stages="student_alone student_kd" ;;
      fitnet) stages="hint student_kd" ;;
      fsp) stages="fsp_init student_ce" ;;
      aft) stages="student_aft" ;;
      aft_fixed) recipe=recipes/fmnist_aft.toml; stages="student_aft"
                 extra+=(--set stages.student_aft.losses.1.learn_rho=false) ;;
      align_uniform) stages="student_au" ;;
      task_oriented|task_agnostic) stages="distil finetune" ;;
      ab) students="student student_ab"; stages="student_alone ab_init student_ab" ;;
      ft) students="student student_ft"; stages="student_alone paraphrase student_ft" ;;
      at|sp|nst|cc|pkt|rkd|vid|kdsvd|crd|dkd|dist|reviewkd|ofd)
        students="student student_$m"; stages="student_alone student_$m" ;;
      deit|deit_soft)
        if [ "$PAIR" != resnet-vit ]; then echo "$m: a ViT student's method; run it with PAIR=resnet-vit" >&2; exit 2; fi
        recipe=recipes/fmnist_deit.toml
        [ "$m" = deit_soft ] && extra+=(--set 'stages.student_deit.losses.1.form="soft"') ;;
      *) echo "unknown method '$m' (kd fitnet fsp aft aft_fixed align_uniform task_oriented task_agnostic" \
              "$REPDISTILLER_FAMILY $LATER_METHODS deit deit_soft)" >&2
         exit 2 ;;
    esac
    # fmnist_deit.toml is the resnet-vit pair as written: no overrides
    [[ "$m" == deit* ]] || pair_overrides "$PAIR" "$m" "teacher" "$students" "$stages" stages.hint.losses.0 stages.fsp_init.losses.0
    run_study_row "$recipe" "$RESULTS_DIR/fmnist_full_$infix$m-s$seed" "${extra[@]}" "$@"
  done
done
