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
