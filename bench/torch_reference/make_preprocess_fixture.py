"""Writes tests/fixtures/preprocess/pil_resize.safetensors, the reference that
tests/data/test_preprocess.cpp checks retort's preprocess_image against: small deterministic
test images pushed through torchvision's own Resize + CenterCrop on PIL images (the pipeline
pretrained teachers were trained with), for nearest, bilinear and bicubic, shrinking and
enlarging, shorter-side resizes with centre crops and plain resizes to a size.

The file holds
  image.<name>           u8 [C, H, W]    a test image (C = 1: PIL mode "L", C = 3: "RGB")
  out.<case>             u8 [C, h, w]    the preprocessed image
and metadata: for each out.<case> a line "image=<name> interpolation=<mode> resize_shorter=<s>
height=<h> width=<w>" (resize_shorter 0: Resize((h, w)), no crop), plus the library versions.

Each output is also recomputed by hand with PIL's Image.resize and torchvision's crop rule
(top = int(round((H - h) / 2.0))) and the script stops if the two differ, so the fixture
pins down exactly what the C++ side implements.

Pass order: Pillow up to 12 always resamples rows (the horizontal pass) first; Pillow 13 runs
the vertical pass first when the height shrinks by more than twice as many pixels as the width
((H - h) > 0 and (H - h) > 2 (W - w)), which changes results by a few grey levels. retort
follows the classic order (the one today's pretrained teachers were trained with), so every
resize here is chosen outside Pillow 13's vertical-first condition and the script checks it:
the fixture then reads the same under either Pillow.

Run: ~/.venvs/retort-torch/bin/python bench/torch_reference/make_preprocess_fixture.py [--out FILE]
"""
import argparse
import json
import os
import struct

import numpy as np
import PIL
import torchvision
from PIL import Image
from safetensors import safe_open
from safetensors.numpy import load_file
from torchvision import transforms
from torchvision.transforms import InterpolationMode

MODES = {
    "nearest": (InterpolationMode.NEAREST, Image.Resampling.NEAREST),
    "bilinear": (InterpolationMode.BILINEAR, Image.Resampling.BILINEAR),
    "bicubic": (InterpolationMode.BICUBIC, Image.Resampling.BICUBIC),
}


