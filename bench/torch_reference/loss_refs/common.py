"""Shared helpers of the loss reference modules: seeded f64 inputs."""
import torch


def randn(gen, *shape, scale=1.0, grad=False):
    """An f64 tensor of N(0, scale^2) values from gen; requires_grad when grad."""
    t = torch.randn(*shape, generator=gen, dtype=torch.float64) * scale
    return t.requires_grad_(grad)


def relu_features(gen, *shape, grad=False):
    """Non-negative f64 features, like a ResNet tap after its ReLU (with some exact zeros)."""
    t = torch.relu(torch.randn(*shape, generator=gen, dtype=torch.float64) + 0.3)
    return t.requires_grad_(grad)


def torchdistill_version():
    import torchdistill
    return getattr(torchdistill, "__version__", "?")


def source_module(dotted, sys_path_root=None):
    """The module `dotted` (e.g. "mdistiller.distillers.DKD") of a checkout on sys.path, loaded from
    its file alone: the packages above it become empty namespaces, so their __init__ files (which
    import every model and distiller, and their dependencies) do not run. Relative imports of
    sibling modules (from ._base import Distiller) load the same way."""
    import importlib.util
    import os
    import sys
    import types
    parts = dotted.split(".")
    roots = [sys_path_root] if sys_path_root else sys.path
    for root in roots:
        path = os.path.join(root, *parts) + ".py"
        if os.path.isfile(path):
            break
    else:
        raise ImportError(f"{dotted} not found on sys.path (pass the checkout, e.g. --mdistiller)")
    for i in range(1, len(parts)):
        pkg = ".".join(parts[:i])
        if pkg not in sys.modules:
            m = types.ModuleType(pkg)
            m.__path__ = [os.path.join(root, *parts[:i])]
            sys.modules[pkg] = m
    if dotted in sys.modules:
        return sys.modules[dotted]
    spec = importlib.util.spec_from_file_location(dotted, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[dotted] = module
    spec.loader.exec_module(module)
    return module


def mdistiller_module(name):
    """mdistiller's mdistiller/distillers/<name>.py (DKD, ReviewKD, OFD) from the --mdistiller checkout."""
    return source_module("mdistiller.distillers." + name)
