#!/usr/bin/env python3
"""Runs a model retort exported to ONNX (models/onnx_export.h) in onnxruntime and compares its
logits with the ones retort computed for the same inputs.

  compare_onnxruntime.py MODEL.onnx DUMP.safetensors [--tol 1e-3] [--batch-size 256]
                         [--no-graph-optimizations]

DUMP holds the tensors
  "images" f32 [N, C, H, W]  the normalised inputs exactly as retort fed them,
  "logits" f32 [N, K]        retort's logits for them (eval mode),
  "labels" i64 [N]           the true classes.
The ONNX model runs on onnxruntime's CPU provider in batches (a model exported with a fixed batch
gets batches of that size, the last one zero-padded). Prints N, the max and mean |logit
difference|, the top-1 accuracy of retort and of onnxruntime on the labels, and how many argmax
predictions differ. Exit status: 0 when no prediction differs and the max difference is at most
--tol; 1 when either fails; 2 when the inputs are unusable.

Needs onnxruntime, numpy and safetensors, e.g. the retort-torch virtual environment:
  ~/.venvs/retort-torch/bin/pip install onnxruntime numpy safetensors
  ~/.venvs/retort-torch/bin/python bench/onnx/compare_onnxruntime.py resnet8.onnx resnet8_dump.safetensors
"""
import argparse
import sys

import numpy as np
import onnxruntime as ort
from safetensors.numpy import load_file
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

# What onnxruntime raises for a file it cannot load or run (none derives from RuntimeError).
ORT_ERRORS = tuple(getattr(ort_state, name) for name in (
    "Fail", "InvalidArgument", "NoSuchFile", "NoModel", "InvalidProtobuf", "InvalidGraph", "RuntimeException",
    "NotImplemented") if hasattr(ort_state, name))


def load_dump(path):
    tensors = load_file(path)
    missing = [k for k in ("images", "logits", "labels") if k not in tensors]
    if missing:
        raise ValueError(f"{path}: missing tensors {missing} (has {sorted(tensors)})")
    images, logits, labels = (tensors[k] for k in ("images", "logits", "labels"))
    if images.ndim != 4 or logits.ndim != 2 or labels.ndim != 1:
        raise ValueError(f"{path}: expected images [N,C,H,W], logits [N,K], labels [N]; got "
                         f"{images.shape}, {logits.shape}, {labels.shape}")
    if not images.shape[0] == logits.shape[0] == labels.shape[0]:
        raise ValueError(f"{path}: images, logits and labels disagree on N: "
                         f"{images.shape[0]}, {logits.shape[0]}, {labels.shape[0]}")
    return images.astype(np.float32), logits.astype(np.float32), labels.astype(np.int64)


def make_session(model_path, optimize):
    options = ort.SessionOptions()
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model_path, sess_options=options, providers=["CPUExecutionProvider"])


def run_batches(session, images, batch_size):
    """onnxruntime's logits for every image; a fixed-batch model's last batch is zero-padded."""
    model_input = session.get_inputs()[0]
    fixed = model_input.shape[0] if isinstance(model_input.shape[0], int) else None
    step = fixed or batch_size
    outputs = []
    for start in range(0, images.shape[0], step):
        chunk = images[start:start + step]
        real = chunk.shape[0]
        if fixed and real < fixed:
            chunk = np.concatenate([chunk, np.zeros((fixed - real,) + chunk.shape[1:], np.float32)])
        (logits,) = session.run(["logits"], {model_input.name: chunk})
        outputs.append(logits[:real])
    return np.concatenate(outputs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="ONNX file written by retort's export_onnx")
    parser.add_argument("dump", help="safetensors with images, logits and labels from retort")
    parser.add_argument("--tol", type=float, default=1e-3, help="largest allowed |logit difference|")
    parser.add_argument("--batch-size", type=int, default=256, help="images per onnxruntime run")
    parser.add_argument("--no-graph-optimizations", action="store_true",
                        help="run the graph as written (no onnxruntime fusions)")
    args = parser.parse_args()
    try:
        images, retort_logits, labels = load_dump(args.dump)
        session = make_session(args.model, not args.no_graph_optimizations)
        ort_logits = run_batches(session, images, args.batch_size)
    except (ValueError, OSError) + ORT_ERRORS as e:
        print(f"compare_onnxruntime: error: {e}", file=sys.stderr)
        return 2
    if ort_logits.shape != retort_logits.shape:
        print(f"compare_onnxruntime: error: onnxruntime logits {ort_logits.shape} but retort's "
              f"{retort_logits.shape}", file=sys.stderr)
        return 2

    diff = np.abs(ort_logits.astype(np.float64) - retort_logits.astype(np.float64))
    retort_pred, ort_pred = retort_logits.argmax(1), ort_logits.argmax(1)
    n = images.shape[0]
    differing = int((retort_pred != ort_pred).sum())
    print(f"N: {n}")
    print(f"max |logit difference|: {diff.max():.3e}")
    print(f"mean |logit difference|: {diff.mean():.3e}")
    print(f"top-1 retort: {(retort_pred == labels).mean() * 100:.2f}%")
    print(f"top-1 onnxruntime: {(ort_pred == labels).mean() * 100:.2f}%")
    print(f"argmax predictions that differ: {differing} of {n}")
    failures = []
    if differing > 0:
        failures.append(f"{differing} predictions differ")
    if not diff.max() <= args.tol:  # a NaN fails too
        failures.append(f"max difference {diff.max():.3e} > tol {args.tol:g}")
    print("FAIL: " + "; ".join(failures) if failures else f"OK (tol {args.tol:g})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