def rgb_image(h, w):
    """Gradients, a 3-pixel checkerboard, a hard-edged disc (0 / 255: bicubic overshoot is
    clipped) and a little seeded noise."""
    y, x = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(20250101)
    r = x * 255 // (w - 1)
    g = np.where((x // 3 + y // 3) % 2 == 0, 230, 25) + rng.integers(-20, 21, size=(h, w))
    disc = (x - 0.6 * w) ** 2 + (y - 0.4 * h) ** 2 < (0.3 * min(h, w)) ** 2
    b = np.where(disc, 255, 0) + (y * 3) % 17
    return np.clip(np.stack([r, g, b]), 0, 255).astype(np.uint8)


def grey_image(h, w):
    """Diagonal stripes, a vertical step edge from 0 to 255, and a ring."""
    y, x = np.mgrid[0:h, 0:w]
    stripes = ((x + 2 * y) // 4) % 2 * 120
    step = np.where(x >= w // 2, 135, 0)
    ring = np.abs(np.hypot(x - w / 2, y - h / 3) - 0.3 * w) < 1.5
    return np.clip(np.where(ring, 255, stripes + step), 0, 255).astype(np.uint8)[None]


def to_pil(chw):
    return Image.fromarray(chw[0], "L") if chw.shape[0] == 1 else Image.fromarray(chw.transpose(1, 2, 0), "RGB")


def from_pil(img):
    a = np.asarray(img)
    return a[None].copy() if a.ndim == 2 else a.transpose(2, 0, 1).copy()


def pillow13_vertical_first(in_h, in_w, h, w):
    return in_h - h > 0 and in_h - h > 2 * (in_w - w)


def resized_size(in_h, in_w, shorter, h, w):
    """The size the image is resized to before the crop (torchvision's Resize(int) rule)."""
    if shorter == 0:
        return h, w
    short, long = min(in_h, in_w), max(in_h, in_w)
    new_long = int(shorter * long / short)
    return (new_long, shorter) if in_w <= in_h else (shorter, new_long)


def torchvision_pipeline(img, mode, shorter, h, w):
    if shorter > 0:
        t = transforms.Compose([transforms.Resize(shorter, interpolation=MODES[mode][0]), transforms.CenterCrop((h, w))])
    else:
        t = transforms.Resize((h, w), interpolation=MODES[mode][0])
    return from_pil(t(img))


def by_hand(img, mode, shorter, h, w):
    """PIL's resize and torchvision's size and crop arithmetic, spelled out."""
    if shorter == 0:
        return from_pil(img.resize((w, h), MODES[mode][1]))
    iw, ih = img.size
    short, long = (iw, ih) if iw <= ih else (ih, iw)
    new_short, new_long = shorter, int(shorter * long / short)
    nw, nh = (new_short, new_long) if iw <= ih else (new_long, new_short)
    resized = img.resize((nw, nh), MODES[mode][1])
    top, left = int(round((nh - h) / 2.0)), int(round((nw - w) / 2.0))
    return from_pil(resized.crop((left, top, left + w, top + h)))


# (image name, resize_shorter, height, width): shrink and enlarge, portrait (37x29) and
# landscape (20x50), square and non-square crops, crop offsets that round a .5 either way,
# plain resizes (resize_shorter 0).
CASES = [
    ("rgb_37x29", 16, 14, 14),   # portrait shrink: 37x29 -> 20x16, crop at (3, 1)
    ("rgb_37x29", 22, 20, 18),   # mild shrink to 28x22, non-square crop at (4, 2)
    ("rgb_37x29", 40, 36, 35),   # enlarge to 51x40, crop at (round(7.5), round(2.5)) = (8, 2)
    ("rgb_37x29", 0, 23, 17),    # plain shrink of both axes
    ("rgb_37x29", 0, 45, 20),    # plain: enlarge rows, shrink columns
    ("grey_20x50", 12, 10, 12),  # landscape shrink: 20x50 -> 12x30, crop at (1, 9)
    ("grey_20x50", 32, 32, 30),  # landscape enlarge to 32x80, crop at (0, 25)
    ("grey_20x50", 0, 9, 21),    # plain shrink
    ("grey_20x50", 0, 27, 61),   # plain enlarge
]


def write_safetensors(path, tensors, metadata):
    """u8 tensors and string metadata as safetensors, byte for byte the same on every run
    (safetensors' own writer orders the metadata differently each time)."""
    header, offset = {"__metadata__": dict(sorted(metadata.items()))}, 0
    for name in sorted(tensors):
        a = tensors[name]
        header[name] = {"dtype": "U8", "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for name in sorted(tensors):
            f.write(np.ascontiguousarray(tensors[name]).tobytes())
    with safe_open(path, "np") as f:  # the reference reader agrees
        assert f.metadata() == metadata
    assert all(np.array_equal(v, tensors[k]) for k, v in load_file(path).items())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "..", "tests", "fixtures", "preprocess",
                                                  "pil_resize.safetensors"))
    args = ap.parse_args()
    args.out = os.path.normpath(args.out)

    images = {"rgb_37x29": rgb_image(37, 29), "grey_20x50": grey_image(20, 50)}
    tensors = {f"image.{name}": chw for name, chw in images.items()}
    metadata = {"pillow": PIL.__version__, "torchvision": torchvision.__version__}
    for k, (name, shorter, h, w) in enumerate(CASES):
        in_h, in_w = images[name].shape[1:]
        assert not pillow13_vertical_first(in_h, in_w, *resized_size(in_h, in_w, shorter, h, w)), f"case {k}"
        for mode in MODES:
            img = to_pil(images[name])
            want = torchvision_pipeline(img, mode, shorter, h, w)
            mine = by_hand(img, mode, shorter, h, w)
            assert want.shape == (images[name].shape[0], h, w), (name, mode, want.shape)
            assert np.array_equal(want, mine), f"case {k} {mode}: torchvision and the spelled-out rule differ"
            key = f"out.{k}.{mode}"
            tensors[key] = want
            metadata[key] = f"image={name} interpolation={mode} resize_shorter={shorter} height={h} width={w}"
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    write_safetensors(args.out, tensors, metadata)
    print(f"{args.out}: {len(tensors)} tensors, {os.path.getsize(args.out)} bytes")


if __name__ == "__main__":
    main()
