"""Tests of the GPU kit's stages (bench/gpu/kit_stages.py) against fake binaries that behave
as broken GPU code can: a test run that crashes half-way, a CUDA error that fails every later
case, sanitizer findings, a step benchmark that fails. These paths run only on a lent GPU,
where there is no time to find their bugs. Run by ctest (gpu kit: stages) or directly:
    python3 bench/gpu/test_kit_stages.py"""
import argparse
import os
import stat
import sys
import tempfile
import textwrap
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check  # noqa: E402
import kit_stages  # noqa: E402

NAMES = ["cuda parity: softmax, log_softmax", "cuda parity: layer_norm", "cuda parity: sum"]

# retort_tests: -ltc lists; -tc=NAME runs one case; a whole run crashes after the first case
# (CRASH=1) or fails every case after a broken context (CASCADE=1).
FAKE_TESTS = textwrap.dedent(r"""
    #!/usr/bin/env bash
    for a in "$@"; do
      case "$a" in
        -ltc) printf '[doctest] listing\n===\n%s\n%s\n%s\n===\n[doctest] unskipped: 3\n' \
                "cuda parity: softmax, log_softmax" "cuda parity: layer_norm" "cuda parity: sum"; exit 0 ;;
        -tc=*layer_norm*)
          printf 'TEST CASE:  cuda parity: layer_norm\n\nx.cpp:1: ERROR: CHECK( err <= tol ) is NOT correct!\n'
          printf '  values: CHECK( 0.5 <= 1e-05 )\n\n[doctest] test cases: 1 | 0 passed | 1 failed | 0 skipped\n'
          exit 1 ;;
        -tc=*) printf '[doctest] test cases: 1 | 1 passed | 0 failed | 0 skipped\n'; exit 0 ;;
      esac
    done
    if [[ -n "$CASCADE" ]]; then
      for n in "cuda parity: layer_norm" "cuda parity: sum"; do
        printf 'TEST CASE:  %s\n\nx.cpp:2: ERROR: CUDA error: an illegal memory access was encountered\n\n' "$n"
      done
      printf '[doctest] test cases: 3 | 1 passed | 2 failed | 0 skipped\n'; exit 1
    fi
    echo "running the first case"; kill -SEGV $$
""").lstrip()

FAKE_SANITIZER = textwrap.dedent(r"""
    #!/usr/bin/env bash
    echo "========= COMPUTE-SANITIZER"
    if [[ "$2" == memcheck ]]; then
      echo "========= Invalid __global__ read of size 4 bytes"
      echo "=========     at void retort::cuda::(anonymous namespace)::softmax_kernel<float>(const float *)+0x10 in s.cu:3"
      echo "========="
      echo "[doctest] test cases: 3 | 3 passed | 0 failed | 0 skipped"
      echo "========= ERROR SUMMARY: 1 error"; exit 99
    fi
    echo "[doctest] test cases: 3 | 3 passed | 0 failed | 0 skipped"
    echo "========= ERROR SUMMARY: 0 errors"
""").lstrip()

# retort: bench writes its JSON for KD and fails for the ViT.
FAKE_RETORT = textwrap.dedent(r"""
    #!/usr/bin/env bash
    if [[ "$1" == bench ]]; then
      [[ "$2" == *vit* ]] && { echo "retort: error: CUDA out of memory" >&2; exit 2; }
      while [[ $# -gt 0 ]]; do [[ "$1" == --json ]] && json="$2"; shift; done
      echo '{"images_per_s": 1000.0, "batch": 64}' > "$json"; exit 0
    fi
    echo "0.1.0"
""").lstrip()


def fake_bin(folder, name, text):
    path = os.path.join(folder, name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, os.stat(path).st_mode | stat.S_IEXEC)
    return path


class StagesTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        d = self.tmp.name
        args = argparse.Namespace(smoke=False, out=os.path.join(d, "out"), work=os.path.join(d, "work"),
                                  deadline=120, kit=None, build=d)
        self.ctx = check.Context(args)
        self.ctx.bin = os.path.join(d, "bin")
        os.makedirs(self.ctx.bin)
        fake_bin(self.ctx.bin, "retort_tests", FAKE_TESTS)
        fake_bin(self.ctx.bin, "retort", FAKE_RETORT)
        self.ctx.binaries_ok = True

    def tearDown(self):
        self.tmp.cleanup()

    def test_a_crashed_run_is_rerun_case_by_case(self):
        r = kit_stages.stage_tests(self.ctx, 60)
        self.assertEqual(r["status"], "fail")
        self.assertEqual((r["data"]["total"], r["data"]["passed"], r["data"]["failed"]), (3, 2, 1))
        self.assertEqual(r["data"]["failures"][0]["test"], "cuda parity: layer_norm")
        self.assertIn("0.5 <= 1e-05", r["markdown"])

    def test_a_cascade_of_failures_is_told_apart_by_running_each_alone(self):
        self.ctx.env["CASCADE"] = "1"
        r = kit_stages.stage_tests(self.ctx, 60)
        self.assertEqual(r["status"], "fail")
        alone = {f["test"]: f["alone"] for f in r["data"]["failures"]}
        self.assertEqual(alone, {"cuda parity: layer_norm": "fails alone too", "cuda parity: sum": "passes alone"})

    def test_sanitizer_findings_in_our_kernels_fail_the_stage(self):
        self.ctx.sanitizer = fake_bin(self.ctx.bin, "compute-sanitizer", FAKE_SANITIZER)
        r = kit_stages.stage_sanitizer(self.ctx, 60)
        self.assertEqual(r["status"], "fail")
        self.assertEqual(r["data"]["memcheck"]["errors"], 1)
        self.assertEqual(r["data"]["racecheck"]["errors"], 0)
        self.assertIn("ours: `void retort::cuda::(anonymous namespace)::softmax_kernel<float>", r["markdown"])

    def test_a_failing_step_benchmark_is_named_and_the_others_kept(self):
        self.ctx.torch_ok = False
        r = kit_stages.stage_e2e(self.ctx, 60)
        self.assertEqual(r["status"], "fail")
        ours = r["data"]["retort"]
        self.assertEqual([("error" in x) for x in ours], [False, False, True] * 4)
        self.assertEqual([x["precision"] for x in ours],
                         ["f32"] * 3 + ["bf16"] * 3 + ["bf16+cl"] * 3 + ["bf16+cl+graph"] * 3)
        self.assertIn("CUDA out of memory", ours[2]["error"])
        self.assertIn("| kd_resnet32x4_resnet8x4 | 64 | f32 | 1,000.0 |", r["markdown"])
        self.assertIn("| kd_resnet32x4_resnet8x4 | 64 | bf16 | 1,000.0 |", r["markdown"])

    def test_the_deadline_skips_stages_and_says_so(self):
        self.ctx.deadline = 0
        ok = kit_stages.run_stage(self.ctx, kit_stages.STAGES[1])
        self.assertTrue(ok)
        self.assertEqual(self.ctx.results["stages"]["tests"]["status"], "skip")
        self.assertIn("deadline", self.ctx.results["stages"]["tests"]["note"])

    def test_a_command_past_its_box_is_killed_with_its_children(self):
        fake_bin(self.ctx.bin, "slow", "#!/usr/bin/env bash\necho started; sleep 30 & sleep 30\n")
        rc, out, timed_out = self.ctx.run([os.path.join(self.ctx.bin, "slow")], 1, "x.log")
        self.assertTrue(timed_out)
        self.assertIn("started", out)


if __name__ == "__main__":
    unittest.main()
