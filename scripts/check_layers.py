#!/usr/bin/env python3
"""Checks that retort's arrows point down: no file of a layer includes a file of a higher one.

    app (apps/) -> train -> transfer -> models -> engine -> kernels -> core

Each layer is also its own CMake library linked only to the one below (CMakeLists.txt). Also
checks that core/ and kernels/ include no fmt (the CUDA sources compile without it). Prints
every violation as file:line and exits 1 when there is one; a ctest runs it.
    python3 scripts/check_layers.py [repository root]"""
import os
import re
import sys

LAYERS = ["core", "kernels", "engine", "models", "transfer", "train", "apps"]
FMT_FREE = {"core", "kernels"}
SUFFIXES = (".h", ".cpp", ".cu", ".cuh")
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')


def violations(root):
    found = []
    for rank, layer in enumerate(LAYERS):
        for dirpath, _, names in os.walk(os.path.join(root, layer)):
            for name in sorted(names):
                if not name.endswith(SUFFIXES):
                    continue
                path = os.path.join(dirpath, name)
                with open(path, encoding="utf-8", errors="replace") as f:
                    for number, line in enumerate(f, 1):
                        m = INCLUDE.match(line)
                        if not m:
                            continue
                        target = m.group(2)
                        top = target.split("/")[0]
                        where = f"{os.path.relpath(path, root)}:{number}"
                        if m.group(1) == '"' and top in LAYERS and LAYERS.index(top) > rank:
                            found.append(f"{where}: {layer}/ includes {target}, a file of the higher layer {top}/")
                        if layer in FMT_FREE and target.startswith("fmt/"):
                            found.append(f"{where}: {layer}/ includes <{target}>; core/ and kernels/ stay fmt-free "
                                         f"(use RETORT_REQUIRE from core/check.h)")
    return found


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    found = violations(os.path.abspath(root))
    for v in found:
        print(v)
    print(f"check_layers: {len(found)} violation(s) of app -> train -> transfer -> models -> engine -> kernels -> core")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
