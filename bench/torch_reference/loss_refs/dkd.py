"""DKD (Zhao et al. 2022) reference values: mdistiller's dkd_loss (mdistiller/distillers/DKD.py)
with its defaults alpha 1, beta 8, T 4, on logits and labels of 6 examples and 7 classes. The
two terms alone (alpha, beta) = (1, 0) and (0, 1) are extras.
"""
import torch

from .common import mdistiller_module, randn

B, C = 6, 7


def make(gen):
    dkd = mdistiller_module("DKD")
    x = dict(student=randn(gen, B, C, scale=2.0, grad=True), teacher=randn(gen, B, C, scale=3.0))
    labels = torch.randint(0, C, (B,), generator=gen)
    loss = dkd.dkd_loss(x["student"], x["teacher"], labels, 1.0, 8.0, 4.0)
    tckd = dkd.dkd_loss(x["student"], x["teacher"], labels, 1.0, 0.0, 4.0)
    nckd = dkd.dkd_loss(x["student"], x["teacher"], labels, 0.0, 1.0, 4.0)
    return dict(inputs=dict(x, labels=labels.double()), loss=loss,
                reference="mdistiller a08d46f mdistiller.distillers.DKD.dkd_loss",
                meta=dict(alpha=1.0, beta=8.0, T=4.0), extra=dict(tckd=tckd.detach(), nckd=nckd.detach()))


def cases():
    return {"dkd": make}
