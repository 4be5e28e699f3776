#!/usr/bin/env bash
# What each transfer method costs per training step, for docs/choosing_a_method.md: `retort bench`
# (synthetic batches of the stage's size, 5 untimed steps, the median of 3 rounds of 20) on the stage of each
# method's recipe that trains with the method's loss, and the stage's peak host memory. Writes
# one JSON line per method to OUT (default runs/method_costs.jsonl), then prints a table with
# images/s relative to KD's student_kd stage (same teacher, same student).
# Usage: [RETORT=build/retort] bench/method_costs.sh [OUT] [METHODS...]
# Run it on an otherwise idle machine: the numbers are throughput.
set -euo pipefail
cd "$(dirname "$0")/.."
RETORT=${RETORT:-build/retort}
OUT=${1:-runs/method_costs.jsonl}
shift $(( $# > 0 ? 1 : 0 )) || true
METHODS=${*:-"alone kd fitnet fsp at sp nst cc pkt rkd vid ab ft kdsvd crd aft align_uniform dkd dist reviewkd ofd vit_alone deit"}
source scripts/blas_kernels.sh
mkdir -p "$(dirname "$OUT")"
: > "$OUT"
for m in $METHODS; do
  recipe=recipes/fmnist_$m.toml stage=student_$m
  case "$m" in
    alone) recipe=recipes/fmnist_kd.toml; stage=student_alone ;;
    kd) stage=student_kd ;;
    fitnet) stage=hint ;;
    fsp) stage=fsp_init ;;
    aft) stage=student_aft ;;
    align_uniform) stage=student_au ;;
    ab) stage=ab_init ;;
    vit_alone) recipe=recipes/fmnist_deit.toml; stage=student_alone ;;
  esac
  tmp=$(mktemp)
  "$RETORT" bench "$recipe" --stage "$stage" --device cpu --json "$tmp" > /dev/null
  python3 -c "import json,sys; d=json.load(open('$tmp')); d['method']='$m'; print(json.dumps(d))" >> "$OUT"
  rm -f "$tmp"
done
python3 - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
kd = next((r for r in rows if r["method"] == "kd"), None)
print(f"machine: {rows[0]['machine']}")
print("| method | stage | images/s | vs KD | peak host memory (MB) |")
print("|---|---|---|---|---|")
for r in rows:
    rel = f"{r['images_per_s'] / kd['images_per_s']:.2f}x" if kd else "-"
    print(f"| {r['method']} | {r['recipe']} / {r['stage']} | {r['images_per_s']:.0f} | {rel} | {r['peak_mem_mb']:.0f} |")
PY
