"""Parsers of the GPU kit (bench/gpu/check.py): what the test binary, compute-sanitizer, the
step benchmarks and a recipe run print, turned into small dicts and Markdown tables. Pure
functions of text, so they are tested without a GPU (bench/gpu/test_kit_parse.py)."""
import json
import re

SKIP_MARKER = "RETORT_GPU_SKIPPED"


def doctest_results(output):
    """Counts and failures of a doctest console run. `skipped` counts retort's GPU skips (the
    test prints the marker and returns, which doctest counts as passed)."""
    m = re.search(r"test cases:\s*(\d+)\s*\|\s*(\d+) passed\s*\|\s*(\d+) failed(?:\s*\|\s*(\d+) skipped)?", output)
    skipped = output.count(SKIP_MARKER)
    if not m:
        return {"finished": False, "total": None, "passed": None, "failed": None, "skipped": skipped, "failures": []}
    total, passed, failed = int(m.group(1)), int(m.group(2)), int(m.group(3))
    return {"finished": True, "total": total, "passed": passed - skipped, "failed": failed, "skipped": skipped,
            "failures": doctest_failures(output)}


def doctest_failures(output):
    """[{test, errors: [first error lines]}] from doctest's console blocks."""
    failures = []
    current = None
    for line in output.splitlines():
        m = re.match(r"TEST CASE:\s+(.*)$", line)
        if m:
            current = {"test": m.group(1).strip(), "errors": []}
            failures.append(current)
            continue
        if current is not None and re.search(r"\b(ERROR|FATAL ERROR):", line) and len(current["errors"]) < 4:
            current["errors"].append(line.strip())
        elif current is not None and line.strip().startswith(("values:", "logged:")) and current["errors"] and \
                len(current["errors"]) < 6:
            current["errors"].append(line.strip())
    return [f for f in failures if f["errors"]]


def doctest_filter_name(name):
    """A test-case name as a doctest -tc filter: commas split filters, so they become '?'."""
    return name.replace(",", "?")


FINDING = re.compile(r"(Invalid|Uninitialized|Error:|Race|Barrier|Misaligned|Out-of-range|Program hit|Malloc|"
                     r"Warning:|Cuda API error|Potential)")
KERNEL_AT = re.compile(r"\bat\s+(?:0x[0-9a-f]+\s+in\s+)?(.+?)(?:\+0x[0-9a-f]+)?(?:\s+in\s+\S+)?(?:\s+\[.*\])?$")


def sanitizer_results(output):
    """compute-sanitizer's error count and its findings grouped by kernel, our kernels
    (namespace retort::cuda) apart from the libraries'."""
    m = re.search(r"ERROR SUMMARY:\s*(\d+) error", output)
    errors = int(m.group(1)) if m else None
    findings = {}

    def add(kernel, what):
        entry = findings.setdefault(kernel, {"kernel": kernel, "count": 0, "first": what,
                                             "ours": "retort::cuda" in kernel})
        entry["count"] += 1

    what = None
    for line in output.splitlines():
        if not line.startswith("========="):
            what = None
            continue
        body = line.strip("= \t")
        if FINDING.match(body) and "ERROR SUMMARY" not in body:
            what = body
            at = KERNEL_AT.search(body)
            if at and " at " in body:  # racecheck names the kernel on the finding's own line
                add(at.group(1), body[:160])
                what = None
            continue
        at = KERNEL_AT.match(body)
        if what and at:
            add(at.group(1), what[:160])
            what = None
    return {"finished": errors is not None, "errors": errors,
            "findings": sorted(findings.values(), key=lambda f: -f["count"])}


def json_lines(text):
    """Every line of `text` that parses as a JSON object, in order (partial output included)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return out


def fmt_num(v, digits=1):
    return "" if v is None else f"{v:,.{digits}f}"


TORCH_MODES = ("eager_f32", "eager_tf32", "bf16_cl", "compile")


def e2e_table(retort_runs, torch_runs):
    """One row per (config, batch, retort variant): retort's images/s beside PyTorch's per mode,
    and the ratio retort / PyTorch for each mode (eager f32 is like-for-like with retort's f32,
    which uses no TF32; bf16_cl with retort's bf16)."""
    rows = ["| config | batch | retort variant | retort img/s | " +
            " | ".join(f"torch {m} img/s" for m in TORCH_MODES) + " | " +
            " | ".join(f"retort / {m}" for m in TORCH_MODES) + " |",
            "|---|---|---|---|" + "---|" * (2 * len(TORCH_MODES))]
    keys = []
    for r in retort_runs:
        keys.append((r["config"], r["batch"], r.get("precision", "f32")))
    for t in torch_runs:
        if t.get("config") and not any(k[:2] == (t["config"], t["batch"]) for k in keys):
            keys.append((t["config"], t["batch"], None))
    for config, batch, precision in keys:
        ours = next((r for r in retort_runs if (r["config"], r["batch"], r.get("precision", "f32")) ==
                     (config, batch, precision)), None)
        ours_ips = ours.get("images_per_s") if ours and "error" not in ours else None
        cells, ratios = [], []
        for mode in TORCH_MODES:
            t = next((t for t in torch_runs if t.get("config") == config and t.get("batch") == batch and
                      t.get("mode") == mode), None)
            ips = t.get("images_per_s") if t and "error" not in t else None
            cells.append("error" if t and "error" in t else fmt_num(ips))
            ratios.append(f"{ours_ips / ips:.2f}" if ours_ips and ips else "")
        ours_cell = "error" if ours and "error" in ours else fmt_num(ours_ips)
        rows.append(f"| {config} | {batch} | {precision or ''} | {ours_cell} | " + " | ".join(cells) + " | " +
                    " | ".join(ratios) + " |")
    return "\n".join(rows)


def recipe_comparison(device_summary, reference_summary, labels=("device", "CPU")):
    """Per stage: test top-1 and wall seconds of one run (the device's) beside another (the CPU
    reference's, or the device's f32 run beside its bf16 one with other labels)."""
    def by_stage(summary):
        return {r["stage"]: r for r in (summary or {}).get("results", [])}
    ours, ref = by_stage(device_summary), by_stage(reference_summary)
    a, b = labels
    rows = [f"| stage | model | {a} top-1 % | {b} top-1 % | difference | {a} wall s | {b} wall s |",
            "|---|---|---|---|---|---|---|"]
    worst = 0.0
    for stage, r in ours.items():
        c = ref.get(stage)
        diff = r["test_top1"] - c["test_top1"] if c else None
        if diff is not None:
            worst = max(worst, abs(diff))
        rows.append(f"| {stage} | {r.get('model', '')} | {r['test_top1']:.2f} | "
                    f"{'' if c is None else format(c['test_top1'], '.2f')} | "
                    f"{'' if diff is None else format(diff, '+.2f')} | {fmt_num(r.get('wall_s'))} | "
                    f"{'' if c is None else fmt_num(c.get('wall_s'))} |")
    return "\n".join(rows), worst
