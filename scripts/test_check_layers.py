#!/usr/bin/env python3
"""The layer check (scripts/check_layers.py) finds an include that points up and fmt in the
kernels, and passes a tree whose arrows point down. A ctest runs it."""
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_layers  # noqa: E402


def write(root, path, text):
    full = os.path.join(root, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w") as f:
        f.write(text)


class CheckLayersTest(unittest.TestCase):
    def test_down_is_fine_up_is_not(self):
        with tempfile.TemporaryDirectory() as root:
            write(root, "engine/tensor.h", '#include "core/dtype.h"\n#include "kernels/cpu/copy.h"\n')
            write(root, "train/runner.cpp", '#include "transfer/kd.h"\n#include <vector>\n')
            self.assertEqual(check_layers.violations(root), [])
            write(root, "transfer/loss_term.h", '#include "engine/ops.h"\n  #include "train/recipe.h"\n')
            write(root, "kernels/cuda/x.cu", '#include <fmt/format.h>\n')
            found = check_layers.violations(root)
            self.assertEqual(len(found), 2)
            self.assertTrue(found[0].startswith("kernels/cuda/x.cu:1: kernels/ includes <fmt/format.h>"))
            self.assertTrue(found[1].startswith("transfer/loss_term.h:2: transfer/ includes train/recipe.h"))

    def test_the_repository_itself_passes(self):
        root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
        self.assertEqual(check_layers.violations(root), [])


if __name__ == "__main__":
    unittest.main()
