#!/usr/bin/env python3
"""`retort report` end to end: a tiny real run (Fashion-MNIST, KD + AT, a few steps of each stage),
its report written and loaded in headless Chromium, which must lay out every chart (the page's
inline self-check sets <body data-rendered>), show each stage's loss terms with as many points as
steps.jsonl has rows and the last row's value, and show summary.json's numbers in the results
table; a screenshot must be a real picture. Prints "SKIP: ..." and exits 0 without chromium.
Usage: test_report_browser.py BUILD_DIR (the directory holding the retort binary)."""
import html.parser, json, os, shutil, struct, subprocess, sys, tempfile, zlib

RETORT = os.path.join(os.path.abspath(sys.argv[1]), "retort")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FMNIST = "/usr/share/datasets/fashion-mnist"
STAGES = ["teacher", "student_alone", "student_kd"]
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def chromium():
    for name in ["chromium", "chromium-browser", "google-chrome"]:
        if shutil.which(name):
            return shutil.which(name)
    return None


def browser(exe, *args):
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


class Dom(html.parser.HTMLParser):
    """The rendered page's charts with their series, the results tables' cells, the body's attributes."""

    def __init__(self):
        super().__init__()
        self.body, self.charts, self.results, self.chart = {}, {}, [], None
        self.in_results = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body":
            self.body = a
        elif tag == "svg" and "chart" in (a.get("class") or "").split():
            self.chart = a["data-chart"]
            self.charts[self.chart] = {}
        elif tag == "polyline" and self.chart and "data-series" in a:
            self.charts[self.chart][a["data-series"]] = a
        elif tag == "table":
            self.in_results = "results" in (a.get("class") or "")
        elif tag == "tr" and self.in_results:
            self.results.append([])
        elif tag == "td" and self.in_results and self.results:
            self.results[-1].append(a.get("data-value"))

    def handle_endtag(self, tag):
        if tag == "svg":
            self.chart = None
        elif tag == "table":
            self.in_results = False


def tiny_run(tmp):
    with open(os.path.join(ROOT, "recipes/fmnist_kd.toml")) as f:
        text = f.read()
    kd = '{ name = "kd", teacher = "teacher", weight = 0.9, T = 4.0 }'
    assert kd in text, "recipes/fmnist_kd.toml changed: update this test"
    text = text.replace(kd, kd + ', { name = "at", teacher = "teacher", weight = 1000.0 }')
    recipe = os.path.join(tmp, "tiny.toml")
    with open(recipe, "w") as f:
        f.write(text)
    sets = ["data.train_subset=512"]
    for s in STAGES:
        sets += [f"stages.{s}.epochs=1", f"stages.{s}.batch_size=64"]
    args = [RETORT, "run", recipe, "--out", os.path.join(tmp, "run"), "--max-batches", "6", "--quiet",
            "--log-steps", "2", "--device", "cpu"]
    for s in sets:
        args += ["--set", s]
    r = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, OMP_WAIT_POLICY="passive"))
    check(r.returncode == 0, f"the tiny run finishes ({r.returncode}: {r.stderr.strip()[-300:]})")
    return os.path.join(tmp, "run")


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def check_series(dom, steps):
    for stage in STAGES:
        rows = [r for r in steps if r["stage"] == stage]
        loss = dom.charts.get(f"r0.{stage}.loss", {})
        check(len(rows) == 3, f"{stage}: steps.jsonl has 3 rows ({len(rows)})")
        terms = list(rows[-1].get("terms", {}))
        check(len(terms) > 0 and all(t in loss for t in terms), f"{stage}: the loss chart has each term {terms}")
        for name in terms + ["total"]:
            s = loss.get(name, {})
            last = rows[-1]["loss"] if name == "total" else rows[-1]["terms"][name]
            check(s.get("data-n") == str(len(rows)), f"{stage}/{name}: data-n {s.get('data-n')} == {len(rows)} rows")
            check(s.get("data-last") == "%.6g" % last, f"{stage}/{name}: data-last {s.get('data-last')} == "
                  f"{'%.6g' % last}")
        lr = dom.charts.get(f"r0.{stage}.lr", {}).get("lr", {})
        check(lr.get("data-last") == "%.6g" % rows[-1]["lr"], f"{stage}: the lr chart ends at the last row's lr")


