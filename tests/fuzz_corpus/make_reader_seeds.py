#!/usr/bin/env python3
"""Writes the hand-made seed corpora of the recipe, IDX, CIFAR, image and checkpoint fuzz
targets (tests/fuzz_corpus/<target>/): for each reader a few valid inputs (valid_*, which must be
accepted) and one input per defect class (bad_*, which must be rejected). Standard library only.
The safetensors seeds come from make_seeds.py; inputs the fuzzer found are kept as crash_*."""
import gzip, json, os, struct, zlib

HERE = os.path.dirname(os.path.abspath(__file__))

# ---------------------------------------------------------------- recipes
RECIPE = """[run]
name = "seed"
seed = 1

[data]
dataset = "fashion-mnist"

[models.teacher]
arch = "resnet8"

[models.student]
arch = "resnet8"

[[stages]]
name = "teacher"
train = "teacher"
epochs = 1
batch_size = 8
optimizer = { type = "sgd", lr = 0.1, momentum = 0.9 }

[[stages]]
name = "student"
train = "student"
teachers = ["teacher"]
epochs = 1
batch_size = 8
optimizer = { type = "adamw", lr = 0.001 }
schedule = { type = "cosine" }
losses = [ { name = "ce", weight = 0.5 }, { name = "kd", teacher = "teacher", weight = 0.5, T = 4.0 } ]
"""
recipes = {
    "valid_two_stages.toml": RECIPE,
    "valid_overrides.toml": RECIPE + "--set run.seed=7\n--set stages.student.epochs=2\n",
    "bad_unknown_key.toml": RECIPE.replace("seed = 1", "sede = 1"),
    "bad_not_toml.toml": RECIPE.replace('name = "seed"', 'name = "seed'),
    "bad_unknown_arch.toml": RECIPE.replace('arch = "resnet8"', 'arch = "resnet9"', 1),
    "bad_unknown_loss.toml": RECIPE.replace('name = "kd"', 'name = "kdd"'),
    "bad_negative_lr.toml": RECIPE.replace("lr = 0.1", "lr = -0.1"),
    "bad_nan_weight.toml": RECIPE.replace("weight = 0.5 }", "weight = nan }", 1),
    "bad_temperature.toml": RECIPE.replace("T = 4.0", "T = 0.0"),
    "bad_missing_teacher.toml": RECIPE.replace('teachers = ["teacher"]', 'teachers = ["oracle"]'),
    "bad_override_key.toml": RECIPE + "--set run.sede=7\n",
    "bad_override_value.toml": RECIPE + "--set stages.student.batch_size=zero\n",
    "bad_empty.toml": "",
}

# ---------------------------------------------------------------- IDX (Fashion-MNIST)
def idx(type_code, dims, payload):
    return struct.pack(">BBBB", 0, 0, type_code, len(dims)) + b"".join(struct.pack(">I", d) for d in dims) + payload

IMAGES = idx(8, [2, 3, 4], bytes(range(24)))
LABELS = idx(8, [3], bytes([0, 9, 4]))
idx_seeds = {
    "valid_images.idx": IMAGES,
    "valid_labels.idx": LABELS,
    "valid_images_gzip.idx": gzip.compress(IMAGES, mtime=0),
    "valid_labels_gzip.idx": gzip.compress(LABELS, mtime=0),
    "bad_short.idx": b"\x00\x00\x08",
    "bad_magic.idx": b"\x01" + IMAGES[1:],
    "bad_type.idx": idx(13, [2, 3, 4], bytes(range(24))),
    "bad_truncated.idx": IMAGES[:-5],
    "bad_trailing.idx": IMAGES + b"\x00",
    "bad_label_range.idx": idx(8, [3], bytes([0, 10, 4])),
    "bad_huge_dims.idx": idx(8, [0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF], b""),
    "bad_gzip_truncated.idx": gzip.compress(IMAGES, mtime=0)[:20],
    "bad_empty.idx": b"",
}

# ---------------------------------------------------------------- CIFAR (byte 0: 0 = CIFAR-10, 1 = CIFAR-100)
def cifar10(labels):
    return b"\x00" + b"".join(bytes([l]) + bytes((l * 7 + i) % 256 for i in range(3072)) for l in labels)

def cifar100(pairs):
    return b"\x01" + b"".join(bytes([c, f]) + bytes((f + i) % 256 for i in range(3072)) for c, f in pairs)

cifar_seeds = {
    "valid_cifar10.bin": cifar10([3, 9]),
    "valid_cifar100.bin": cifar100([(4, 99)]),
    "bad_cifar10_label.bin": cifar10([10]),
    "bad_cifar100_label.bin": cifar100([(4, 100)]),
    "bad_partial_record.bin": cifar10([1, 2])[:-100],
    "bad_empty.bin": b"\x00",
}

