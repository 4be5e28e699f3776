"""The stages of the GPU kit's run (bench/gpu/check.py), in order of value, and the summary
they write. Each stage gets a time box (never past the overall deadline) and returns a status
(pass, fail, warn, skip, partial when its box ran out), a note, a Markdown section and data."""
import glob
import json
import os
import platform
import re
import shutil
import site
import sys
import time
from dataclasses import dataclass
from typing import Callable

import kit_parse

BENCH_CONFIGS = [  # (config, recipe, batch): what the issue asks to compare
    ("kd_resnet32x4_resnet8x4", "bench/gpu/step_kd_resnet32x4_resnet8x4.toml", 64),
    ("kd_resnet32x4_resnet8x4", "bench/gpu/step_kd_resnet32x4_resnet8x4.toml", 256),
    ("vit_small_p4", "bench/gpu/step_vit_small_p4.toml", 256),
]
# retort's step variants: (label, flags, CUDA graph). f32 is like-for-like with PyTorch's
# eager_f32, bf16 + channels-last (autocast, f32 master weights, NHWC batch) with its bf16_cl;
# "+graph" replays the step as a CUDA graph (docs/gpu_step.md; AdamW's step count lives on the
# device, so the ViT's stage replays too).
RETORT_VARIANTS = (("f32", ["--precision", "f32"], False), ("bf16", ["--precision", "bf16"], False),
                   ("bf16+cl", ["--precision", "bf16", "--channels-last"], False),
                   ("bf16+cl+graph", ["--precision", "bf16", "--channels-last", "--cuda-graph"], True))
CUDA_SONAMES = ("libcudart.so.13", "libcublas.so.13", "libcublasLt.so.13", "libcudnn.so.9")
RECIPE = "recipes/fmnist_kd.toml"
RECIPE_STAGES = ("teacher", "student_alone", "student_kd")


def recipe_flags(ctx):
    """The same settings for the device run and its CPU reference (bench/gpu/pack.sh)."""
    flags = ["--set", f"data.root={ctx.data_dir}", "--set", "data.train_subset=12800", "--quiet"]
    return flags + (["--max-batches", "2"] if ctx.smoke else [])


@dataclass
class Stage:
    name: str
    box_s: float   # its time box
    min_s: float   # below this much time left it is skipped
    fn: Callable


def run_stage(ctx, stage):
    """Runs one stage under its box; records and logs its result. False on fail or error."""
    left = ctx.remaining()
    if left < stage.min_s:
        result = {"status": "skip", "note": f"deadline: {left:.0f} s left, the stage needs {stage.min_s:.0f}"}
    elif stage.name != "env" and not ctx.binaries_ok:
        result = {"status": "skip", "note": "the binaries do not run here (see env)"}
    else:
        ctx.log(f"stage {stage.name}: up to {min(stage.box_s, left):.0f} s")
        t0 = time.monotonic()
        try:
            result = stage.fn(ctx, min(stage.box_s, left))
        except Exception as e:  # a stage's own bug must not cost the other stages
            result = {"status": "error", "note": f"{type(e).__name__}: {e}"}
        result["seconds"] = round(time.monotonic() - t0, 1)
    ctx.results["stages"][stage.name] = result
    ctx.log(f"stage {stage.name}: {result['status']} ({result.get('note', '')})")
    return result["status"] not in ("fail", "error")


# ------------------------------------------------------------------------------------ env
def ldd_missing(ctx, binary):
    rc, out, _ = ctx.run(["ldd", binary], 15, "env.txt")
    return sorted(set(re.findall(r"^\s*(\S+) => not found", out, re.M)))


def library_dirs_for(names):
    """Folders holding the named shared libraries: the CUDA toolkit, then Python's nvidia-*
    wheels (cuDNN lives only there on the GPU machine)."""
    roots = ["/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib"]
    roots += sorted(glob.glob("/usr/local/cuda-*/lib64"))
    for sp in site.getsitepackages() + [site.getusersitepackages()]:
        roots += sorted(glob.glob(os.path.join(sp, "nvidia", "*", "lib")))
        roots += sorted(glob.glob(os.path.join(sp, "nvidia", "*", "*", "lib")))
    found = []
    for name in names:
        for d in roots:
            if os.path.exists(os.path.join(d, name)):
                if d not in found:
                    found.append(d)
                break
    return found


