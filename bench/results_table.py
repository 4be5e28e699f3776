#!/usr/bin/env python3
"""Builds the Markdown results table of a study from its run directories.

Reads runs/results/<recipe>-s<seed>/summary.json (as bench/run_fewlabel_results.sh writes
them), takes the student's accuracy after the recipe's last stage, and prints one row per
method: every seed's top-1, the mean, the sample standard deviation, and the difference to the
"alone" row's mean. Standard library only.

    python3 bench/results_table.py runs/results fmnist_few_                # wrn_16_2 -> resnet8
    python3 bench/results_table.py runs/results fmnist_few_ vit_          # ViT -> resnet8 (+ the alone row)
    python3 bench/results_table.py runs/results fmnist_few_ vitstudent_   # wrn_16_2 -> ViT
    python3 bench/results_table.py runs/results fmnist_full_              # regime (a), full data

With a third argument only the methods named with that infix are listed (infix removed). The
"alone" row is a run's stage "student_alone" when it has one (fmnist_kd trains the student
alone and with KD in one run), else the "alone" runs' student. It is the infix's own (e.g. vitstudent_alone, a ViT student alone) when it was run,
else the plain "alone" runs: their student stage never reads the teacher, so a pair that only
changes the teacher shares them.

Below the table it lists what computed the rows (summary.json's "machine": processor, threads,
OpenBLAS kernel set), and warns on stderr when they differ: different kernel sets give
different digits for the same command (docs/results.md, "Two machines").
"""
INFIXES = ("vit_", "vitstudent_")
import json
import os
import statistics
import sys

ORDER = ["alone", "kd", "fitnet", "fsp", "aft", "aft_fixed", "align_uniform", "task_oriented", "task_agnostic",
         "at", "sp", "nst", "cc", "pkt", "rkd", "vid", "ab", "ft", "kdsvd", "crd", "dkd", "dist", "reviewkd", "ofd",
         "deit", "deit_soft"]
LABEL = {
    "alone": "student alone (CE on the labels)",
    "kd": "KD (Hinton, T = 4)",
    "fitnet": "FitNets (stage2 hint, weight 100)",
    "fsp": "FSP (RepDistiller pairing, weight 1e-3)",
    "aft": "AFT, learned rho",
    "aft_fixed": "AFT, fixed rho = 0.5",
    "align_uniform": "alignment/uniformity (+ CE + KD)",
    "task_oriented": "task-oriented (probe, distil on pool, fine-tune)",
    "task_agnostic": "task-agnostic (feature distil on pool, fine-tune)",
    # The RepDistiller family: CE + beta * L, RepDistiller's beta (AB and FT: their own first stage).
    "at": "AT (stages 1-3, beta 1000)",
    "sp": "SP (stage3, beta 3000)",
    "nst": "NST (stages 1-3, beta 50)",
    "cc": "CC (pooled, 128-d embeddings, beta 0.02)",
    "pkt": "PKT (pooled, beta 30000)",
    "rkd": "RKD (pooled, distance 25 + angle 50)",
    "vid": "VID (stages 1-3, beta 1)",
    "ab": "AB (pre-ReLU stages 1-3 init stage, then CE)",
    "ft": "FT (paraphraser stage, then CE + 200 FT)",
    "kdsvd": "KDSVD (stages 1-3, learned 1x1 projections, beta 1)",
    "crd": "CRD (memory bank, 16384 negatives, beta 0.8)",
    # The later methods, mdistiller's / the authors' settings.
    "dkd": "DKD (alpha 1, beta 8, T 4; warm-up 1/12 epoch)",
    "dist": "DIST (T 4, weight 2)",
    "reviewkd": "ReviewKD (ABF over stages 1-3 + pooled, HCL)",
    "ofd": "OFD (pre-ReLU stages 1-3, margins, partial L2, 1e-3)",
    "deit": "DeiT token, hard (0.5 CE + 0.5 CE with the teacher's argmax)",
    "deit_soft": "DeiT token, soft (0.5 CE + 0.5 KL, T 1)",
}
# Regime (a) recipes train differently (recipes/fmnist_fitnet.toml etc.).
LABEL_FULL = {
    "kd": "KD (Hinton, T = 4; 0.1 CE + 0.9 KD)",
    "fitnet": "FitNets (hint stage, then KD)",
    "fsp": "FSP (FSP-only stage, then CE)",
    "align_uniform": "alignment/uniformity (+ CE + KD, AdamW)",
    "task_oriented": "task-oriented (KD without labels, then fine-tune)",
    "task_agnostic": "task-agnostic (align/uniform features without labels, then fine-tune)",
}


