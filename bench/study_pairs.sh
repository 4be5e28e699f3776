# Architecture pairs of the transfer studies (sourced by bench/run_fewlabel_results.sh and
# bench/run_fulldata_results.sh). Every pair runs the same recipe files; a pair only adds
# `retort run --set` overrides:
#   resnet-resnet: the recipe as written (wrn_16_2 teacher -> resnet8 student)
#   vit-resnet:    the teacher becomes vit_tiny with 4 blocks and patch 7 (a 4x4 token grid),
#                  trained with AdamW where the recipe trains it
#   resnet-vit:    the students become that ViT, trained with AdamW where the recipe trains them
# A ViT's feature taps are named for FitNets (tokens.1 against resnet8's stage2) and FSP
# (tokens.0..tokens.3 against stem, stage1..stage3); AFT and alignment/uniformity use `pooled`.

# Settings shared by the study scripts (environment overrides):
PAIR=${PAIR:-resnet-resnet}
RETORT=${RETORT:-build/retort}
RESULTS_DIR=${RESULTS_DIR:-runs/results}
STAGE_CACHE=${STAGE_CACHE:-runs/stage_cache}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
source scripts/blas_kernels.sh  # OPENBLAS_CORETYPE=Zen on AVX2 x86-64 (BLAS_KERNELS=native: OpenBLAS's choice)

VIT_OPTIONS='{ patch_size = 7, depth = 4 }'
VIT_ADAMW='{ type = "adamw", lr = 1e-3, weight_decay = 0.05, no_decay_norm_bias = true }'
VIT_SCHEDULE='{ type = "cosine", warmup_epochs = 0.1 }'

# The run-directory infix of a pair: runs/results/<prefix><infix><method>-s<seed>.
pair_infix() {
  case "$1" in
    resnet-resnet) echo "" ;;
    vit-resnet) echo "vit_" ;;
    resnet-vit) echo "vitstudent_" ;;
    *) echo "PAIR must be resnet-resnet, vit-resnet or resnet-vit, got '$1'" >&2; return 2 ;;
  esac
}

# pair_overrides PAIR METHOD "TEACHER_STAGES" "STUDENT_MODELS" "STUDENT_STAGES" FITNET_LOSS FSP_LOSS
# appends the pair's --set arguments to the array `extra`. TEACHER_STAGES train the teacher,
# STUDENT_STAGES train a student; FITNET_LOSS/FSP_LOSS are the dotted paths of the method's
# fitnet/fsp loss term (e.g. stages.student.losses.1).
pair_overrides() {
  local pair=$1 method=$2 teacher_stages=$3 student_models=$4 student_stages=$5 fitnet=$6 fsp=$7 st m
  case "$pair" in
    vit-resnet)
      extra+=(--set models.teacher.arch=vit_tiny --set "models.teacher.options=$VIT_OPTIONS")
      for st in $teacher_stages; do
        extra+=(--set "stages.$st.optimizer=$VIT_ADAMW" --set "stages.$st.schedule=$VIT_SCHEDULE")
      done
      case "$method" in
        fitnet) extra+=(--set "$fitnet.teacher_tap=tokens.1") ;;
        fsp) extra+=(--set "$fsp.student_taps=[\"stem\", \"stage1\", \"stage2\", \"stage3\"]"
                     --set "$fsp.teacher_taps=[\"tokens.0\", \"tokens.1\", \"tokens.2\", \"tokens.3\"]") ;;
      esac ;;
    resnet-vit)
      for m in $student_models; do
        extra+=(--set "models.$m.arch=vit_tiny" --set "models.$m.options=$VIT_OPTIONS")
      done
      for st in $student_stages; do
        extra+=(--set "stages.$st.optimizer=$VIT_ADAMW" --set "stages.$st.schedule=$VIT_SCHEDULE")
      done
      case "$method" in
        fitnet) extra+=(--set "$fitnet.student_tap=tokens.1") ;;
        fsp) extra+=(--set "$fsp.student_taps=[\"tokens.0\", \"tokens.1\", \"tokens.2\", \"tokens.3\"]"
                     --set "$fsp.teacher_taps=[\"stem\", \"stage1\", \"stage2\", \"stage3\"]") ;;
      esac ;;
  esac
}

# run_study_row RECIPE OUT [retort run args...]: runs one row unless OUT already finished. A row
# that was cut off after writing a checkpoint (OUT/checkpoints/*) is continued with --resume, its
# log appended to; any other unfinished OUT is started again.
run_study_row() {
  local recipe=$1 out=$2 resume=()
  shift 2
  if [ -f "$out/summary.json" ] && grep -q '"status": "finished"' "$out/summary.json"; then
    echo "== $out: already finished"; return 0
  fi
  if [ -f "$out/summary.json" ] && compgen -G "$out/checkpoints/*" > /dev/null; then
    resume=(--resume)
    echo "== $(date -u +%FT%TZ) $out (resumed from its checkpoints)"
    echo "---- resumed $(date -u +%FT%TZ)" >> "$out.log"
  else
    rm -rf "$out"
    echo "== $(date -u +%FT%TZ) $out"
    : > "$out.log"
  fi
  /usr/bin/time -f "   wall %e s" "$RETORT" run "$recipe" "$@" --stage-cache "$STAGE_CACHE" --out "$out" \
    "${resume[@]}" --quiet --device cpu 2>> "$out.log" || { tail -5 "$out.log"; return 1; }
  grep -E "test top1|reused|transfer set|wall [0-9]" "$out.log" | sed 's/^/   /'
}

infix=$(pair_infix "$PAIR")
mkdir -p "$RESULTS_DIR"
