#!/usr/bin/env bash
# The demo's KD stage on 1, 2 and 4 CPU ranks (mpirun): images/s of the training epoch and the
# test accuracy per rank count, from each run's metrics.jsonl. Every rank gets
# OMP_NUM_THREADS = max(1, cores / ranks) threads, so the runs share the machine's cores.
# Usage: bench/dp_scaling.sh TEACHER.safetensors [RANKS...]   (default ranks: 1 2 4)
set -euo pipefail
cd "$(dirname "$0")/.."
teacher=$1; shift
if (($#)); then ranks=("$@"); else ranks=(1 2 4); fi
retort=${RETORT:-build/retort}
cores=$(nproc)
out=$(mktemp -d /tmp/retort-dp-scaling-XXXX)
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $cores cores; $($retort --version)"
printf "%-6s %-8s %-12s %-10s %-8s\n" ranks threads images/s top1% wall_s
for n in "${ranks[@]}"; do
  threads=$(( cores / n )); (( threads < 1 )) && threads=1
  start=$(date +%s.%N)
  mpirun --allow-run-as-root --oversubscribe --bind-to none -x OMP_NUM_THREADS=$threads -np "$n" \
    "$retort" run bench/dp_kd_stage.toml --quiet --out "$out/np$n" --set "models.teacher.weights=$teacher" \
    > "$out/np$n.log" 2>&1
  wall=$(echo "$(date +%s.%N) - $start" | bc)
  python3 - "$out/np$n/metrics.jsonl" "$n" "$threads" "$wall" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
r = rows[-1]
print(f"{sys.argv[2]:<6} {sys.argv[3]:<8} {r['images_per_s']:<12.0f} {r['top1']:<10.2f} {float(sys.argv[4]):<8.0f}")
PY
done
echo "runs in $out"