# ---------------------------------------------------------------- images (byte 0: even = gray, odd = RGB)
def png(width, height, color_type, rows, claim=None):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    w, h = claim or (width, height)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0)
    raw = b"".join(b"\x00" + row for row in rows)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")

def bmp24(width, height):
    row = b"".join(bytes([(x * 40) % 256, 128, 255 - x]) for x in range(width))
    row += b"\x00" * ((4 - len(row) % 4) % 4)
    pixels = row * height
    header = struct.pack("<2sIHHI", b"BM", 54 + len(pixels), 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    return header + info + pixels

GRAY_PNG = png(5, 4, 0, [bytes((x * 50 + y) % 256 for x in range(5)) for y in range(4)])
RGB_PNG = png(10, 12, 2, [bytes((x * 3 + c + y) % 256 for x in range(10) for c in range(3)) for y in range(12)])
image_seeds = {
    "valid_gray_png_to_gray.img": b"\x00" + GRAY_PNG,
    "valid_gray_png_to_rgb.img": b"\x01" + GRAY_PNG,
    "valid_rgb_png_exact_size.img": b"\x01" + RGB_PNG,
    "valid_bmp.img": b"\x01" + bmp24(7, 3),
    "bad_truncated_png.img": b"\x01" + RGB_PNG[:60],
    "bad_huge_png.img": b"\x01" + png(1, 1, 0, [b"\x00"], claim=(20000, 20000)),
    "bad_not_an_image.img": b"\x00" + b"P5\n2 2\n255\n\x00\x01\x02\x03",
    "bad_empty.img": b"\x00",
}

# ---------------------------------------------------------------- checkpoints (live model: w [2,3], b [3]; SGD with momentum)
def safetensors(tensors, metadata):
    header, data, sums = {}, b"", []
    for name, shape, values in tensors:
        raw = struct.pack(f"<{len(values)}f", *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        sums.append(f"{zlib.crc32(raw):08x}")
        data += raw
    if metadata is not None:
        header = {"__metadata__": dict(metadata, **{"retort.crc32": ",".join(sums)}), **header}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data

PROGRESS = {"retort.format": "retort-checkpoint-1", "step": "12", "epoch": "1", "batch_in_epoch": "4",
            "rng.seed": "3", "rng.offset": "96", "stage": "student"}
OPTIMIZER = {"optimizer": "SGD", "optim.group0.lr": "0.1", "optim.group0.weight_decay": "0"}
MODEL = [("model.w", [2, 3], [1, 2, 3, 4, 5, 6]), ("model.b", [3], [0.5, -0.5, 0])]
MOMENTUM = [("optim.group0.param0.momentum_buffer", [2, 3], [0.1] * 6),
            ("optim.group0.param1.momentum_buffer", [3], [0.2] * 3)]

def flip_last_byte(blob):
    return blob[:-1] + bytes([blob[-1] ^ 0x10])

checkpoint_seeds = {
    "valid_with_momentum.safetensors": safetensors(MODEL + MOMENTUM, dict(PROGRESS, **OPTIMIZER)),
    "valid_fresh_optimizer.safetensors": safetensors(MODEL, dict(PROGRESS, **OPTIMIZER)),
    "bad_no_optimizer.safetensors": safetensors(MODEL, PROGRESS),
    "bad_not_a_checkpoint.safetensors": safetensors(MODEL, {"format": "pt"}),
    "bad_step.safetensors": safetensors(MODEL, dict(PROGRESS, step="-x", **OPTIMIZER)),
    "bad_missing_tensor.safetensors": safetensors(MODEL[:1], dict(PROGRESS, **OPTIMIZER)),
    "bad_shape.safetensors": safetensors([("model.w", [3, 2], [1] * 6), MODEL[1]], dict(PROGRESS, **OPTIMIZER)),
    "bad_momentum_shape.safetensors": safetensors(MODEL + [("optim.group0.param0.momentum_buffer", [6], [0.1] * 6)],
                                                  dict(PROGRESS, **OPTIMIZER)),
    "bad_flipped_bit.safetensors": flip_last_byte(safetensors(MODEL, dict(PROGRESS, **OPTIMIZER))),
    "bad_nan_lr.safetensors": safetensors(MODEL, dict(PROGRESS, **dict(OPTIMIZER, **{"optim.group0.lr": "nan"}))),
}

CORPORA = {"recipe": recipes, "idx": idx_seeds, "cifar": cifar_seeds, "image": image_seeds,
           "checkpoint": checkpoint_seeds}

if __name__ == "__main__":
    for target, seeds in CORPORA.items():
        folder = os.path.join(HERE, target)
        os.makedirs(folder, exist_ok=True)
        for name, blob in seeds.items():
            with open(os.path.join(folder, name), "wb") as f:
                f.write(blob.encode() if isinstance(blob, str) else blob)
        print(f"wrote {len(seeds)} seeds to {folder}")
