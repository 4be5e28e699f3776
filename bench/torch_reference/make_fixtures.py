"""Writes the PyTorch parity fixtures that tests/parity/test_torch_parity.cpp checks retort
against: tests/fixtures/torch/<name>.safetensors.

Each model fixture holds
  <state-dict name>        the weights and buffers before the step (f32; num_batches_tracked i64)
  input, target            an input batch (random normal, f32) and class labels (i64)
  logits, loss             the train-mode forward and the mean cross-entropy
  grad.<parameter name>    d loss / d parameter, for EVERY parameter
  after.<buffer name>      BatchNorm running_mean / running_var / num_batches_tracked after the step
and metadata describing the architecture (the C++ test builds retort's model from it).
The KD fixture holds student, teacher, loss, grad.student for Hinton KD at T = 4.

Precision: the weights and the input are f32 values, but PyTorch computes the reference in
f64 from exactly those values and only the results are rounded to f32. The reference is then
the exact answer to ~6e-8, and the 1e-4 bound in the C++ test measures retort's own f32 error
alone, not the sum of two f32 implementations' errors (PyTorch's own f32 error against the
same f64 reference is recorded in each file's metadata as torch_f32_rel_err).

Weights: the models' own seeded init, then BatchNorm / LayerNorm affine parameters, biases,
class token and running statistics are set to random non-trivial values, so every gradient
(and the running-stat update) is exercised with something other than 1s and 0s.

Run through make_fixtures.sh (or `python make_fixtures.py [--out DIR]`).
"""
import argparse
import json
import os
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file

import torch_models

SEED = 20251123


SAFETENSORS_DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64"}


