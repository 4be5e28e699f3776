#!/usr/bin/env python3
"""The command line's contract (docs/errors.md), run against the built binary: usage and recipe
errors exit 2 with a message naming the option, key and line; Ctrl-C during a run exits 130
after writing a checkpoint and prints a resume command that, run as printed, finishes the run
(and is refused while another process holds the run directory's lock).
Usage: test_cli.py BUILD_DIR (the directory holding the retort binary)."""
import fcntl, json, os, shlex, signal, subprocess, sys, tempfile, time

RETORT = os.path.join(os.path.abspath(sys.argv[1]), "retort")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def run(args, **kw):
    return subprocess.run([RETORT] + args, cwd=ROOT, capture_output=True, text=True, timeout=600, **kw)


def usage_errors():
    r = run(["run", "recipes/fmnist_kd.toml", "--checkpoint-every", "-1"])
    check(r.returncode == 2 and "--checkpoint-every" in r.stderr, f"a negative --checkpoint-every exits 2 ({r.returncode})")
    r = run(["run", "recipes/fmnist_kd.toml", "--device", "cuda:x"])
    check(r.returncode == 2 and "cuda:x" in r.stderr, f"a bad --device exits 2 naming it ({r.returncode})")
    for flag in ["--image-size", "--num-classes"]:
        r = run(["import", "--model", "resnet18", "--weights", "w.safetensors", flag, "-3"])
        check(r.returncode == 2 and flag in r.stderr, f"a negative import {flag} exits 2 naming it ({r.returncode})")
    r = run(["eval", "--model", "resnet8", "--weights", "w.safetensors", "--image-size", "-1"])
    check(r.returncode == 2 and "--image-size" in r.stderr, f"a negative eval --image-size exits 2 ({r.returncode})")
    r = run(["run", "recipes/fmnist_kd.toml", "--precision", "fp16"])
    check(r.returncode == 2 and "--precision" in r.stderr and "bf16" in r.stderr,
          f"an unknown --precision exits 2 naming the choices ({r.returncode})")
    r = run(["bench", "recipes/fmnist_kd.toml", "--cuda-graph", "--device", "cpu"])
    check(r.returncode == 2 and "CUDA graphs need a CUDA device" in r.stderr,
          f"bench --cuda-graph on the CPU exits 2 saying why ({r.returncode}: {r.stderr.strip()[:120]})")
    r = run(["frobnicate"])
    check(r.returncode == 2, f"an unknown subcommand exits 2 ({r.returncode})")
    r = run(["--help"])
    check(r.returncode == 0 and "run" in r.stdout, "--help exits 0")


def recipe_errors(tmp):
    bad = os.path.join(tmp, "bad.toml")
    with open(os.path.join(ROOT, "recipes/fmnist_kd.toml")) as f:
        text = f.read().replace("epochs = 2", "epochs = 2\nlearning_rate = 0.1", 1)
    with open(bad, "w") as f:
        f.write(text)
    line = text.splitlines().index("learning_rate = 0.1") + 1
    r = run(["run", bad, "--out", os.path.join(tmp, "never")])
    check(r.returncode == 2 and f"bad.toml:{line}" in r.stderr and "learning_rate" in r.stderr,
          f"an unknown recipe key exits 2 naming the key and line {line}: {r.stderr.strip()[:200]}")
    check(not os.path.exists(os.path.join(tmp, "never")), "a rejected recipe creates no run directory")
    r = run(["run", "recipes/fmnist_kd.toml", "--set", "stages.0.batch_size=-4", "--out", os.path.join(tmp, "never")])
    check(r.returncode == 2 and "batch_size" in r.stderr, f"a bad --set value exits 2 naming the key ({r.returncode})")


def precision_for_every_stage(tmp):
    out = os.path.join(tmp, "bf16")
    r = run(["run", "fmnist_kd", "--quiet", "--out", out, "--max-batches", "1", "--set", "data.train_subset=256",
             "--precision", "bf16"])
    check(r.returncode == 0, f"a run with --precision bf16 finishes ({r.returncode}: {r.stderr.strip()[-200:]})")
    with open(os.path.join(out, "resolved.toml")) as f:
        text = f.read()
    check(text.count('precision = "bf16"') == 3, "--precision bf16 sets each of the recipe's 3 stages")


def wait_for(path, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline and not os.path.exists(path):
        time.sleep(0.05)
    return os.path.exists(path)


def interrupt_and_resume(tmp):
    out = os.path.join(tmp, "run")
    args = ["run", "fmnist_kd", "--quiet", "--out", out, "--max-batches", "4", "--set", "data.train_subset=1024",
            "--set", "stages.0.epochs=1"]
    p = subprocess.Popen([RETORT] + args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # The handlers are in place before the run directory exists; a signal now stops the first step.
    check(wait_for(os.path.join(out, ".lock"), 300), "the run creates its directory and lock")
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=600)
    check(p.returncode == 130, f"Ctrl-C exits 130 (got {p.returncode})")
    resume = [l for l in err.splitlines() if l.startswith("retort: resume with: ")]
    check(len(resume) == 1, "the resume command is printed")
    with open(os.path.join(out, "summary.json")) as f:
        status = json.load(f)["status"]
    check(status.startswith("interrupted: SIGINT"), f"summary.json says interrupted ({status[:80]})")
    if not resume:
        return
    cmd = shlex.split(resume[0][len("retort: resume with: "):])
    check(cmd[-3:] == ["--out", out, "--resume"], f"the resume command names the run directory: {cmd[-3:]}")
    with open(os.path.join(out, ".lock")) as held:  # as if another retort were writing into it
        fcntl.flock(held, fcntl.LOCK_EX)
        other = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    check(other.returncode == 2 and "is in use by process" in other.stderr,
          f"a run directory in use is refused ({other.returncode}: {other.stderr.strip()[:160]})")
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    check(r.returncode == 0, f"the printed resume command finishes the run ({r.returncode}: {r.stderr.strip()[-300:]})")
    with open(os.path.join(out, "summary.json")) as f:
        check(json.load(f)["status"] == "finished", "summary.json says finished")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="retort-cli-") as tmp:
        usage_errors()
        recipe_errors(tmp)
        precision_for_every_stage(tmp)
        interrupt_and_resume(tmp)
    print(f"{len(failures)} failures")
    sys.exit(1 if failures else 0)
