#!/usr/bin/env python3
"""An image folder from end to end through the built binary: a run on a small folder of PNGs of
several sizes (preprocessed with a shorter-side resize, a centre crop and bicubic filtering,
through a cache smaller than the folder, with a validation split), then `retort eval` on the
run's model file, which must report the run's own test top-1 (the model file carries the
preprocessing, so training and evaluation feed the model the same pixels), and `retort export
--onnx`, whose file must pass ONNX's checker. Usage: test_own_folder.py BUILD_DIR."""
import json, os, re, struct, subprocess, sys, tempfile, zlib

RETORT = os.path.join(os.path.abspath(sys.argv[1]), "retort")
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def write_png(path, width, height, pixel):
    """An 8-bit grey PNG; pixel(x, y) gives each value."""
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    rows = b"".join(b"\x00" + bytes(pixel(x, y) for x in range(width)) for y in range(height))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def make_folder(root):
    """Three classes told apart by the direction of a stripe pattern, in images of three sizes."""
    patterns = {"horizontal": lambda x, y, k: 40 + 160 * ((y // 3 + k) % 2),
                "vertical": lambda x, y, k: 40 + 160 * ((x // 3 + k) % 2),
                "diagonal": lambda x, y, k: 40 + 160 * (((x + y) // 3 + k) % 2)}
    sizes = [(40, 30), (30, 44), (36, 36)]
    for split, count in (("train", 24), ("test", 8)):
        for name, pattern in patterns.items():
            os.makedirs(os.path.join(root, split, name))
            for i in range(count):
                w, h = sizes[i % 3]
                write_png(os.path.join(root, split, name, f"{i:03d}.png"), w, h,
                          lambda x, y: (pattern(x, y, i) + 7 * i) % 256)


RECIPE = """
[run]
name = "folder"
seed = 1
device = "cpu"
[data]
dataset = "folder"
root = "{root}"
channels = 1
image_size = 16
resize = 18
interpolation = "bicubic"
mean = [0.5]
std = [0.25]
val_size = 12
cache_mb = 0
workers = 2
[models.net]
arch = "resnet8"
[[stages]]
name = "fit"
train = "net"
epochs = 1
batch_size = 8
optimizer = {{ type = "sgd", lr = 0.01 }}  # far from converged: the test loss is large, its digits telling
"""


def main():
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "images")
        make_folder(folder)
        recipe = os.path.join(tmp, "folder.toml")
        with open(recipe, "w") as f:
            f.write(RECIPE.format(root=folder))
        out = os.path.join(tmp, "run")
        r = subprocess.run([RETORT, "run", recipe, "--out", out, "--quiet"], capture_output=True, text=True, timeout=600)
        check(r.returncode == 0, f"the run on the folder finishes ({r.returncode}: {r.stderr[-300:]})")
        if r.returncode != 0:
            return
        row = json.load(open(os.path.join(out, "summary.json")))["results"][0]
        check("selection" in row, "the stage reports its selection on validation")
        model = os.path.join(out, "models", "net.safetensors")
        dump = os.path.join(tmp, "dump.safetensors")
        r = subprocess.run([RETORT, "eval", "--weights", model, "--data", "folder", "--root", folder, "--dump", dump],
                           capture_output=True, text=True, timeout=600)
        m = re.search(r"top1 ([0-9.]+)%", r.stdout)
        check(r.returncode == 0 and m is not None, f"retort eval reads the model file ({r.returncode}: {r.stderr[-300:]})")
        if m:
            check(m.group(1) == f"{row['test_top1']:.2f}",
                  f"retort eval's top-1 {m.group(1)}% is the run's test top-1 {row['test_top1']:.2f}%")
        # the loss, a continuous function of every pixel, tells apart any other preprocessing
        tests = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl")) if '"split":"test"' in l.replace(" ", "")]
        loss = re.search(r"loss ([0-9.]+)", r.stdout)
        check(loss is not None and tests and loss.group(1) == f"{tests[-1]['loss']:.4f}",
              f"retort eval's test loss {loss.group(1) if loss else '?'} is the run's {tests[-1]['loss'] if tests else '?'}")
        check("shorter side resized to 18 (bicubic)" in r.stderr, "retort eval says it feeds the model as training did")
        check(os.path.getsize(dump) > 24 * 16 * 16 * 4, "--dump writes the images, logits and labels")
        onnx = os.path.join(tmp, "net.onnx")
        r = subprocess.run([RETORT, "export", "--weights", model, "--onnx", onnx], capture_output=True, text=True,
                           timeout=600)
        check(r.returncode == 0 and "onnx checker:" in r.stderr and "[batch, 1, 16, 16]" in r.stderr,
              f"retort export --onnx writes a file ONNX's checker passes ({r.returncode}: {r.stderr[-300:]})")
        r = subprocess.run([RETORT, "export", "--weights", model], capture_output=True, text=True, timeout=600)
        check(r.returncode == 2 and "--onnx" in r.stderr, "retort export without an output exits 2 saying what to give")
    print(f"{len(failures)} failure(s)")
    sys.exit(1 if failures else 0)


main()