def check_results(dom, summary):
    rows = [r for r in dom.results if r]
    check(len(rows) == len(summary["results"]), f"the results table has {len(summary['results'])} rows ({len(rows)})")
    for row, want in zip(rows, summary["results"]):
        got = dict(zip(["stage", "model", "parameters", "test_top1", "test_top5", "wall_s"], row))
        ok = got["stage"] == want["stage"] and got["model"] == want["model"] and \
            int(got["parameters"]) == want["parameters"] and \
            all(float(got[k]) == want[k] for k in ["test_top1", "test_top5", "wall_s"])
        check(ok, f"results row {want['stage']}: {got} matches summary.json")


def png_is_a_picture(path):
    with open(path, "rb") as f:
        data = f.read()
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return False, "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    idat, pos = b"", 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(idat)
    distinct = len(set(raw[::97]))
    return len(data) > 50000 and width == 1280 and distinct > 40, f"{width}x{height}, {len(data)} bytes, {distinct} byte values"


def main():
    exe = chromium()
    if not exe:
        print("SKIP: chromium not found (apt-get install chromium; scripts/deps.sh installs it)")
        return 0
    if not os.path.isdir(FMNIST):
        print(f"SKIP: Fashion-MNIST not found at {FMNIST}")
        return 0
    tmp = tempfile.mkdtemp(prefix="retort-report-")
    try:
        run = tiny_run(tmp)
        if failures:
            return 1
        page = os.path.join(tmp, "report.html")
        r = subprocess.run([RETORT, "report", run, "-o", page], capture_output=True, text=True, timeout=60)
        check(r.returncode == 0 and os.path.exists(page), f"retort report writes the page ({r.stderr.strip()[:200]})")
        dom = Dom()
        dom.feed(browser(exe, "--dump-dom", "file://" + page).stdout)
        n = len(dom.charts)
        check(n >= 15 and dom.body.get("data-charts") == str(n) and dom.body.get("data-rendered") == str(n),
              f"Chromium laid out every chart: {dom.body.get('data-rendered')} of {dom.body.get('data-charts')} ({n})")
        want = [f"r0.{s}.{c}" for s in STAGES for c in ["loss", "accuracy", "lr", "grad_norm", "images_per_s"]]
        want += [f"r0.{s}.confusion" for s in STAGES] + ["r0.student_kd.at.maps"]
        missing = [c for c in want if c not in dom.charts]
        check(not missing, f"the expected charts are there (missing: {missing})")
        check_series(dom, read_jsonl(os.path.join(run, "steps.jsonl")))
        with open(os.path.join(run, "summary.json")) as f:
            check_results(dom, json.load(f))
        shot = os.path.join(tmp, "report.png")
        browser(exe, f"--screenshot={shot}", "--window-size=1280,4000", "file://" + page)
        ok, what = png_is_a_picture(shot) if os.path.exists(shot) else (False, "no file")
        check(ok, f"the screenshot is a real picture ({what})")
        # two runs (the same one twice): the comparison section renders too
        both = os.path.join(tmp, "both.html")
        subprocess.run([RETORT, "report", run, run, "-o", both], capture_output=True, timeout=60)
        dom2 = Dom()
        dom2.feed(browser(exe, "--dump-dom", "file://" + both).stdout)
        check("cmp.top1" in dom2.charts and dom2.body.get("data-rendered") == str(len(dom2.charts)),
              f"a report of two runs lays out its comparison ({dom2.body.get('data-rendered')} of {len(dom2.charts)})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(failures)} failure(s)" if failures else "all passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
