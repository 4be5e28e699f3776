#!/usr/bin/env python3
"""Data parallelism, proven against one process (docs/distributed.md), with mpirun on CPU ranks:

equivalence  N ranks x B/N with per-rank BatchNorm equal, bit for bit, one process computing the
             same global batch as N micro-batches: every tensor of every checkpoint (weights,
             BN statistics, optimizer state), its metadata (RNG states, loader position), the
             model files and the loss of every step; N = 2 and 4. N ranks with SyncBN equal one
             process with the whole batch within 1e-6 + 1e-5 |x| after a step (weights and BN
             running statistics). Every run checks after every step that all ranks hold the
             same weights (--verify-replicas).
controls     the comparisons catch what they must: dropping the 1/N scaling, every rank reading
             the same slice, skipping the loss terms' own gradients, per-rank BN against the
             whole batch; a loss that compares examples, and a batch that does not split, are
             refused before anything trains.
failures     an error on one rank ends the job naming the rank; a hung rank is caught by the
             watchdog; a rank killed mid-epoch ends the job within seconds, and the run resumes
             from its last checkpoint on another number of ranks and finishes.
Usage: test_data_parallel.py BUILD_DIR [equivalence|controls|failures]"""
import array, json, os, shutil, signal, struct, subprocess, sys, tempfile, time

RETORT = os.path.join(os.path.abspath(sys.argv[1]), "retort")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECIPE = "tests/dist/dp_tiny.toml"
MPIRUN = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-x", "OMP_NUM_THREADS=1"]
PER_RANK = ["--set", "stages.teacher.batch_norm=per_rank", "--set", "stages.student.batch_norm=per_rank"]
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        failures.append(what)


def retort(out, ranks=1, extra=(), env=None, max_batches=4, timeout=600):
    """Runs the test recipe into `out` on `ranks` processes (1: no mpirun)."""
    args = ["run", RECIPE, "--out", out, "--quiet", "--max-batches", str(max_batches), "--log-steps", "1",
            "--verify-replicas"] + list(extra)
    exports = [a for k, v in (env or {}).items() for a in ["-x", f"{k}={v}"]]
    cmd = [RETORT] + args if ranks == 1 else MPIRUN + exports + ["-np", str(ranks), RETORT] + args
    e = dict(os.environ, OMP_NUM_THREADS="1")
    e.update(env or {})
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=e)


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    body = data[8 + n:]
    return {k: (v["dtype"], body[v["data_offsets"][0]:v["data_offsets"][1]]) for k, v in header.items()}, meta


def run_files(run):
    out = []
    for sub in ["checkpoints", "models"]:
        d = os.path.join(run, sub)
        out += [os.path.join(sub, f) for f in sorted(os.listdir(d)) if f.endswith(".safetensors")]
    return out


def steps(run):
    with open(os.path.join(run, "steps.jsonl")) as f:
        return [(r["stage"], r["step"], r["loss"], r["lr"], r["images"]) for r in map(json.loads, f)]


def bitwise_differences(a, b):
    """What differs between two runs' checkpoints, model files and per-step losses (empty: none)."""
    diffs = []
    files = run_files(a)
    if files != run_files(b):
        return [f"files {files} vs {run_files(b)}"]
    for f in files:
        ta, ma = read_safetensors(os.path.join(a, f))
        tb, mb = read_safetensors(os.path.join(b, f))
        diffs += [f"{f}:{k}" for k in ta if ta[k] != tb.get(k)] + [f"{f}:{k} missing" for k in tb if k not in ta]
        diffs += [f"{f} metadata {k}" for k in set(ma) | set(mb) if ma.get(k) != mb.get(k)]
    if steps(a) != steps(b):
        diffs.append("the per-step losses")
    return diffs


def worst_tolerance_ratio(a, b, f, prefix="model."):
    """max |x - y| / (1e-6 + 1e-5 |x|) over the f32 tensors of file f whose names start with
    prefix ("model.": weights and BN statistics; "optim.": optimizer state); <= 1: within."""
    ta, _ = read_safetensors(os.path.join(a, f))
    tb, _ = read_safetensors(os.path.join(b, f))
    worst, where = 0.0, ""
    for k, (dt, raw) in ta.items():
        if dt != "F32" or not k.startswith(prefix):
            continue
        x, y = array.array("f", raw), array.array("f", tb[k][1])
        for u, v in zip(x, y):
            r = abs(u - v) / (1e-6 + 1e-5 * abs(u))
            if r > worst:
                worst, where = r, k
    return worst, where


def ran(r, what):
    ok = r.returncode == 0
    check(ok, f"{what} ran (exit {r.returncode})")
    if not ok:
        print(r.stderr[-3000:])
    return ok


