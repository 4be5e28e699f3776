"""Tests of the GPU kit's parsers (bench/gpu/kit_parse.py) on outputs in the formats doctest,
compute-sanitizer and the step benchmarks print. Run by ctest (gpu_kit_parse) or directly:
    python3 bench/gpu/test_kit_parse.py"""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kit_parse  # noqa: E402

DOCTEST_FAILING = """[doctest] doctest version is "2.4.9"
===============================================================================
tests/ops/test_softmax.cpp:88:
TEST SUITE: gpu
TEST CASE:  cuda parity: softmax, log_softmax

tests/ops/parity.h:31: ERROR: CHECK( max_rel_error(gpu_out.to(Device::cpu()), cpu_out) <= tol ) is NOT correct!
  values: CHECK( 0.25 <= 1e-05 )
  logged: output f32[33, 65]

===============================================================================
tests/ops/test_norm.cpp:12:
TEST CASE:  cuda parity: layer_norm

tests/ops/test_norm.cpp:40: FATAL ERROR: REQUIRE( gpu_out.device().is_cuda() ) is NOT correct!
  values: REQUIRE( false )

===============================================================================
[doctest] test cases: 34 | 32 passed | 2 failed | 0 skipped
[doctest] assertions: 900 | 898 passed | 2 failed |
[doctest] Status: FAILURE!
"""

DOCTEST_SKIPPED = "RETORT_GPU_SKIPPED: CUDA test (no usable GPU: x)\n" * 3 + \
    "[doctest] test cases: 3 | 3 passed | 0 failed | 0 skipped\n"

MEMCHECK = """========= COMPUTE-SANITIZER
========= Invalid __global__ read of size 4 bytes
=========     at void retort::cuda::(anonymous namespace)::softmax_kernel<float>(const T1 *, T1 *, long, long)+0x1a0 in /w/kernels/cuda/softmax.cu:42
=========     by thread (31,0,0) in block (0,0,0)
=========     Address 0x7f00 is out of bounds
=========
========= Invalid __global__ read of size 4 bytes
=========     at void retort::cuda::(anonymous namespace)::softmax_kernel<float>(const T1 *, T1 *, long, long)+0x1a0 in /w/kernels/cuda/softmax.cu:42
=========     by thread (0,0,0) in block (1,0,0)
=========
========= Uninitialized __global__ memory read of size 4 bytes
=========     at sm90_xmma_gemm_f32f32_tf32f32_f32_nn_n_tilesize128x128x32+0x30
=========
========= ERROR SUMMARY: 3 errors
"""

RACECHECK = """========= COMPUTE-SANITIZER
========= Error: Race reported between Write access at void retort::cuda::block_sum<float>(float)+0x70 in /w/kernels/cuda/block_reduce.cuh:20
=========     and Read access at void retort::cuda::block_sum<float>(float)+0x90 in /w/kernels/cuda/block_reduce.cuh:24 [64 hazards]
=========
========= RACECHECK SUMMARY: 1 hazard displayed (1 error, 0 warnings)
========= ERROR SUMMARY: 1 error
"""


class DoctestTest(unittest.TestCase):
    def test_counts_and_failures(self):
        r = kit_parse.doctest_results(DOCTEST_FAILING)
        self.assertTrue(r["finished"])
        self.assertEqual((r["total"], r["passed"], r["failed"], r["skipped"]), (34, 32, 2, 0))
        self.assertEqual([f["test"] for f in r["failures"]], ["cuda parity: softmax, log_softmax",
                                                              "cuda parity: layer_norm"])
        self.assertIn("values: CHECK( 0.25 <= 1e-05 )", r["failures"][0]["errors"])
        self.assertIn("FATAL ERROR", r["failures"][1]["errors"][0])

    def test_gpu_skips_are_not_passes(self):
        r = kit_parse.doctest_results(DOCTEST_SKIPPED)
        self.assertEqual((r["total"], r["passed"], r["skipped"], r["failed"]), (3, 0, 3, 0))

    def test_a_run_cut_short_has_no_counts(self):
        r = kit_parse.doctest_results(DOCTEST_FAILING.split("[doctest] test cases")[0])
        self.assertFalse(r["finished"])

    def test_commas_in_names_become_wildcards(self):
        self.assertEqual(kit_parse.doctest_filter_name("a (b, c) d, e"), "a (b? c) d? e")


