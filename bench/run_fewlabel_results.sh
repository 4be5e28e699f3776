#!/usr/bin/env bash
# Runs the regime (b) few-label recipes (recipes/fmnist_few_*.toml) for the given seeds and
# methods, sharing trained stages through the stage cache, then writes the table with
# bench/results_table.py. Usage:
#   bench/run_fewlabel_results.sh [SEEDS] [METHODS] [EXTRA retort run ARGS...]
#   bench/run_fewlabel_results.sh "0 1 2" "alone aft task_oriented"
# Results land in runs/results/<recipe>-s<seed>/; an existing finished run is not redone.
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${1:-"0 1 2"}
METHODS=${2:-"alone aft aft_fixed kd fitnet fsp align_uniform task_oriented task_agnostic"}
shift $(( $# > 2 ? 2 : $# )) || true
RETORT=${RETORT:-build/retort}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
mkdir -p runs/results
for seed in $SEEDS; do
  for m in $METHODS; do
    recipe=recipes/fmnist_few_$m.toml
    extra=()
    if [ "$m" = aft_fixed ]; then
      recipe=recipes/fmnist_few_aft.toml
      extra=(--set stages.student.losses.1.learn_rho=false)
    fi
    out=runs/results/fmnist_few_$m-s$seed
    if [ -f "$out/summary.json" ] && grep -q '"status": "finished"' "$out/summary.json"; then
      echo "== $out: already finished"; continue
    fi
    rm -rf "$out"
    echo "== $(date -u +%FT%TZ) $m seed $seed"
    /usr/bin/time -f "   wall %e s" "$RETORT" run "$recipe" --set run.seed=$seed "${extra[@]}" "$@" \
      --stage-cache runs/stage_cache --out "$out" --quiet --device cpu 2> "$out.log" || { tail -5 "$out.log"; exit 1; }
    grep -E "test top1|reused|transfer set" "$out.log" | sed 's/^/   /'
  done
done