def final_student(summary):
    """The result row of the student after the run's last student stage."""
    rows = [r for r in summary["results"] if r["model"].startswith("student")]
    return rows[-1] if rows else None


def alone_row(summary):
    """The student trained alone inside the same run (stage "student_alone"), if any."""
    rows = [r for r in summary["results"] if r["stage"] == "student_alone"]
    return rows[-1] if rows else None


def infix_of(method):
    """The pair infix a method's run name starts with ("" for wrn_16_2 -> resnet8)."""
    for ifx in sorted(INFIXES, key=len, reverse=True):
        if method.startswith(ifx):
            return ifx
    return ""


def main():
    root, prefix = sys.argv[1], sys.argv[2]
    pair = sys.argv[3] if len(sys.argv) > 3 else ""
    found = {}
    teachers = {}
    machines = {}  # run directory -> what computed it
    alone_sources = {}  # infix -> run directories that gave an "alone" value
    for entry in sorted(os.listdir(root)):
        path = os.path.join(root, entry, "summary.json")
        if not entry.startswith(prefix) or not os.path.isfile(path):
            continue
        with open(path) as f:
            s = json.load(f)
        if s.get("status") != "finished":
            continue
        method, seed = entry[len(prefix):].rsplit("-s", 1)
        machines[entry] = s.get("machine", {}).get("line", "not recorded (written before retort recorded it)")
        r = final_student(s)
        if r is None:
            continue
        found.setdefault(method, {})[int(seed)] = r["test_top1"]
        a = alone_row(s)
        if a is not None:
            found.setdefault(infix_of(method) + "alone", {})[int(seed)] = a["test_top1"]
            alone_sources.setdefault(infix_of(method), []).append(entry)
        for t in s["results"]:
            if t["model"] == "teacher":
                teachers.setdefault(method, {}).setdefault(t["stage"], {})[int(seed)] = t["test_top1"]
    # keep the pair's own methods (infix removed)
    if pair:
        mine = {m[len(pair):]: v for m, v in found.items() if m.startswith(pair)}
        if "alone" not in mine and "alone" in found:
            mine["alone"] = found["alone"]
            borrowed = alone_sources.get("", []) + [e for e in machines if e[len(prefix):].startswith("alone-")]
        else:
            borrowed = []
        teacher_rows = {m[len(pair):]: v for m, v in teachers.items() if m.startswith(pair)}
    else:
        borrowed = []
        mine = {m: v for m, v in found.items() if not m.startswith(INFIXES)}
        teacher_rows = {m: v for m, v in teachers.items() if not m.startswith(INFIXES)}
    found = mine
    teachers = {}
    for method, stages in teacher_rows.items():
        if method == "alone" and len(teacher_rows) > 1:
            continue
        for stage, vals in stages.items():
            teachers.setdefault(stage, {}).update(vals)
    base = statistics.mean(found["alone"].values()) if "alone" in found else None
    seeds = sorted({sd for m in found.values() for sd in m})
    head = "| method | " + " | ".join(f"seed {sd}" for sd in seeds) + " | mean ± std | vs alone |"
    print(head)
    print("|" + "---|" * (len(seeds) + 3))
    for method in ORDER + sorted(set(found) - set(ORDER)):
        if method not in found:
            continue
        vals = found[method]
        cells = [f"{vals[sd]:.2f}" if sd in vals else "–" for sd in seeds]
        v = list(vals.values())
        mean = statistics.mean(v)
        std = statistics.stdev(v) if len(v) > 1 else float("nan")
        delta = f"{mean - base:+.2f}" if base is not None and method != "alone" else ""
        label = (LABEL_FULL.get(method) if "full" in prefix else None) or LABEL.get(method, method)
        print(f"| {label} | " + " | ".join(cells) + f" | {mean:.2f} ± {std:.2f} | {delta} |")
    for stage, vals in sorted(teachers.items()):
        v = list(vals.values())
        std = statistics.stdev(v) if len(v) > 1 else float("nan")
        cells = [f"{vals[sd]:.2f}" if sd in vals else "–" for sd in seeds]
        print(f"| teacher after '{stage}' | " + " | ".join(cells) + f" | {statistics.mean(v):.2f} ± {std:.2f} | |")
    lines = [m for e, m in machines.items() if infix_of(e[len(prefix):]) == pair or e in borrowed]
    used = set(lines)
    print()
    for line in sorted(used):
        runs = lines.count(line)
        print(f"Computed by: {line} ({runs} run{'s' if runs != 1 else ''})")
    if len(used) > 1:
        print("warning: these runs were computed by different machines or OpenBLAS kernel sets; "
              "their digits are not comparable row to row", file=sys.stderr)


if __name__ == "__main__":
    main()