def prepend_library_path(ctx, dirs):
    current = [d for d in ctx.env.get("LD_LIBRARY_PATH", "").split(":") if d]
    ctx.env["LD_LIBRARY_PATH"] = ":".join(list(dirs) + [d for d in current if d not in dirs])


def describe_machine(ctx, info):
    info["host"] = platform.node()
    info["kernel"] = platform.release()
    info["cpus"] = os.cpu_count()
    info["glibc"] = os.confstr("CS_GNU_LIBC_VERSION") if hasattr(os, "confstr") else ""
    try:
        with open("/etc/os-release") as f:
            info["os"] = dict(re.findall(r'^(\w+)="?([^"\n]*)"?', f.read(), re.M)).get("PRETTY_NAME", "")
    except OSError:
        info["os"] = ""
    info["python"] = sys.version.split()[0]
    if shutil.which("nvidia-smi"):
        rc, out, _ = ctx.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,"
                              "temperature.gpu,power.draw", "--format=csv,noheader"], 20, "env.txt")
        info["gpu"] = out.strip().splitlines()[0] if rc == 0 and out.strip() else f"nvidia-smi rc {rc}"
    else:
        info["gpu"] = "no nvidia-smi"
    nvcc = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if os.path.exists("/usr/local/cuda/bin/nvcc") else None)
    if nvcc:
        rc, out, _ = ctx.run([nvcc, "--version"], 15, "env.txt")
        info["nvcc"] = out.strip().splitlines()[-1] if out.strip() else ""


def probe_torch(ctx, info):
    code = ("import json, torch; c = torch.cuda.is_available(); print(json.dumps({'torch': torch.__version__, "
            "'cuda': c, 'gpu': torch.cuda.get_device_name() if c else None, "
            "'cudnn': torch.backends.cudnn.version() if c else None}))")
    rc, out, timed_out = ctx.run([sys.executable, "-c", code], 60, "env.txt")
    lines = kit_parse.json_lines(out)
    info["torch"] = lines[-1] if rc == 0 and lines else f"not importable (rc {rc})"
    ctx.torch_ok = rc == 0 and bool(lines) and (lines[-1]["cuda"] or ctx.smoke)


def find_sanitizer(info):
    path = shutil.which("compute-sanitizer")
    for guess in ["/usr/local/cuda/bin/compute-sanitizer"] + sorted(glob.glob("/opt/nvidia/**/compute-sanitizer",
                                                                                recursive=True)):
        if not path and os.path.isfile(guess):
            path = guess
    info["compute_sanitizer"] = path or "not found"
    return path


def stage_env(ctx, box):
    info = {}
    describe_machine(ctx, info)
    if ctx.kit:
        prepend_library_path(ctx, [os.path.join(ctx.kit, "lib")])
    retort = ctx.tool("retort")
    missing = ldd_missing(ctx, retort)
    cuda_dirs = library_dirs_for([m for m in missing if m in CUDA_SONAMES or m.startswith("libcudnn")])
    if cuda_dirs:
        prepend_library_path(ctx, cuda_dirs)
        info["cuda_library_dirs"] = cuda_dirs
    rc, out, _ = ctx.run([retort, "--version"], 20, "env.txt")
    fallback = os.path.join(ctx.kit, "lib", "fallback") if ctx.kit else None
    if rc != 0 and fallback and os.path.isdir(fallback):  # e.g. an older libstdc++ than ours
        ctx.env["LD_LIBRARY_PATH"] += ":" + fallback
        info["libstdcxx_fallback"] = True
        rc, out, _ = ctx.run([retort, "--version"], 20, "env.txt")
    info["missing_libraries"] = {b: ldd_missing(ctx, ctx.tool(b)) for b in ("retort", "retort_tests", "retort_bench")}
    info["LD_LIBRARY_PATH"] = ctx.env.get("LD_LIBRARY_PATH", "")
    info["retort_version"] = out.strip() if rc == 0 else f"does not run (rc {rc}): {out.strip()[-300:]}"
    ctx.binaries_ok = rc == 0
    if ctx.binaries_ok:  # a first CUDA run; its failure is recorded, the other stages still run
        rc, out, _ = ctx.run([retort, "machine", "--device", ctx.device], 60, "env.txt")
        info["retort_machine"] = out.strip() if rc == 0 else f"failed (rc {rc}): {out.strip()[-300:]}"
    probe_torch(ctx, info)
    ctx.sanitizer = find_sanitizer(info)
    ctx.results["meta"]["machine"] = info
    md = "\n".join(f"- **{k}**: {v}" for k, v in info.items())
    if not ctx.binaries_ok:
        return {"status": "fail", "note": "retort does not run here: " + str(info.get("retort_version"))[-200:],
                "markdown": md, "data": info}
    note = f"{info.get('gpu')}; torch {info['torch'].get('torch') if isinstance(info['torch'], dict) else 'absent'}"
    return {"status": "pass", "note": note, "markdown": md, "data": info}