def save_file(tensors, path, metadata):
    """safetensors writer with sorted keys, so regenerating gives byte-identical files
    (safetensors.torch.save_file orders the metadata by hash). Read back to check it."""
    header, blobs, offset = {"__metadata__": dict(sorted(metadata.items()))}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        blob = t.numpy().tobytes()
        header[name] = {"dtype": SAFETENSORS_DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the spec allows space padding to align the data
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    back = load_file(path)
    assert back.keys() == tensors.keys() and all(torch.equal(back[k], tensors[k]) for k in tensors), path


def perturb_(model, gen):
    """Non-trivial values for the tensors a fresh init leaves at 0 or 1 (see module doc)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_((torch.rand(m.bias.shape, generator=gen) - 0.5) * 0.4)
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
            if isinstance(m, (nn.Linear, nn.Conv2d)) and m.bias is not None:
                m.bias.copy_((torch.rand(m.bias.shape, generator=gen) - 0.5) * 0.1)
        for name, p in model.named_parameters():
            if name in ("cls_token", "pos_embed"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)


def train_step(model, x, target):
    """One train-mode forward + CE + backward; returns logits, loss, grads, buffers after."""
    model.train()
    model.zero_grad(set_to_none=True)
    logits = model(x)
    loss = F.cross_entropy(logits, target)
    loss.backward()
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters()}
    missing = [name for name, p in model.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    return logits.detach(), loss.detach(), grads, buffers


def rel_err(a, b):
    return (a.double() - b.double()).norm().item() / max(b.double().norm().item(), 1e-300)


def write_model_fixture(out_dir, name, make_model, input_shape, num_classes, meta):
    # Seeded per fixture, so each file depends only on its own name (not on the others).
    torch.manual_seed(SEED + sum(map(ord, name)))
    model = make_model()
    gen = torch.Generator().manual_seed(SEED + sum(map(ord, name)))
    perturb_(model, gen)
    model = model.float()
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    x = torch.randn(input_shape, generator=gen, dtype=torch.float32)
    target = torch.randint(0, num_classes, (input_shape[0],), generator=gen, dtype=torch.int64)

    # f32 PyTorch run (only for the metadata: PyTorch's own f32 error).
    model32 = model
    logits32, loss32, grads32, _ = train_step(model32, x, target)
    # f64 reference from the same f32 values.
    model.load_state_dict(state)
    model64 = model.double()
    logits, loss, grads, after = train_step(model64, x.double(), target)

    tensors = dict(state)
    tensors["input"] = x
    tensors["target"] = target
    tensors["logits"] = logits.float()
    tensors["loss"] = loss.float().reshape(())
    for k, g in grads.items():
        tensors["grad." + k] = g.float().contiguous()
    for k, b in after.items():
        tensors["after." + k] = (b.float() if b.is_floating_point() else b).contiguous()

    worst = max([rel_err(logits32, logits)] + [rel_err(grads32[k], grads[k]) for k in grads])
    meta = {k: str(v) for k, v in meta.items()}
    meta.update({
        "name": name,
        "generator": "bench/torch_reference/make_fixtures.py",
        "torch": torch.__version__,
        "reference_precision": "f64 computation from f32 weights and input, stored as f32",
        "torch_f32_rel_err": f"{worst:.3e}",
        "loss": "cross_entropy mean, train mode (batch statistics)",
    })
    path = os.path.join(out_dir, name + ".safetensors")
    save_file(tensors, path, metadata=meta)
    nparams = sum(p.numel() for p in model.parameters())
    print(f"{path}: {nparams} parameters, loss {loss.item():.6f}, {os.path.getsize(path) / 1024:.0f} KiB, "
          f"PyTorch f32 vs f64 worst norm-wise rel err {worst:.2e}")


def write_kd_fixture(out_dir, T=4.0):
    gen = torch.Generator().manual_seed(SEED + 7)
    student = (torch.randn(8, 10, generator=gen) * 3).float()
    teacher = (torch.randn(8, 10, generator=gen) * 3).float()
    s = student.double().requires_grad_()
    t = teacher.double()
    # RepDistiller DistillKL: KL(softmax(t/T) || softmax(s/T)) summed, * T^2 / batch.
    p_s = F.log_softmax(s / T, dim=1)
    p_t = F.softmax(t / T, dim=1)
    loss = F.kl_div(p_s, p_t, reduction="sum") * (T ** 2) / s.shape[0]
    same = F.kl_div(p_s, F.log_softmax(t / T, dim=1), reduction="batchmean", log_target=True) * T * T
    assert abs(loss.item() - same.item()) < 1e-12
    loss.backward()
    tensors = {"student": student, "teacher": teacher, "loss": loss.detach().float().reshape(()),
               "grad.student": s.grad.float().contiguous()}
    meta = {"name": "kd_hinton", "temperature": str(T), "generator": "bench/torch_reference/make_fixtures.py",
            "torch": torch.__version__, "definition": "T^2 * batchmean KL(softmax(t/T) || softmax(s/T))",
            "reference_precision": "f64 computation from f32 logits, stored as f32"}
    path = os.path.join(out_dir, "kd_hinton.safetensors")
    save_file(tensors, path, metadata=meta)
    print(f"{path}: loss {loss.item():.6f}")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(here, "..", "..", "tests", "fixtures", "torch"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)

    # RepDistiller CIFAR ResNet: resnet8 (widths 16-16-32-64) on 32x32, AvgPool2d(8).
    write_model_fixture(args.out, "cifar_resnet8", lambda: torch_models.cifar_resnet(8), (6, 3, 32, 32), 10,
                        {"family": "cifar_resnet", "arch": "resnet8", "depth": 8, "widths": "16,16,32,64", "in_channels": 3,
                         "num_classes": 10, "image_size": 32})
    # RepDistiller Wide ResNet wrn_10_1: pre-activation blocks, identity and projection shortcuts.
    write_model_fixture(args.out, "cifar_wrn_10_1", lambda: torch_models.wide_resnet(10, 1), (6, 3, 32, 32), 10,
                        {"family": "wrn", "arch": "wrn_10_1", "in_channels": 3, "num_classes": 10, "image_size": 32})
    # torchvision ResNet (7x7/2 stem + max-pool), BasicBlock, one block per stage, reduced widths.
    write_model_fixture(args.out, "torchvision_resnet_basic",
                        lambda: torch_models.small_torchvision_resnet("basic", [1, 1, 1, 1], [8, 16, 32, 64], 8),
                        (4, 3, 64, 64), 10,
                        {"family": "torchvision_resnet", "block": "basic", "stem_width": 8, "widths": "8,16,32,64",
                         "blocks": "1,1,1,1", "in_channels": 3, "num_classes": 10, "image_size": 64})
    # torchvision ResNet with Bottleneck blocks (resnet50's block: stride on the 3x3).
    write_model_fixture(args.out, "torchvision_resnet_bottleneck",
                        lambda: torch_models.small_torchvision_resnet("bottleneck", [2, 1, 1, 1], [8, 8, 16, 16], 8),
                        (4, 3, 64, 64), 10,
                        {"family": "torchvision_resnet", "block": "bottleneck", "stem_width": 8,
                         "widths": "8,8,16,16", "blocks": "2,1,1,1", "in_channels": 3, "num_classes": 10,
                         "image_size": 64})
    # timm VisionTransformer, reduced: 32x32, patch 8, dim 48, 2 blocks, 3 heads.
    write_model_fixture(args.out, "timm_vit", lambda: torch_models.timm_vit(32, 8, 48, 2, 3, 10), (4, 3, 32, 32), 10,
                        {"family": "timm_vit", "dim": 48, "heads": 3, "depth": 2, "patch": 8, "mlp_ratio": 4.0,
                         "in_channels": 3, "num_classes": 10, "image_size": 32})
    write_kd_fixture(args.out)


if __name__ == "__main__":
    main()
