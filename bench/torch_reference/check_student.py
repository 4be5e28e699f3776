"""Loads a model retort trained into PyTorch and checks it computes the same thing there.

  python check_student.py --weights runs/<run>/models/student.safetensors [--arch resnet8]
                          [--count 10000] [--retort-logits logits.safetensors]
                          [--depth N --patch-size P]   (ViT model options, as in the recipe)

* builds the PyTorch model for the retort architecture (torch_models.build: RepDistiller
  CIFAR ResNets written plainly, torchvision ResNets, timm ViTs) for Fashion-MNIST
  (1x28x28, 10 classes),
* `load_state_dict(safetensors.torch.load_file(weights), strict=True)`: every name must match,
* runs the Fashion-MNIST test images (gz IDX read with numpy, normalised like retort:
  x / 255, then (x - 0.2860) / 0.3530) in eval mode and prints the first logits, top-1
  accuracy and mean cross-entropy,
* with --retort-logits (written by build-cpu/retort_logits for the same weights and count),
  prints the largest logit difference and how many predictions agree.
The arch defaults to the "arch" metadata retort writes into models/<name>.safetensors.
"""
import argparse
import gzip
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_models  # noqa: E402

FMNIST_MEAN, FMNIST_STD = 0.2860, 0.3530


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fmnist_test(root, count):
    images = read_idx(os.path.join(root, "t10k-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(root, "t10k-labels-idx1-ubyte.gz"))
    if count:
        images, labels = images[:count], labels[:count]
    x = torch.from_numpy(images.astype(np.float32) * np.float32(1.0 / 255.0)).unsqueeze(1)
    x = (x - FMNIST_MEAN) / FMNIST_STD
    return x, torch.from_numpy(labels.astype(np.int64))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", required=True, help="retort model file (run dir models/<name>.safetensors)")
    ap.add_argument("--arch", help="retort architecture name (default: the file's 'arch' metadata)")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist", help="Fashion-MNIST directory (gz IDX)")
    ap.add_argument("--count", type=int, default=10000, help="test images to run (0: all)")
    ap.add_argument("--show", type=int, default=3, help="logit rows to print")
    ap.add_argument("--depth", type=int, default=0, help="ViT blocks (the recipe's model option; 0: 12)")
    ap.add_argument("--patch-size", type=int, default=0, help="ViT patch size (the recipe's model option; 0: 4)")
    ap.add_argument("--retort-logits", help="safetensors from retort_logits for the same weights and count")
    args = ap.parse_args()

    with safe_open(args.weights, framework="pt") as f:
        metadata = f.metadata() or {}
    arch = args.arch or metadata.get("arch")
    if not arch:
        raise SystemExit("check_student: no --arch and no 'arch' metadata in the weights file")
    model = torch_models.build(arch, num_classes=10, in_channels=1, image_size=28, patch_size=args.patch_size,
                               depth=args.depth)
    state = load_file(args.weights)
    result = model.load_state_dict(state, strict=True)
    print(f"PyTorch {torch.__version__}: {arch} load_state_dict(strict=True): {result}, {len(state)} tensors")
    model.eval()

    x, y = load_fmnist_test(args.data, args.count)
    with torch.no_grad():
        logits = torch.cat([model(xb) for xb in x.split(500)])
    loss = F.cross_entropy(logits, y).item()
    top1 = (logits.argmax(1) == y).float().mean().item() * 100
    torch.set_printoptions(precision=5, sci_mode=False, linewidth=160)
    print(f"PyTorch logits, first {args.show} test images:\n{logits[:args.show]}")
    print(f"PyTorch on {len(y)} Fashion-MNIST test images: top1 {top1:.2f}%  loss {loss:.4f}")
    summary = {"arch": arch, "images": len(y), "torch_top1": top1, "torch_loss": loss}

    if args.retort_logits:
        ref = load_file(args.retort_logits)
        rl, rlab = ref["logits"], ref["labels"]
        if rl.shape != logits.shape:
            raise SystemExit(f"check_student: retort logits {tuple(rl.shape)} vs PyTorch {tuple(logits.shape)}: "
                             "run retort_logits with the same --count")
        assert torch.equal(rlab, y), "retort's labels differ from the IDX file's"
        diff = (rl - logits).abs().max().item()
        rel = ((rl - logits).norm() / logits.norm()).item()
        agree = (rl.argmax(1) == logits.argmax(1)).sum().item()
        rtop1 = (rl.argmax(1) == y).float().mean().item() * 100
        rloss = F.cross_entropy(rl, y).item()
        print(f"retort logits, first {args.show} test images:\n{rl[:args.show]}")
        print(f"retort  on {len(y)} Fashion-MNIST test images: top1 {rtop1:.2f}%  loss {rloss:.4f}")
        print(f"max |retort - PyTorch| logit {diff:.2e}, norm-wise rel {rel:.2e}, "
              f"same prediction on {agree}/{len(y)} images")
        summary.update({"retort_top1": rtop1, "retort_loss": rloss, "max_abs_logit_diff": diff,
                        "norm_rel_logit_diff": rel, "same_predictions": agree})
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