# ---------------------------------------------------------------------------------- tests
def stage_tests(ctx, box):
    """Every GPU test (CUDA parity against the CPU reference): counts and failures. If the run
    dies before its summary, each test case runs alone so one crash does not hide the rest."""
    rc, out, timed_out = ctx.run([ctx.tool("retort_tests"), "-ts=gpu", "--no-colors"], box, "tests.log")
    t_end = time.monotonic() + box
    res = kit_parse.doctest_results(out)
    if not res["finished"]:
        res = tests_one_by_one(ctx, t_end - time.monotonic())
        res["note"] = "the whole run stopped early (crash or time box); then each case alone"
    elif res["failed"] > 1:  # a broken CUDA context fails every later case: run each failed one alone
        alone = tests_one_by_one(ctx, t_end - time.monotonic(), [f["test"] for f in res["failures"]])
        failing_alone = {f["test"] for f in alone["failures"]}
        for f in res["failures"]:
            f["alone"] = "fails alone too" if f["test"] in failing_alone else "passes alone"
    data = res
    md = [f"{res['passed']} passed, {res['failed']} failed, {res['skipped']} skipped of {res['total']}"]
    for f in res["failures"]:
        alone = f" ({f['alone']})" if "alone" in f else ""
        md.append(f"- **{f['test']}**{alone}: " + "; ".join(f["errors"][:3]))
    if ctx.smoke:  # no GPU: every case must skip, and say so
        ok = res["finished"] and res["failed"] == 0 and res["skipped"] == res["total"]
    else:
        ok = res["finished"] and res["failed"] == 0 and res["skipped"] == 0
    status = "pass" if ok else ("partial" if timed_out and not res["failed"] else "fail")
    return {"status": status, "note": md[0], "markdown": "\n".join(md), "data": data}


def tests_one_by_one(ctx, box, names=None):
    """Each GPU test case (or each of `names`) in a process of its own."""
    t_end = time.monotonic() + box
    if names is None:
        rc, out, _ = ctx.run([ctx.tool("retort_tests"), "-ts=gpu", "-ltc", "--no-colors"], 30, "tests.log")
        names = [line.strip() for line in out.splitlines()
                 if line.strip() and not line.startswith("[doctest]") and set(line.strip()) != {"="}]
    total, passed, skipped, failures = 0, 0, 0, []
    for name in names:
        left = t_end - time.monotonic()
        if left < 5:
            failures.append({"test": name, "errors": ["not run: time box"]})
            continue
        rc, out, timed_out = ctx.run([ctx.tool("retort_tests"), "-ts=gpu", "--no-colors",
                                      "-tc=" + kit_parse.doctest_filter_name(name)], left, "tests.log")
        r = kit_parse.doctest_results(out)
        total += 1
        if r["finished"] and r["failed"] == 0:
            passed += 1 - min(r["skipped"], 1)
            skipped += min(r["skipped"], 1)
        else:
            errors = r["failures"][0]["errors"] if r["failures"] else [f"rc {rc}" + (" (timed out)" if timed_out else ""),
                                                                       out.strip()[-300:]]
            failures.append({"test": name, "errors": errors})
    return {"finished": True, "total": total, "passed": passed, "failed": len(failures), "skipped": skipped,
            "failures": failures}


# ------------------------------------------------------------------------------ sanitizer
SANITIZER_RUNS = [  # (tool, doctest filters, share of the stage's box)
    ("memcheck", ["-ts=gpu", "-tce=*models*,*torch fixtures*"], 0.5),
    ("racecheck", ["-ts=gpu", "-tc=*softmax*,*layer_norm*,*batch_norm2d*,cuda parity: sum*,*mean?*,*argmax*,"
                   "*cross_entropy*,*scaled_dot_product_attention*,*l2_normalize*"], 0.3),
    ("initcheck", ["-ts=gpu", "-tce=*models*,*torch fixtures*,*conv2d*,*matmul*,*linear*"], 0.2),
]


