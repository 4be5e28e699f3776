#!/usr/bin/env python3
"""Writes tests/fixtures/losses/<name>.safetensors: each transfer loss computed by a published
implementation on fixed random inputs, in f64, with its gradients.

Each module of loss_refs/ (one per method) exposes `cases()`: {fixture name: make(gen)}, where
make returns a dict with
  inputs    {key: f64 tensor}; those with requires_grad=True get "grad.<key>" in the file
  loss      the reference's scalar loss, computed from the inputs
  reference what computed it ("torchdistill 1.1.5 torchdistill.losses.mid_level.ATLoss", ...)
  meta      optional {key: str} (the settings a retort test needs: p, T, ...)
  extra     optional {key: tensor} further outputs (e.g. an updated memory bank)
The file holds input.<key>, loss, grad.<key>, extra.<key> (all f64) and the metadata. Run with a
Python that has torch and torchdistill (bench/torch_reference/requirements.txt); RepDistiller's
code, for the methods torchdistill lacks, is read from --repdistiller (a checkout of
github.com/HobbitLong/RepDistiller), AFT's from --aft (github.com/amazon-science/adaptive-feature-transfer),
Wang & Isola's alignment and uniformity losses from --align-uniform (github.com/ssnl/align_uniform),
mdistiller's DKD, ReviewKD and OFD from --mdistiller (github.com/megvii-research/mdistiller), the
DIST authors' loss from --dist (github.com/hunto/image_classification_sota), DeiT's
DistillationLoss from --deit (github.com/facebookresearch/deit).
  python3 bench/torch_reference/make_loss_fixtures.py --repdistiller /path/to/RepDistiller \
      --aft /path/to/adaptive-feature-transfer --align-uniform /path/to/align_uniform \
      --mdistiller /path/to/mdistiller --dist /path/to/image_classification_sota --deit /path/to/deit \
      [names...]
"""
import argparse
import importlib
import os
import pkgutil
import sys
import zlib

import torch

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
from make_fixtures import save_file  # noqa: E402  (sorted keys: byte-identical regeneration)
import loss_refs  # noqa: E402

SEED = 20261205
MAX_TOTAL_BYTES = 1_000_000  # all loss fixtures together (the issue allows 5 MB for every fixture)


def all_cases():
    cases = {}
    for info in pkgutil.iter_modules(loss_refs.__path__):
        if info.name.startswith("_") or info.name == "common":
            continue
        module = importlib.import_module("loss_refs." + info.name)
        for name, make in module.cases().items():
            assert name not in cases, f"fixture {name} defined twice"
            cases[name] = make
    return cases


def write_case(out_dir, name, make):
    gen = torch.Generator().manual_seed(SEED + zlib.crc32(name.encode()))
    torch.manual_seed(SEED + zlib.crc32(name.encode()))
    case = make(gen)
    inputs, loss = case["inputs"], case["loss"]
    assert loss.dim() == 0 and loss.dtype == torch.float64, f"{name}: the loss must be an f64 scalar"
    wanted = [k for k, t in inputs.items() if t.requires_grad]
    grads = torch.autograd.grad(loss, [inputs[k] for k in wanted], allow_unused=False) if wanted else []
    tensors = {"loss": loss.detach().clone()}
    for k, t in inputs.items():
        tensors["input." + k] = t.detach().double().contiguous()
    for k, g in zip(wanted, grads):
        tensors["grad." + k] = g.detach().double().contiguous()
    for k, t in case.get("extra", {}).items():
        tensors["extra." + k] = t.detach().double().contiguous()
    meta = {"name": name, "reference": case["reference"], "torch": torch.__version__,
            "generator": "bench/torch_reference/make_loss_fixtures.py", "precision": "f64"}
    meta.update({k: str(v) for k, v in case.get("meta", {}).items()})
    path = os.path.join(out_dir, name + ".safetensors")
    save_file(tensors, path, meta)
    print(f"{path}: loss {loss.item():.10g}, {len(wanted)} gradients, {os.path.getsize(path)} bytes")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="fixtures to write (default: all)")
    ap.add_argument("--out", default=os.path.join(here, "..", "..", "tests", "fixtures", "losses"))
    ap.add_argument("--repdistiller", default=os.environ.get("REPDISTILLER_DIR", ""),
                    help="a checkout of RepDistiller (for the methods torchdistill lacks)")
    ap.add_argument("--aft", default=os.environ.get("AFT_DIR", ""),
                    help="a checkout of amazon-science/adaptive-feature-transfer (AFT's authors' code)")
    ap.add_argument("--align-uniform", default=os.environ.get("ALIGN_UNIFORM_DIR", ""),
                    help="a checkout of ssnl/align_uniform (Wang & Isola's loss functions)")
    ap.add_argument("--mdistiller", default=os.environ.get("MDISTILLER_DIR", ""),
                    help="a checkout of megvii-research/mdistiller (DKD, ReviewKD, OFD; read with "
                         "loss_refs.common.mdistiller_module)")
    ap.add_argument("--dist", default=os.environ.get("DIST_DIR", ""),
                    help="a checkout of hunto/image_classification_sota (the DIST authors' loss)")
    ap.add_argument("--deit", default=os.environ.get("DEIT_DIR", ""),
                    help="a checkout of facebookresearch/deit (DeiT's DistillationLoss)")
    args = ap.parse_args()
    for checkout in (args.repdistiller, args.aft, args.align_uniform, args.mdistiller, args.dist, args.deit):
        if checkout:
            sys.path.insert(0, os.path.abspath(checkout))
    torch.use_deterministic_algorithms(True)
    os.makedirs(args.out, exist_ok=True)
    cases = all_cases()
    unknown = [n for n in args.names if n not in cases]
    if unknown:
        sys.exit(f"unknown fixtures {unknown}; known: {sorted(cases)}")
    for name in args.names or sorted(cases):
        write_case(args.out, name, cases[name])
    total = sum(os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out))
    print(f"all loss fixtures: {total} bytes")
    assert total <= MAX_TOTAL_BYTES, f"loss fixtures take {total} bytes, over {MAX_TOTAL_BYTES}"


if __name__ == "__main__":
    main()
