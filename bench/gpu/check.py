#!/usr/bin/env python3
"""The GPU bring-up kit's run (bench/gpu/README.md): stages in order of value, each time-boxed
and under one overall deadline, each writing its results as it ends, so a run cut short still
leaves everything it measured.

    python3 bench/gpu/check.py                      # on the GPU machine: the kit in .gpukit/
    python3 bench/gpu/check.py --only tests,e2e     # rerun some stages
    python3 bench/gpu/check.py --smoke              # here, without a GPU: the same plumbing on
                                                    # the CPU at tiny sizes (the kit in .gpukit/)
    python3 bench/gpu/check.py --smoke --build build   # the same from a build tree (the ctest)

Results go to --out (default $OUT when set, else bench/gpu/out): summary.md (the tables),
results.json (everything), stages.log (the driver's own log) and one log per stage family
(env.txt, tests.log, bench.log, recipe.log); at most 8 files, as the device tool returns."""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kit_stages  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


class Context:
    """What every stage shares: where things are, the clock, the command runner, the results."""

    def __init__(self, args):
        self.args = args
        self.root = ROOT
        self.smoke = args.smoke
        self.device = "cpu" if args.smoke else "cuda"
        self.out = os.path.abspath(args.out)
        self.work = os.path.abspath(args.work)
        self.started = time.monotonic()
        self.deadline = args.deadline
        self.results = {"meta": {}, "stages": {}}
        self.env = dict(os.environ)
        self.env["RETORT_SOURCE_DIR"] = ROOT
        self.env.setdefault("OMP_WAIT_POLICY", "passive")
        self.env["PYTHONUNBUFFERED"] = "1"
        self.bin = None          # folder of retort, retort_tests, retort_bench
        self.kit = None          # the unpacked kit (None when running from a build tree)
        self.data_dir = None     # Fashion-MNIST
        self.cpu_reference = None  # folder with the CPU run's summary.json, when the kit has one
        self.binaries_ok = False
        self.torch_ok = False
        self.sanitizer = None
        os.makedirs(self.out, exist_ok=True)
        os.makedirs(self.work, exist_ok=True)

    def remaining(self):
        return self.deadline - (time.monotonic() - self.started)

    def log(self, message):
        line = f"[{time.monotonic() - self.started:6.1f}s] {message}"
        print(line, flush=True)
        with open(os.path.join(self.out, "stages.log"), "a") as f:
            f.write(line + "\n")

    def tool(self, name):
        return os.path.join(self.bin, name)

    def run(self, cmd, timeout, log_name, env=None, cwd=None):
        """Runs cmd (a list), its output appended to <out>/<log_name>; never past the deadline.
        Returns (rc, output, timed_out). A timed-out command's whole process group is killed."""
        timeout = max(1.0, min(timeout, self.remaining()))
        header = f"\n$ {' '.join(cmd)}   (time box {timeout:.0f} s)\n"
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env or self.env,
                                cwd=cwd or self.root, start_new_session=True, text=True, errors="replace")
        try:
            output, _ = proc.communicate(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
            timed_out = True
        seconds = time.monotonic() - t0
        footer = f"[{'TIMED OUT' if timed_out else 'rc ' + str(proc.returncode)} after {seconds:.1f} s]\n"
        with open(os.path.join(self.out, log_name), "a") as f:
            f.write(header + (output or "") + footer)
        return proc.returncode, output or "", timed_out

    def save(self):
        """results.json and summary.md, rewritten after every stage (atomically)."""
        write_atomic(os.path.join(self.out, "results.json"), json.dumps(self.results, indent=1) + "\n")
        write_atomic(os.path.join(self.out, "summary.md"), kit_stages.render_summary(self.results))


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def unpack_kit(ctx):
    """Unpacks .gpukit/payload.tar.xz (binaries and the libraries they load) into the work folder."""
    kit_dir = os.path.abspath(ctx.args.kit)
    payload = os.path.join(kit_dir, "payload.tar.xz")
    if not os.path.exists(payload):
        raise SystemExit(f"check: no kit at {kit_dir} (run bench/gpu/pack.sh first, or pass --build DIR)")
    target = os.path.join(ctx.work, "kit")
    shutil.rmtree(target, ignore_errors=True)
    with tarfile.open(payload, "r:xz") as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(target, filter="data")
        else:
            tar.extractall(target)
    ctx.kit = target
    ctx.bin = os.path.join(target, "bin")
    ctx.data_dir = os.path.join(kit_dir, "data", "fashion-mnist")
    if os.path.exists(os.path.join(kit_dir, "cpu_reference", "summary.json")):
        ctx.cpu_reference = os.path.join(kit_dir, "cpu_reference")
    manifest = os.path.join(kit_dir, "MANIFEST.json")
    if os.path.exists(manifest):
        with open(manifest) as f:
            ctx.results["meta"]["kit"] = json.load(f)


def git_commit():
    try:
        out = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"], capture_output=True, text=True,
                             timeout=10)
        return out.stdout.strip() or "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="no GPU: the same stages on the CPU at tiny sizes")
    p.add_argument("--kit", default=os.path.join(ROOT, ".gpukit"), help="the packed kit (bench/gpu/pack.sh)")
    p.add_argument("--build", help="use the binaries of this build tree instead of a kit")
    p.add_argument("--out", default=os.environ.get("OUT") or os.path.join(ROOT, "bench", "gpu", "out"))
    p.add_argument("--work", default=os.path.join("/tmp", f"retort-gpukit-{os.getpid()}"))
    p.add_argument("--deadline", type=float, default=450, help="seconds for all stages together")
    p.add_argument("--only", help="comma-separated stages to run (env always runs)")
    p.add_argument("--skip", help="comma-separated stages to leave out")
    args = p.parse_args(argv)
    names = [s.name for s in kit_stages.STAGES]
    for flag in ("only", "skip"):
        for name in filter(None, (getattr(args, flag) or "").split(",")):
            if name not in names:
                p.error(f"--{flag}: unknown stage '{name}'; stages: {', '.join(names)}")
    if args.deadline <= 0:
        p.error("--deadline must be positive")
    return args