def equivalence(tmp):
    for n in [2, 4]:
        ref, dp = os.path.join(tmp, f"micro{n}"), os.path.join(tmp, f"ranks{n}")
        micro = [a for s in ["teacher", "student"] for a in ["--set", f"stages.{s}.micro_batches={n}"]]
        if not (ran(retort(ref, 1, PER_RANK + micro), f"one process, {n} micro-batches") and
                ran(retort(dp, n, PER_RANK), f"{n} ranks, per-rank BN")):
            continue
        d = bitwise_differences(ref, dp)
        check(not d, f"{n} ranks equal one process with {n} micro-batches bit for bit over "
                     f"{len(run_files(ref))} files and {len(steps(ref))} steps {d[:4]}")
    # The teacher-feature cache (un-augmented data): computed in shares by the ranks and gathered,
    # it must hold the rows one process computes, so the runs stay equal bit for bit.
    cached = ["--set", "data.augment.random_crop_padding=0", "--set", "data.augment.hflip=false",
              "--set", "stages.student.teacher_cache=memory"]
    ref, dp = os.path.join(tmp, "cache_micro2"), os.path.join(tmp, "cache_ranks2")
    micro = [a for s in ["teacher", "student"] for a in ["--set", f"stages.{s}.micro_batches=2"]]
    r = retort(dp, 2, PER_RANK + cached)
    if ran(retort(ref, 1, PER_RANK + micro + cached), "one process, 2 micro-batches, teacher cache") and \
       ran(r, "2 ranks sharing the teacher cache"):
        check("computed once for 512 images" in r.stderr, "the 2-rank run cached the teacher's taps")
        d = bitwise_differences(ref, dp)
        check(not d, f"with the teacher cache computed in shares and gathered, 2 ranks still equal one process bit "
                     f"for bit {d[:4]}")

    # SyncBN: one step of each stage. For the student's step, a second pair of runs keeps the
    # teacher where it was initialised (lr 1e-9, so its step moves no weight by more than ~1e-9),
    # so both students learn from one teacher.
    one, sync, one_s, sync_s = (os.path.join(tmp, n) for n in ("one", "sync2", "one_student", "sync2_student"))
    opts = ["--set", "stages.student.epochs=1"]
    frozen = opts + ["--set", "stages.teacher.optimizer.lr=1e-9", "--set", "stages.teacher.optimizer.weight_decay=0"]
    if not (ran(retort(one, 1, opts, max_batches=1), "one process, whole batch") and
            ran(retort(sync, 2, opts, max_batches=1), "2 ranks, SyncBN") and
            ran(retort(one_s, 1, frozen, max_batches=1), "one process, frozen teacher") and
            ran(retort(sync_s, 2, frozen, max_batches=1), "2 ranks, SyncBN, frozen teacher")):
        return
    for a, b, f in [(one, sync, "checkpoints/teacher.ckpt.safetensors"),
                    (one_s, sync_s, "checkpoints/student.ckpt.safetensors")]:
        w, k = worst_tolerance_ratio(a, b, f)
        check(w <= 1.0, f"SyncBN on 2 ranks within 1e-6 + 1e-5|x| of one process after a step in {f} "
                        f"(worst {w:.3f} of the tolerance, at {k})")
        g, gk = worst_tolerance_ratio(a, b, f, prefix="optim.")
        print(f"     the step's gradients (momentum buffers) differ by up to {g:.1f}x that tolerance ({gk})")
    threads = os.path.join(tmp, "one_2threads")
    if ran(retort(threads, 1, opts, env={"OMP_NUM_THREADS": "2"}, max_batches=1), "one process, 2 threads"):
        g, gk = worst_tolerance_ratio(one, threads, "checkpoints/teacher.ckpt.safetensors", prefix="optim.")
        print(f"     for scale: one process on 2 OpenMP threads instead of 1 moves them by {g:.1f}x ({gk}): a first "
              f"step's gradients are sums of ~50k terms that cancel")
    a, b = [r[2] for r in steps(one)], [r[2] for r in steps(sync)]
    check(len(a) == len(b) and all(abs(x - y) <= 1e-6 + 1e-5 * abs(x) for x, y in zip(a, b)),
          f"SyncBN: the steps' losses agree with one process ({a} vs {b})")