class SanitizerTest(unittest.TestCase):
    def test_memcheck_groups_by_kernel_and_marks_ours(self):
        r = kit_parse.sanitizer_results(MEMCHECK)
        self.assertEqual(r["errors"], 3)
        first, second = r["findings"]
        self.assertTrue(first["ours"])
        self.assertIn("softmax_kernel<float>", first["kernel"])
        self.assertEqual(first["count"], 2)
        self.assertTrue(first["first"].startswith("Invalid __global__ read of size 4 bytes"))
        self.assertFalse(second["ours"])
        self.assertEqual(second["kernel"], "sm90_xmma_gemm_f32f32_tf32f32_f32_nn_n_tilesize128x128x32")

    def test_racecheck_names_the_kernel_on_the_finding_line(self):
        r = kit_parse.sanitizer_results(RACECHECK)
        self.assertEqual(r["errors"], 1)
        self.assertEqual(len(r["findings"]), 1)
        self.assertTrue(r["findings"][0]["ours"])
        self.assertIn("block_sum<float>", r["findings"][0]["kernel"])

    def test_no_summary_means_unfinished(self):
        self.assertFalse(kit_parse.sanitizer_results("========= COMPUTE-SANITIZER\n")["finished"])


class TablesTest(unittest.TestCase):
    def test_e2e_ratios_against_each_mode(self):
        ours = [{"config": "kd", "batch": 64, "images_per_s": 2000.0, "precision": "f32"},
                {"config": "kd", "batch": 64, "images_per_s": 3000.0, "precision": "bf16"},
                {"config": "vit", "batch": 256, "error": "rc 2", "precision": "f32"}]
        theirs = [{"config": "kd", "batch": 64, "mode": "eager_f32", "images_per_s": 4000.0},
                  {"config": "kd", "batch": 64, "mode": "compile", "error": "boom"},
                  {"config": "vit", "batch": 256, "mode": "eager_f32", "images_per_s": 100.0}]
        rows = kit_parse.e2e_table(ours, theirs).splitlines()
        self.assertEqual(len(rows), 5)
        kd = rows[2].split("|")
        self.assertEqual(kd[3].strip(), "f32")
        self.assertEqual(kd[4].strip(), "2,000.0")
        self.assertEqual(kd[5].strip(), "4,000.0")
        self.assertEqual(kd[8].strip(), "error")
        self.assertEqual(kd[9].strip(), "0.50")
        kd16 = rows[3].split("|")
        self.assertEqual(kd16[3].strip(), "bf16")
        self.assertEqual(kd16[9].strip(), "0.75")
        self.assertIn("| vit | 256 | f32 | error |", rows[4])

    def test_recipe_comparison_reports_the_largest_difference(self):
        device = {"results": [{"stage": "teacher", "model": "teacher", "test_top1": 85.0, "wall_s": 10.0},
                              {"stage": "kd", "model": "s", "test_top1": 80.0, "wall_s": 5.0}]}
        cpu = {"results": [{"stage": "teacher", "model": "teacher", "test_top1": 84.5, "wall_s": 100.0},
                           {"stage": "kd", "model": "s", "test_top1": 81.5, "wall_s": 50.0}]}
        table, worst = kit_parse.recipe_comparison(device, cpu)
        self.assertAlmostEqual(worst, 1.5)
        self.assertIn("| teacher | teacher | 85.00 | 84.50 | +0.50 |", table)
        table, worst = kit_parse.recipe_comparison(device, None)
        self.assertEqual(worst, 0.0)

    def test_json_lines_skip_noise_and_broken_lines(self):
        text = 'noise\n{"a": 1}\n{"b": \n  {"c": 2}\n'
        self.assertEqual(kit_parse.json_lines(text), [{"a": 1}, {"c": 2}])


if __name__ == "__main__":
    unittest.main()