def chosen(args, name):
    if name == "env":
        return True
    only = set(filter(None, (args.only or "").split(",")))
    skip = set(filter(None, (args.skip or "").split(",")))
    return (not only or name in only) and name not in skip


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    ctx = Context(args)
    for name in os.listdir(ctx.out):  # a fresh set of results per run
        if name.endswith((".log", ".txt", ".md", ".json")):
            os.remove(os.path.join(ctx.out, name))
    ctx.results["meta"].update({"mode": "smoke (CPU, tiny sizes)" if args.smoke else "GPU",
                                "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "deadline_s": args.deadline,
                                "argv": sys.argv[1:] if argv is None else argv})
    if args.build:
        ctx.bin = os.path.abspath(args.build)
        ctx.results["meta"]["kit"] = {"commit": git_commit(), "packed": "not packed: build tree " + ctx.bin}
        ctx.data_dir = "/usr/share/datasets/fashion-mnist"
    else:
        unpack_kit(ctx)
    failed = False
    for stage in kit_stages.STAGES:
        if not chosen(args, stage.name):
            continue
        failed |= not kit_stages.run_stage(ctx, stage)
        # the smoke run checks the plumbing: nothing may be cut short there either
        failed |= args.smoke and ctx.results["stages"][stage.name]["status"] not in ("pass", "warn", "skip")
        ctx.save()
    ctx.log(f"done in {time.monotonic() - ctx.started:.0f} s: summary in {os.path.join(ctx.out, 'summary.md')}")
    print(kit_stages.render_status_table(ctx.results), flush=True)
    shutil.rmtree(ctx.work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
