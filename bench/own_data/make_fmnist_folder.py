#!/usr/bin/env python3
"""Writes Fashion-MNIST as an image folder, the way people keep their own data:

    OUT/train/<class_name>/<index>.png      (60000 images, or --train-per-class N of each class)
    OUT/test/<class_name>/<index>.png       (10000 images, or --test-per-class N of each class)

class_name is one of t-shirt_top, trouser, pullover, dress, coat, sandal, shirt, sneaker, bag,
ankle_boot; <index> is the image's position in the IDX file (00000-59999 / 00000-09999), so a file
name says where the picture came from. Each image is an 8-bit greyscale 28x28 PNG whose pixels are
exactly the IDX bytes (written here with zlib and hand-made chunks; correct CRCs).

Standard library only (gzip, struct, zlib), so it runs with the python3 of a fresh Debian:

    python3 bench/own_data/make_fmnist_folder.py --out /tmp/own_data/fmnist_folder
    python3 bench/own_data/make_fmnist_folder.py --out DIR --train-per-class 500 --test-per-class 100

--source is a folder with the four IDX files, gzipped or not (default: Debian's
dataset-fashion-mnist, /usr/share/datasets/fashion-mnist). --train-per-class / --test-per-class
take the first N images of each class in file order (deterministic). A non-empty OUT is refused
unless --force. Everything is written into OUT.tmp first, which is then renamed to OUT, so OUT
is either absent or complete.
"""
import argparse
import gzip
import os
import shutil
import struct
import sys
import time
import zlib

CLASS_NAMES = ["t-shirt_top", "trouser", "pullover", "dress", "coat",
               "sandal", "shirt", "sneaker", "bag", "ankle_boot"]
SPLITS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
DEFAULT_SOURCE = "/usr/share/datasets/fashion-mnist"


def read_idx(source, stem):
    """The bytes of an IDX file (stem or stem.gz under source)."""
    for name, opener in ((stem + ".gz", gzip.open), (stem, open)):
        path = os.path.join(source, name)
        if os.path.exists(path):
            with opener(path, "rb") as f:
                return f.read(), path
    sys.exit(f"make_fmnist_folder: neither {stem}.gz nor {stem} in {source}")


def load_split(source, split):
    """(images, labels, rows, cols): images one bytes object per image."""
    img_stem, lbl_stem = SPLITS[split]
    data, path = read_idx(source, img_stem)
    magic, count, rows, cols = struct.unpack(">IIII", data[:16])
    if magic != 0x00000803 or len(data) != 16 + count * rows * cols:
        sys.exit(f"make_fmnist_folder: {path} is not an IDX3 u8 image file")
    size = rows * cols
    images = [data[16 + i * size:16 + (i + 1) * size] for i in range(count)]
    data, path = read_idx(source, lbl_stem)
    magic, n = struct.unpack(">II", data[:8])
    if magic != 0x00000801 or n != count or len(data) != 8 + n:
        sys.exit(f"make_fmnist_folder: {path} is not an IDX1 u8 label file for {count} images")
    labels = list(data[8:])
    if max(labels) >= len(CLASS_NAMES):
        sys.exit(f"make_fmnist_folder: {path} has label {max(labels)} (expected 0-9)")
    return images, labels, rows, cols


def png_chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def grey_png(pixels, width, height):
    """An 8-bit greyscale PNG (colour type 0, no interlace) of row-major pixels."""
    rows = b"".join(b"\x00" + pixels[y * width:(y + 1) * width] for y in range(height))  # filter 0 (None)
    return (b"\x89PNG\r\n\x1a\n"
            + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + png_chunk(b"IDAT", zlib.compress(rows, 9))
            + png_chunk(b"IEND", b""))


def select(labels, per_class):
    """Indices to write: all, or the first per_class of each class in file order."""
    if per_class is None:
        return list(range(len(labels)))
    taken, out = [0] * len(CLASS_NAMES), []
    for i, c in enumerate(labels):
        if taken[c] < per_class:
            taken[c] += 1
            out.append(i)
    short = [CLASS_NAMES[c] for c in range(len(CLASS_NAMES)) if taken[c] < per_class]
    if short:
        print(f"  note: fewer than {per_class} images of {', '.join(short)}")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="the folder to write (must not exist or be empty)")
    ap.add_argument("--source", default=DEFAULT_SOURCE, help=f"IDX files (default {DEFAULT_SOURCE})")
    ap.add_argument("--train-per-class", type=int, default=None, metavar="N",
                    help="first N training images of each class (default: all)")
    ap.add_argument("--test-per-class", type=int, default=None, metavar="N",
                    help="first N test images of each class (default: all)")
    ap.add_argument("--force", action="store_true", help="replace a non-empty OUT")
    args = ap.parse_args()
    for flag in ("train_per_class", "test_per_class"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            ap.error(f"--{flag.replace('_', '-')} must be >= 1")

    out = os.path.abspath(args.out.rstrip("/"))
    if os.path.exists(out) and not os.path.isdir(out):
        sys.exit(f"make_fmnist_folder: {out} exists and is not a folder")
    if os.path.isdir(out) and os.listdir(out) and not args.force:
        sys.exit(f"make_fmnist_folder: {out} is not empty (pass --force to replace it)")
    tmp = out + ".tmp"
    if os.path.exists(tmp):
        shutil.rmtree(tmp)

    start = time.time()
    counts = {}
    for split, per_class in (("train", args.train_per_class), ("test", args.test_per_class)):
        images, labels, rows, cols = load_split(args.source, split)
        chosen = select(labels, per_class)
        digits = len(str(len(images) - 1))
        for name in CLASS_NAMES:
            os.makedirs(os.path.join(tmp, split, name))
        per = [0] * len(CLASS_NAMES)
        for i in chosen:
            c = labels[i]
            with open(os.path.join(tmp, split, CLASS_NAMES[c], f"{i:0{digits}d}.png"), "wb") as f:
                f.write(grey_png(images[i], cols, rows))
            per[c] += 1
        counts[split] = per
        print(f"{split}: {len(chosen)} images of {len(images)} ({rows}x{cols} grey) "
              + " ".join(f"{n}={k}" for n, k in zip(CLASS_NAMES, per)))

    if os.path.exists(out):
        shutil.rmtree(out)  # empty, or --force
    os.rename(tmp, out)
    total = sum(sum(v) for v in counts.values())
    print(f"wrote {total} PNGs to {out} in {time.time() - start:.1f} s")


if __name__ == "__main__":
    main()
