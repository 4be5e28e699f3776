"""DIST (Huang et al. 2022) reference values: the authors' DIST (hunto/image_classification_sota
lib/models/losses/dist_kd.py) with their CIFAR-100 settings (beta 1, gamma 1, tau 4) on logits of
6 examples and 7 classes. torchdistill's DISTLoss (a different eps rule in its cosine) is
recorded in the metadata, and the script asserts both agree to 1e-7 relative (7e-9 here). The two terms
alone are extras.
"""
import torch

from .common import randn, source_module

B, C, TAU = 6, 7, 4.0


def make(gen):
    from torchdistill.losses.mid_level import DISTLoss
    authors = source_module("lib.models.losses.dist_kd")
    x = dict(student=randn(gen, B, C, scale=2.0, grad=True), teacher=randn(gen, B, C, scale=3.0))
    loss = authors.DIST(beta=1.0, gamma=1.0, tau=TAU)(x["student"], x["teacher"])
    inter = authors.DIST(beta=1.0, gamma=0.0, tau=TAU)(x["student"], x["teacher"])
    intra = authors.DIST(beta=0.0, gamma=1.0, tau=TAU)(x["student"], x["teacher"])
    s, t = {".": {"output": x["student"]}}, {".": {"output": x["teacher"]}}
    td = DISTLoss(".", "output", ".", "output", beta=1.0, gamma=1.0, tau=TAU)(s, t)
    assert torch.allclose(td, loss, rtol=1e-7, atol=0), (td.item(), loss.item())
    return dict(inputs=x, loss=loss, reference="hunto/image_classification_sota 6f7a70a lib.models.losses.dist_kd.DIST",
                meta=dict(beta=1.0, gamma=1.0, T=TAU, torchdistill_loss=repr(td.item())),
                extra=dict(inter=inter.detach(), intra=intra.detach()))


def cases():
    return {"dist": make}
