#!/usr/bin/env bash
# Runs the regime (b) few-label recipes (recipes/fmnist_few_*.toml) for the given seeds and
# methods, sharing trained stages through the stage cache; bench/results_table.py then writes
# the table. Usage:
#   [PAIR=...] bench/run_fewlabel_results.sh [SEEDS] [METHODS] [EXTRA retort run ARGS...]
#   bench/run_fewlabel_results.sh "0 1 2" "alone aft task_oriented"
#   PAIR=vit-resnet bench/run_fewlabel_results.sh "0 1 2" "kd fsp"
# PAIR picks the architectures; every pair runs the same recipe files with --set overrides:
#   resnet-resnet (default): wrn_16_2 foundation model -> resnet8,   runs/results/fmnist_few_<m>-s<seed>
#   vit-resnet:  vit_tiny (4 blocks, patch 7) -> resnet8,           runs/results/fmnist_few_vit_<m>-s<seed>
#   resnet-vit:  wrn_16_2 -> vit_tiny (4 blocks, patch 7) student,   runs/results/fmnist_few_vitstudent_<m>-s<seed>
# A ViT is trained with AdamW (lr 1e-3, weight decay 0.05, cosine); a ResNet with the recipe's SGD.
# Results land in runs/results/; an existing finished run is not redone.
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${1:-"0 1 2"}
METHODS=${2:-"alone aft aft_fixed kd fitnet fsp align_uniform task_oriented task_agnostic"}
shift $(( $# > 2 ? 2 : $# )) || true
PAIR=${PAIR:-resnet-resnet}
RETORT=${RETORT:-build/retort}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

VIT_OPTIONS='{ patch_size = 7, depth = 4 }'
VIT_ADAMW='{ type = "adamw", lr = 1e-3, weight_decay = 0.05, no_decay_norm_bias = true }'
VIT_SCHEDULE='{ type = "cosine", warmup_epochs = 0.1 }'
# The stages that train the student, per method (the ViT student needs its optimizer there).
student_stages() {
  case "$1" in
    task_oriented|task_agnostic) echo "distil finetune" ;;
    *) echo "student" ;;
  esac
}

case "$PAIR" in
  resnet-resnet) infix="" ;;
  vit-resnet) infix="vit_" ;;
  resnet-vit) infix="vitstudent_" ;;
  *) echo "PAIR must be resnet-resnet, vit-resnet or resnet-vit, got '$PAIR'" >&2; exit 2 ;;
esac

mkdir -p runs/results
for seed in $SEEDS; do
  for m in $METHODS; do
    recipe=recipes/fmnist_few_$m.toml
    extra=()
    if [ "$m" = aft_fixed ]; then
      recipe=recipes/fmnist_few_aft.toml
      extra=(--set stages.student.losses.1.learn_rho=false)
    fi
    if [ "$PAIR" = vit-resnet ]; then
      extra+=(--set run.name=fmnist_few_vit_$m --set models.teacher.arch=vit_tiny
              --set "models.teacher.options=$VIT_OPTIONS"
              --set "stages.foundation.optimizer=$VIT_ADAMW" --set "stages.foundation.schedule=$VIT_SCHEDULE")
      case "$m" in
        fitnet) extra+=(--set stages.student.losses.1.teacher_tap=tokens.1) ;;
        fsp) extra+=(--set 'stages.student.losses.1.student_taps=["stem", "stage1", "stage2", "stage3"]'
                     --set 'stages.student.losses.1.teacher_taps=["tokens.0", "tokens.1", "tokens.2", "tokens.3"]') ;;
      esac
    elif [ "$PAIR" = resnet-vit ]; then
      extra+=(--set run.name=fmnist_few_vitstudent_$m --set models.student.arch=vit_tiny
              --set "models.student.options=$VIT_OPTIONS")
      for st in $(student_stages "$m"); do
        extra+=(--set "stages.$st.optimizer=$VIT_ADAMW" --set "stages.$st.schedule=$VIT_SCHEDULE")
      done
      case "$m" in
        fitnet) extra+=(--set stages.student.losses.1.student_tap=tokens.1) ;;
        fsp) extra+=(--set 'stages.student.losses.1.student_taps=["tokens.0", "tokens.1", "tokens.2", "tokens.3"]'
                     --set 'stages.student.losses.1.teacher_taps=["stem", "stage1", "stage2", "stage3"]') ;;
      esac
    fi
    out=runs/results/fmnist_few_$infix$m-s$seed
    if [ -f "$out/summary.json" ] && grep -q '"status": "finished"' "$out/summary.json"; then
      echo "== $out: already finished"; continue
    fi
    rm -rf "$out"
    echo "== $(date -u +%FT%TZ) $PAIR $m seed $seed"
    /usr/bin/time -f "   wall %e s" "$RETORT" run "$recipe" --set run.seed=$seed "${extra[@]}" "$@" \
      --stage-cache runs/stage_cache --out "$out" --quiet --device cpu 2> "$out.log" || { tail -5 "$out.log"; exit 1; }
    grep -E "test top1|reused|transfer set|wall" "$out.log" | sed 's/^/   /'
  done
done