def stage_sanitizer(ctx, box):
    """compute-sanitizer over the GPU tests: memcheck over the hand-written kernels' tests,
    racecheck over the shared-memory kernels', initcheck; findings by kernel, ours apart."""
    if not ctx.sanitizer:
        return {"status": "skip", "note": "compute-sanitizer not found" + (" (expected: no GPU)" if ctx.smoke else "")}
    t_end = time.monotonic() + box
    data, md, worst = {}, [], "pass"
    for tool, filters, share in SANITIZER_RUNS:
        left = t_end - time.monotonic()
        budget = left if tool == SANITIZER_RUNS[-1][0] else min(left, box * share)
        if budget < 10:
            data[tool] = {"finished": False, "note": "no time left"}
            continue
        cmd = [ctx.sanitizer, "--tool", tool, "--print-limit", "30", "--error-exitcode", "99"]
        if tool == "memcheck":
            cmd += ["--leak-check", "no"]
        rc, out, timed_out = ctx.run(cmd + [ctx.tool("retort_tests"), "--no-colors"] + filters, budget, "tests.log")
        r = kit_parse.sanitizer_results(out)
        r["tests"] = kit_parse.doctest_results(out)
        r["timed_out"] = timed_out
        data[tool] = r
        ours = [f for f in r["findings"] if f["ours"]]
        md.append(f"- **{tool}**: {'cut by its time box; ' if timed_out else ''}"
                  f"{r['errors'] if r['errors'] is not None else '?'} errors; "
                  f"tests {r['tests']['passed']} passed, {r['tests']['failed']} failed")
        for f in r["findings"][:8]:
            md.append(f"  - {'ours' if f['ours'] else 'library'}: `{f['kernel']}` x{f['count']}: {f['first']}")
        if ours or (r["errors"] and r["errors"] > 0 and tool == "memcheck"):
            worst = "fail"
        elif timed_out and worst == "pass":
            worst = "partial"
        elif r["errors"]:
            worst = "warn" if worst == "pass" else worst
    return {"status": worst, "note": "; ".join(f"{t}: {d.get('errors', '?')} errors" for t, d in data.items()),
            "markdown": "\n".join(md), "data": data}