def controls(tmp):
    ref = os.path.join(tmp, "micro2")
    micro = [a for s in ["teacher", "student"] for a in ["--set", f"stages.{s}.micro_batches=2"]]
    if not ran(retort(ref, 1, PER_RANK + micro, max_batches=2), "reference: one process, 2 micro-batches"):
        return
    for fault, expect in [("no_scale", "model."), ("same_slice", "model."), ("skip_loss_grads", "loss")]:
        out = os.path.join(tmp, fault)
        r = retort(out, 2, PER_RANK, env={"RETORT_DIST_FAULT": fault}, max_batches=2)
        if r.returncode != 0:  # caught during the run: the ranks' weights drifted apart
            check("rank 1's weights differ from rank 0's" in r.stderr,
                  f"control {fault}: --verify-replicas stops the run as the replicas diverge")
            continue
        d = bitwise_differences(ref, out)
        check(any(expect in x for x in d), f"control {fault}: the bitwise comparison fails ({len(d)} differences, "
                                           f"e.g. {d[:2]})")
    one, per_rank = os.path.join(tmp, "one"), os.path.join(tmp, "per_rank")
    if ran(retort(one, 1, max_batches=1), "one process") and \
       ran(retort(per_rank, 2, PER_RANK, max_batches=1), "2 ranks, per-rank BN"):
        w, k = worst_tolerance_ratio(one, per_rank, "checkpoints/teacher.ckpt.safetensors")
        check(w > 1.0, f"control: per-rank BN against the whole batch fails the SyncBN tolerance ({w:.0f}x at {k})")
    r = retort(os.path.join(tmp, "sp"), 2, ["--set", "stages.student.losses.2.name=sp"])
    check(r.returncode != 0 and "loss 'sp' cannot be split over 2 rank(s)" in r.stderr and "dp_tiny.toml:" in r.stderr,
          f"a loss comparing examples is refused on 2 ranks, naming the line ({r.returncode})")
    r = retort(os.path.join(tmp, "three"), 3)
    check(r.returncode != 0 and "batch_size 64" in r.stderr and "3 equal slices" in r.stderr,
          f"a batch that 3 ranks cannot split is refused ({r.returncode})")
    check(not os.path.exists(os.path.join(tmp, "three")), "and nothing was written for it")


def wait_for(path, proc, seconds):
    end = time.time() + seconds
    while time.time() < end and proc.poll() is None:
        if os.path.exists(path):
            return True
        time.sleep(0.1)
    return os.path.exists(path)


def failures_end_the_job(tmp):
    r = retort(os.path.join(tmp, "error"), 2, env={"RETORT_TEST_RANK_FAULT": "1:2:error"})
    check(r.returncode != 0 and "rank 1 of 2" in r.stderr and "fails after step 2" in r.stderr,
          f"an error on rank 1 ends the job naming the rank ({r.returncode})")
    r = retort(os.path.join(tmp, "nan"), 2, ["--set", "stages.teacher.optimizer.lr=1e30"])
    check(r.returncode != 0 and "stopping" in r.stderr and ("nan" in r.stderr or "inf" in r.stderr)
          and "rank 0 of 2" in r.stderr and "rank 1 of 2" in r.stderr,
          f"a non-finite loss stops both ranks at the same step ({r.returncode})")
    start = time.time()
    r = retort(os.path.join(tmp, "hang"), 2, env={"RETORT_TEST_RANK_FAULT": "1:2:hang", "RETORT_DIST_TIMEOUT_S": "3"},
               timeout=120)
    took = time.time() - start
    check(r.returncode != 0 and "did not finish within 3 s" in r.stderr and took < 30,
          f"a hung rank is caught by the watchdog and the job ends ({took:.1f} s, exit {r.returncode})")
    # A longer run, killed mid-epoch: rank 1 dies by SIGKILL once a checkpoint of the student exists.
    out = os.path.join(tmp, "killed")
    longer = ["run", RECIPE, "--out", out, "--quiet", "--checkpoint-every", "2", "--set", "data.train_subset=2048"]
    proc = subprocess.Popen(MPIRUN + ["-np", "2", RETORT] + longer, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    ckpt = os.path.join(out, "checkpoints", "student.ckpt.safetensors")
    if not wait_for(ckpt, proc, 300):
        check(False, "the long run wrote a student checkpoint")
        proc.kill()
        return
    ranks = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    pids = sorted(int(p) for p in ranks)
    rank1 = [p for p in pids if f"OMPI_COMM_WORLD_RANK=1" in open(f"/proc/{p}/environ").read().replace("\0", " ")]
    if not rank1:
        check(False, f"found rank 1 among mpirun's children {pids}")
        proc.kill()
        return
    killed = time.time()
    os.kill(rank1[0], signal.SIGKILL)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    took = time.time() - killed
    check(proc.returncode != 0 and took < 15 and "rank 1" in err,
          f"killing rank 1 mid-epoch ends the job in {took:.1f} s with a message naming rank 1 ({proc.returncode})")
    r = subprocess.run([RETORT] + longer + ["--resume"], cwd=ROOT, capture_output=True, text=True, timeout=900,
                       env=dict(os.environ, OMP_NUM_THREADS="2"))
    summary = json.load(open(os.path.join(out, "summary.json"))) if os.path.exists(os.path.join(out, "summary.json")) else {}
    check(r.returncode == 0 and summary.get("status") == "finished" and "resumed stage" in r.stderr,
          f"the killed 2-rank run resumes on 1 process and finishes ({r.returncode}, {summary.get('status')})")


def main():
    which = sys.argv[2] if len(sys.argv) > 2 else "all"
    if not shutil.which("mpirun"):
        print("SKIP: mpirun not found (apt-get install openmpi-bin; scripts/deps.sh does)")
        return 0
    tmp = tempfile.mkdtemp(prefix="retort-dp-")
    try:
        for name, fn in [("equivalence", equivalence), ("controls", controls), ("failures", failures_end_the_job)]:
            if which in ("all", name):
                fn(os.path.join(tmp, name))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(failures)} failure(s)" if failures else "all passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
