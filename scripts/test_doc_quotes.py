#!/usr/bin/env python3
"""The quote check (scripts/doc_quotes.py) passes a block that matches its file's lines, finds
one whose lines moved (and --fix renumbers it), one whose text changed, one whose file is gone,
and then passes the repository's own docs. A ctest runs it."""
import contextlib
import io
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import doc_quotes  # noqa: E402

SOURCE = """#include "kd.h"

float kd(float t) {
  float p = softmax(t);
  return t * t * p;
}
"""


def write(root, path, text):
    full = os.path.join(root, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w") as f:
        f.write(text)


def read(root, path):
    with open(os.path.join(root, path)) as f:
        return f.read()


def doc(*blocks):
    parts = ["# A method\n", "Some prose.\n"]
    for info, body in blocks:
        parts.append(f"```{info}\n{body}```\n")
        parts.append("Text between.\n")
    return "\n".join(parts)


def run(fn, root):
    out = io.StringIO()
    result = fn(doc_quotes.default_docs(root), root, out)
    return result, out.getvalue()


BODY = "  float p = softmax(t);\n  return t * t * p;\n"


class DocQuotesTest(unittest.TestCase):
    def test_a_matching_block_passes(self):
        with tempfile.TemporaryDirectory() as root:
            write(root, "transfer/kd.cpp", SOURCE)
            write(root, "docs/methods/kd.md", doc(("cpp transfer/kd.cpp:4-5", BODY),
                                                  ("cpp transfer/kd.cpp:3", "float kd(float t) {\n"),
                                                  ("cpp", "not a quote\n"),
                                                  ("toml", "x = 1\n")))
            (count, messages), _ = run(doc_quotes.check, root)
            self.assertEqual(count, 2)
            self.assertEqual(messages, [])

    def test_a_moved_block_is_found_and_fixed(self):
        with tempfile.TemporaryDirectory() as root:
            write(root, "transfer/kd.cpp", SOURCE)
            write(root, "docs/methods/kd.md", doc(("cpp transfer/kd.cpp:4-5", BODY)))
            write(root, "transfer/kd.cpp", "// a new first line\n// and a second\n" + SOURCE)
            (count, messages), _ = run(doc_quotes.check, root)
            self.assertEqual(count, 1)
            self.assertEqual(messages, ["docs/methods/kd.md:5: transfer/kd.cpp:4-5 does not match "
                                        "(the quoted text is now at lines 6-7)"])
            (fixed, left), out = run(doc_quotes.fix, root)
            self.assertEqual((fixed, left), (1, []))
            self.assertIn("transfer/kd.cpp:4-5 -> transfer/kd.cpp:6-7", out)
            self.assertIn("```cpp transfer/kd.cpp:6-7\n" + BODY + "```\n", read(root, "docs/methods/kd.md"))
            (count, messages), _ = run(doc_quotes.check, root)
            self.assertEqual(messages, [])

    def test_a_changed_block_needs_a_person(self):
        with tempfile.TemporaryDirectory() as root:
            write(root, "transfer/kd.cpp", SOURCE.replace("t * t * p", "t * t * p * 0.5f"))
            text = doc(("cpp transfer/kd.cpp:4-5", BODY))
            write(root, "docs/methods/kd.md", text)
            (count, messages), _ = run(doc_quotes.check, root)
            self.assertEqual(len(messages), 1)
            self.assertTrue(messages[0].startswith("docs/methods/kd.md:5: transfer/kd.cpp:4-5 does not match"))
            self.assertIn("no longer in the file", messages[0])
            (fixed, left), _ = run(doc_quotes.fix, root)
            self.assertEqual((fixed, len(left)), (0, 1))
            self.assertEqual(read(root, "docs/methods/kd.md"), text)   # untouched

    def test_a_one_character_change_and_a_wrong_range_fail(self):
        with tempfile.TemporaryDirectory() as root:
            write(root, "transfer/kd.cpp", SOURCE)
            write(root, "docs/methods/kd.md", doc(("cpp transfer/kd.cpp:4-5", BODY.replace("p;", "p; ")),
                                                  ("cpp transfer/kd.cpp:4-6", BODY),
                                                  ("cpp transfer/kd.cpp:6-9", "}\n")))
            (count, messages), _ = run(doc_quotes.check, root)
            self.assertEqual(count, 3)
            self.assertEqual(len(messages), 3)
            self.assertIn("the range has 3 lines, the block 2", messages[1])
            self.assertIn("now at lines 4-5", messages[1])

    def test_a_repeated_text_is_not_renumbered(self):
        with tempfile.TemporaryDirectory() as root:
            write(root, "transfer/kd.cpp", "x;\ny;\nx;\n")
            write(root, "docs/a.md", doc(("cpp transfer/kd.cpp:2", "x;\n")))
            (fixed, left), _ = run(doc_quotes.fix, root)
            self.assertEqual(fixed, 0)
            self.assertIn("appears 2 times, at lines 1, 3", left[0])

    def test_a_missing_file(self):
        with tempfile.TemporaryDirectory() as root:
            write(root, "docs/methods/gone.md", doc(("cpp transfer/gone.cpp:1-2", "a\nb\n")))
            (count, messages), _ = run(doc_quotes.check, root)
            self.assertEqual(messages, ["docs/methods/gone.md:5: transfer/gone.cpp:1-2: "
                                        "the file does not exist"])
            with contextlib.redirect_stdout(io.StringIO()) as out:
                self.assertEqual(doc_quotes.main(["--root", root]), 1)
            self.assertIn("1 of 1 quoted blocks do not match", out.getvalue())

    def test_an_indented_fence_and_a_longer_fence(self):
        with tempfile.TemporaryDirectory() as root:
            write(root, "transfer/kd.cpp", SOURCE)
            write(root, "docs/a.md", "- item\n\n  ```cpp transfer/kd.cpp:4-5\n    float p = softmax(t);\n"
                                     "    return t * t * p;\n  ```\n\n````cpp transfer/kd.cpp:3\n"
                                     "float kd(float t) {\n````\n")
            (count, messages), _ = run(doc_quotes.check, root)
            self.assertEqual((count, messages), (2, []))

    def test_the_repository_docs_pass(self):
        root = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
        out = io.StringIO()
        count, messages = doc_quotes.check(doc_quotes.default_docs(root), root, out)
        self.assertGreater(count, 0)
        self.assertEqual(messages, [], "run python3 scripts/doc_quotes.py --fix, then re-quote what it "
                                       "cannot fix:\n" + out.getvalue())


if __name__ == "__main__":
    unittest.main()