# ------------------------------------------------------------------------------------ e2e
def stage_e2e(ctx, box):
    """Training-step images/s: retort bench, then the same steps in PyTorch in four modes."""
    t_end = time.monotonic() + box
    steps = ["--warmup", "1", "--steps", "1", "--rounds", "1"] if ctx.smoke else \
        ["--warmup", "3", "--steps", "10", "--rounds", "3"]
    ours = []
    for label, flags, graph in RETORT_VARIANTS:
        for config, recipe, batch in BENCH_CONFIGS:
            if graph and ctx.smoke:  # no graphs on the CPU
                continue
            batch = max(2, batch // 32) if ctx.smoke else batch
            out_json = os.path.join(ctx.work, f"bench_{config}_{batch}_{label}.json")
            rc, out, timed_out = ctx.run([ctx.tool("retort"), "bench", recipe, "--device", ctx.device, "--batch-size",
                                          str(batch), "--json", out_json] + flags + steps,
                                         min(60, t_end - time.monotonic()), "bench.log")
            if rc == 0 and os.path.exists(out_json):
                with open(out_json) as f:
                    record = json.load(f)
            else:
                record = {"error": ("timed out" if timed_out else f"rc {rc}: ") + out.strip()[-300:]}
            ours.append({"config": config, "batch": batch, **record, "precision": label})
    theirs, torch_note = torch_runs(ctx, steps, t_end)
    ctx.results["stages"].setdefault("e2e", {})
    table = kit_parse.e2e_table(ours, theirs)
    errors = [r for r in ours if "error" in r]
    status = "fail" if errors else ("warn" if torch_note else "pass")
    note = f"retort: {len(ours) - len(errors)}/{len(ours)} ran" + (f"; {torch_note}" if torch_note else "")
    return {"status": status, "note": note, "markdown": table, "data": {"retort": ours, "pytorch": theirs}}


def torch_runs(ctx, steps, t_end):
    if not ctx.torch_ok:
        return [], "PyTorch not importable here: its columns are empty"
    batch = (lambda b: max(2, b // 32)) if ctx.smoke else (lambda b: b)
    modes = ["eager_f32"] if ctx.smoke else ["eager_f32", "eager_tf32", "bf16_cl"]
    plan = [f"{c}:{batch(b)}:{m}" for m in modes for c, _, b in BENCH_CONFIGS]
    if not ctx.smoke:
        plan += [f"{c}:{b}:compile" for c, _, b in BENCH_CONFIGS]  # last: compiling costs the most time
    rc, out, timed_out = ctx.run([sys.executable, "bench/gpu/torch_step.py", "--device", ctx.device, "--plan",
                                  ",".join(plan)] + steps, max(5, t_end - time.monotonic()), "bench.log")
    runs = kit_parse.json_lines(out)
    note = ""
    if timed_out:
        note = f"PyTorch runs cut by the time box after {len(runs)} of {len(plan)}"
    elif rc != 0:
        note = f"PyTorch: {sum('error' in r for r in runs)} of {len(plan)} runs failed"
    return runs, note


# ------------------------------------------------------------------------------------ ops
def stage_ops(ctx, box):
    """The per-op table: each hand-written kernel's time and GB/s or TFLOP/s against a device
    copy and a GEMM measured in the same run (retort_bench)."""
    out_json = os.path.join(ctx.work, "ops.json")
    extra = ["--small", "--repeats", "1"] if ctx.smoke else ["--repeats", "5"]
    rc, out, timed_out = ctx.run([ctx.tool("retort_bench"), "--device", ctx.device, "--json", out_json] + extra, box,
                                 "bench.log")
    table = "\n".join(line for line in out.splitlines() if line.startswith("|"))
    records = []
    if os.path.exists(out_json):
        with open(out_json) as f:
            records = json.load(f)
    bad = [r["op"] for r in records if r.get("max_rel_err_vs_cpu") is not None and r["max_rel_err_vs_cpu"] > 1e-3]
    rows = max(0, len(table.splitlines()) - 2)
    if timed_out:
        return {"status": "partial", "note": f"cut by its time box after {rows} rows", "markdown": table,
                "data": records}
    if rc != 0:
        return {"status": "fail", "note": f"rc {rc}: {out.strip()[-200:]}", "markdown": table, "data": records}
    note = f"{rows} rows" + (f"; outputs differ from the CPU's by > 1e-3: {', '.join(bad)}" if bad else "")
    return {"status": "warn" if bad else "pass", "note": note, "markdown": table, "data": records}


# --------------------------------------------------------------------------------- recipe
def stage_recipe(ctx, box):
    """The default recipe on the device for a few hundred steps (12,800 training images:
    200 teacher steps, 100 + 100 student steps), beside the CPU run of the same steps; then the
    same steps under bf16 autocast, beside the device's f32 run (accuracy parity of bf16); then
    the f32 steps as CUDA graph replays, beside the eager run (the replays train alike)."""
    t_end = time.monotonic() + box
    run_dir = os.path.join(ctx.work, f"recipe_{ctx.device}")
    rc, out, timed_out = ctx.run([ctx.tool("retort"), "run", RECIPE, "--device", ctx.device, "--out", run_dir] +
                                 recipe_flags(ctx), box, "recipe.log")
    if rc != 0:
        return {"status": "partial" if timed_out else "fail", "note": ("timed out" if timed_out else f"rc {rc}: ") +
                out.strip()[-300:]}
    ours = load_json(os.path.join(run_dir, "summary.json"))
    reference_dir = None if ctx.smoke else ctx.cpu_reference
    if ctx.smoke:  # the packed reference ran the full steps: make one of the smoke's, so the comparison runs too
        reference_dir = os.path.join(ctx.work, "recipe_cpu_reference")
        rc, out, _ = ctx.run([ctx.tool("retort"), "run", RECIPE, "--device", "cpu", "--out", reference_dir] +
                             recipe_flags(ctx), max(5, t_end - time.monotonic()), "recipe.log")
    reference = load_json(os.path.join(reference_dir, "summary.json")) if reference_dir else None
    table, worst = kit_parse.recipe_comparison(ours, reference)
    bf16_table, bf16_note = recipe_in_bf16(ctx, ours, t_end)
    graph_table, graph_note, graph_ok = recipe_with_graphs(ctx, ours, t_end)
    table += "\n\n" + bf16_table + "\n\n" + graph_table
    notes = f"{bf16_note}; {graph_note}"
    if reference is None:
        return {"status": "warn", "note": "no CPU reference in the kit; " + notes, "markdown": table, "data": ours}
    status = "pass" if worst <= 2.0 and graph_ok else "warn"
    return {"status": status, "note": f"largest top-1 difference from the CPU run: {worst:.2f} points; {notes}",
            "markdown": table, "data": {"device": ours, "cpu": reference}}


def recipe_variant(ctx, name, stage_setting, left):
    """The recipe's steps again with `stage_setting` (key=value) set in every stage, into
    recipe_<device>_<name>; returns (run_dir, rc, output, timed_out)."""
    run_dir = os.path.join(ctx.work, f"recipe_{ctx.device}_{name}")
    settings = [a for stage in RECIPE_STAGES for a in ("--set", f"stages.{stage}.{stage_setting}")]
    rc, out, timed_out = ctx.run([ctx.tool("retort"), "run", RECIPE, "--device", ctx.device, "--out", run_dir] +
                                 recipe_flags(ctx) + settings, left, "recipe.log")
    return run_dir, rc, out, timed_out


def recipe_in_bf16(ctx, f32_summary, t_end):
    """The recipe's steps again with every stage under bf16 autocast; its table beside f32's."""
    left = t_end - time.monotonic()
    if left < 10:
        return "bf16: no time left in the box", "bf16 run skipped (time box)"
    run_dir, rc, out, timed_out = recipe_variant(ctx, "bf16", 'precision="bf16"', left)
    if rc != 0:
        return "bf16: " + ("timed out" if timed_out else f"rc {rc}: {out.strip()[-300:]}"), "bf16 run failed"
    table, worst = kit_parse.recipe_comparison(f32_summary, load_json(os.path.join(run_dir, "summary.json")),
                                               labels=("f32", "bf16"))
    return table, f"largest bf16 - f32 top-1 difference: {worst:.2f} points"


def recipe_with_graphs(ctx, f32_summary, t_end):
    """The recipe's f32 steps again with every stage's step replayed as a CUDA graph
    (cuda_graph = true: train/graph_steps.h); its table beside the eager run's. Without a GPU
    (smoke) the run must be refused before any work, naming the device. Returns (table, note, ok)."""
    left = t_end - time.monotonic()
    if left < 10:
        return "graph: no time left in the box", "graph run skipped (time box)", True
    run_dir, rc, out, timed_out = recipe_variant(ctx, "graph", "cuda_graph=true", left)
    if ctx.smoke:
        refused = rc != 0 and "CUDA graphs need a CUDA device" in out and not os.path.exists(run_dir)
        note = "graph run refused on the CPU, as it must be" if refused else f"graph run not refused on the CPU (rc {rc})"
        return "graph: " + note, note, refused
    if rc != 0:
        return ("graph: " + ("timed out" if timed_out else f"rc {rc}: {out.strip()[-300:]}"), "graph run failed",
                timed_out)
    table, worst = kit_parse.recipe_comparison(f32_summary, load_json(os.path.join(run_dir, "summary.json")),
                                               labels=("eager", "graph"))
    return table, f"largest graph - eager top-1 difference: {worst:.2f} points", worst <= 0.5


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return None


STAGES = [
    Stage("env", 90, 5, stage_env),
    Stage("tests", 75, 20, stage_tests),
    Stage("sanitizer", 100, 30, stage_sanitizer),
    Stage("e2e", 220, 30, stage_e2e),
    Stage("ops", 60, 15, stage_ops),
    Stage("recipe", 150, 30, stage_recipe),
]


# -------------------------------------------------------------------------------- summary
def render_status_table(results):
    rows = ["| stage | status | seconds | note |", "|---|---|---|---|"]
    for name, r in results["stages"].items():
        rows.append(f"| {name} | {r['status']} | {r.get('seconds', '')} | {str(r.get('note', '')).replace('|', '/')} |")
    return "\n".join(rows)


def render_summary(results):
    meta = results["meta"]
    kit = meta.get("kit", {})
    lines = ["# retort GPU kit run", "",
             f"- mode: {meta.get('mode')}; started {meta.get('started')}; deadline {meta.get('deadline_s')} s",
             f"- kit: commit {kit.get('commit', '?')}, packed {kit.get('packed', '?')}",
             f"- machine: {meta.get('machine', {}).get('gpu', '?')}; {meta.get('machine', {}).get('os', '')}", "",
             render_status_table(results), ""]
    for name, r in results["stages"].items():
        if r.get("markdown"):
            lines += [f"## {name}", "", r["markdown"], ""]
    return "\n".join(lines)
