#!/usr/bin/env python3
"""retort against PyTorch eager on the same CPU cores, one training step at a time.

For each of the four steps of bench/cpu/steps_fmnist.toml (wrn_16_2 alone, resnet8 alone, KD
resnet8 <- wrn_16_2, vit_tiny alone; batch 128 of 1x28x28) it runs `retort bench` and its
PyTorch twin (bench/gpu/torch_step.py --device cpu --mode eager_f32), alternating the two for
--pairs pairs so that the machine's drift falls on both alike, each on synthetic batches made
once. It prints one table (median images/s of each side, their ratio, and the spread of the
pairs' ratios), and with --json writes every measurement. --baseline BIN adds another retort
build (an earlier commit's) to every pair, for a before/after column measured the same way.

    python3 bench/cpu/side_by_side.py --retort build/retort --python /tmp/torchenv/bin/python
    python3 bench/cpu/side_by_side.py --only kd --pairs 5
    python3 bench/cpu/side_by_side.py --baseline /tmp/old/build/retort   # before, after, PyTorch

Needs a Python with torch (bench/torch_reference/requirements.txt); never run by the tests.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
RECIPE = os.path.join(HERE, "steps_fmnist.toml")
# stage of steps_fmnist.toml -> torch_step.py config, and the table's label
ROWS = [
    ("teacher", "teacher_wrn_16_2", "train wrn_16_2 (SGD nesterov)"),
    ("student", "student_resnet8", "train resnet8"),
    ("kd", "kd_resnet8_wrn_16_2", "KD resnet8 <- wrn_16_2 (teacher forward included)"),
    ("vit", "vit_tiny_p7_d4", "train vit_tiny, patch 7, depth 4 (AdamW)"),
]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--retort", default=os.path.join(ROOT, "build", "retort"))
    p.add_argument("--python", default=sys.executable, help="a Python with torch")
    p.add_argument("--baseline", help="another retort binary (e.g. an earlier commit's build) to time alike")
    p.add_argument("--only", choices=[r[0] for r in ROWS], action="append", help="rows to run (default: all)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--pairs", type=int, default=3, help="alternating retort/PyTorch measurements per row")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    p.add_argument("--json", help="also write every measurement here")
    return p.parse_args()


def retort_images_per_s(args, stage, binary=None):
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run([binary or args.retort, "bench", RECIPE, "--stage", stage, "--batch-size", str(args.batch),
                        "--warmup", str(args.warmup), "--steps", str(args.steps), "--rounds", "1",
                        "--json", out.name], check=True, stdout=subprocess.DEVNULL)
        with open(out.name) as f:
            return json.load(f)


def torch_images_per_s(args, config):
    r = subprocess.run([args.python, os.path.join(ROOT, "bench", "gpu", "torch_step.py"), "--device", "cpu",
                        "--config", config, "--batch", str(args.batch), "--mode", "eager_f32",
                        "--warmup", str(args.warmup), "--steps", str(args.steps), "--rounds", "1"],
                       check=True, capture_output=True, text=True)
    record = json.loads(r.stdout.strip().splitlines()[-1])
    if "error" in record:
        raise RuntimeError(f"torch_step {config}: {record['error']}")
    return record


def main():
    args = parse_args()
    rows = [r for r in ROWS if not args.only or r[0] in args.only]
    results = []
    base_head = f"{'before img/s':>12} " if args.baseline else ""
    print(f"{'step (batch %d, 1x28x28)' % args.batch:<52} {base_head}{'retort img/s':>12} {'PyTorch img/s':>13} "
          f"{'ratio':>6} {'pair ratios':>20}", flush=True)
    for stage, config, label in rows:
        pairs = []
        for _ in range(args.pairs):
            pair = {}
            if args.baseline:
                pair["baseline"] = retort_images_per_s(args, stage, args.baseline)
            pair["retort"] = retort_images_per_s(args, stage)
            pair["pytorch"] = torch_images_per_s(args, config)
            pairs.append(pair)
        ours = statistics.median(p["retort"]["images_per_s"] for p in pairs)
        theirs = statistics.median(p["pytorch"]["images_per_s"] for p in pairs)
        ratios = [p["retort"]["images_per_s"] / p["pytorch"]["images_per_s"] for p in pairs]
        row = {"stage": stage, "config": config, "label": label, "retort_images_per_s": ours,
               "pytorch_images_per_s": theirs, "ratio": ours / theirs, "pairs": pairs}
        base_cell = ""
        if args.baseline:
            row["baseline_images_per_s"] = statistics.median(p["baseline"]["images_per_s"] for p in pairs)
            base_cell = f"{row['baseline_images_per_s']:>12.1f} "
        print(f"{label:<52} {base_cell}{ours:>12.1f} {theirs:>13.1f} {ours / theirs:>6.2f} "
              f"{min(ratios):>9.2f} - {max(ratios):<8.2f}", flush=True)
        results.append(row)
    machine = results[0]["pairs"][0]["retort"]["machine"] if results else ""
    torch_version = results[0]["pairs"][0]["pytorch"]["torch"] if results else ""
    print(f"machine: {machine}; PyTorch {torch_version}, eager, f32", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "torch": torch_version, "batch": args.batch, "baseline": args.baseline,
                       "rows": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
