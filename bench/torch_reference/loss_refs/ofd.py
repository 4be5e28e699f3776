"""OFD (Heo et al. 2019) reference values.

ofd: mdistiller's OFD distiller (mdistiller/distillers/OFD.py) built on stand-in models that expose
  get_stage_channels / get_bn_before_relu: its margins from the teacher's BNs (init_ofd_modules),
  its ConnectorConvBN (1x1 conv + BN, training mode) and ofd_loss on three stages of pre-ReLU maps
  (the loss without FEAT_WEIGHT 0.001, which retort applies as the term's weight). Stage 2's teacher
  map is larger than the student's (pooled by ofd_loss's adaptive_avg_pool2d).
ofd_k3: the same with CONNECTOR.KERNEL_SIZE 3 on two stages.
ofd_authors: the authors' CIFAR-100/distiller.py Distiller (clovaai/overhaul-distillation
  76344a8) on three equal-size stages, its loss_distill divided by the batch size as
  train_with_distillation.py:91 does (the / 1000 is the weight). Read from the checkout in the
  environment variable OVERHAUL_DISTILLATION_DIR.
In each, every teacher BN has channels of the three margin regimes: Phi(-beta/sigma) > 0.001, the
-3 sigma branch (beta > 3.1 sigma) and a negative BN weight (MD takes |gamma|); the teacher maps
are drawn from N(beta, gamma^2) per channel, so values fall on both sides of the margin and of 0.
The connectors' parameters (conv weight, BN weight and bias) are inputs with gradients, named as
MD's ConnectorConvBN ("connectors.<k>.0.weight", "connectors.<k>.1.weight", ...); the teacher BNs'
weight and bias are plain inputs ("bn<k>.weight", "bn<k>.bias"), the margins extras ("margin<k>").
"""
import importlib.util
import os
import types

import torch
import torch.nn as nn

from .common import mdistiller_module, randn

B = 4


class StandIn(nn.Module):
    """A model as OFD reads it: stage channels (stem first) and the BNs before the stage ReLUs."""

    def __init__(self, channels, bns=()):
        super().__init__()
        self.channels = [8] + list(channels)
        self.bns = nn.ModuleList(bns)

    def get_stage_channels(self):
        return self.channels

    def get_bn_before_relu(self):
        return list(self.bns)

    # the authors' interface
    def get_channel_num(self):
        return self.channels[1:]


def teacher_bns(gen, channels):
    bns = []
    for c in channels:
        bn = nn.BatchNorm2d(c).double()
        with torch.no_grad():
            bn.weight.copy_(0.5 + torch.rand(c, generator=gen, dtype=torch.float64))
            bn.bias.copy_(randn(gen, c, scale=1.0))
            bn.bias[0] = 3.5 * bn.weight[0]  # Phi(-3.5) = 2.3e-4 <= 0.001: margin -3 sigma
            bn.weight[1] = -bn.weight[1]      # a negative BN weight: sigma = |gamma|
        bns.append(bn)
    return bns


def pre_relu_map(gen, bn, b, h, w):
    """A teacher map drawn per channel from N(beta, gamma^2), the distribution the margin assumes."""
    z = randn(gen, b, bn.num_features, h, w)
    return (bn.bias.detach().view(1, -1, 1, 1) + bn.weight.detach().abs().view(1, -1, 1, 1) * z).detach()


def perturb_bn(gen, connectors):
    with torch.no_grad():  # the connector BNs away from weight 1 / bias 0 so their gradients matter
        for name, p in connectors.named_parameters():
            if ".1." in name:
                p.add_(randn(gen, *p.shape, scale=0.3))


def make_md(kernel, shapes):
    """shapes: [(student [B, C_s, H, W], teacher [B, C_t, H_t, W_t])] per stage."""
    def make(gen):
        ofd = mdistiller_module("OFD")
        bns = teacher_bns(gen, [t[1] for _, t in shapes])
        cfg = types.SimpleNamespace(OFD=types.SimpleNamespace(
            LOSS=types.SimpleNamespace(CE_WEIGHT=1.0, FEAT_WEIGHT=0.001),
            CONNECTOR=types.SimpleNamespace(KERNEL_SIZE=kernel)))
        distiller = ofd.OFD(StandIn([s[1] for s, _ in shapes]), StandIn([t[1] for _, t in shapes], bns), cfg)
        distiller = distiller.double().train()
        conn = distiller.connectors  # ConnectorConvBN: parameters "connectors.<k>.{0,1}.*"
        perturb_bn(gen, conn)
        inputs = {name: p for name, p in conn.named_parameters()}
        fs, ft = [], []
        for k, ((ss, ts), bn) in enumerate(zip(shapes, bns)):
            inputs[f"bn{k}.weight"], inputs[f"bn{k}.bias"] = bn.weight.detach(), bn.bias.detach()
            s = randn(gen, *ss, scale=1.5, grad=True)
            t = pre_relu_map(gen, bn, *([ts[0]] + list(ts[2:])))
            inputs[f"s{k}"], inputs[f"t{k}"] = s, t
            fs.append(s)
            ft.append(t)
        loss = distiller.ofd_loss(fs, ft)
        extra = {f"margin{k}": m.detach().double().flatten() for k, m in enumerate(distiller.margins)}
        return dict(inputs=inputs, loss=loss, extra=extra,
                    reference="mdistiller a08d46f mdistiller.distillers.OFD (init_ofd_modules margins, "
                              "ConnectorConvBN in train mode, ofd_loss; without FEAT_WEIGHT)",
                    meta=dict(stages=len(shapes), kernel_size=kernel, feat_weight=0.001))
    return make


def authors_module():
    root = os.environ.get("OVERHAUL_DISTILLATION_DIR", "")
    path = os.path.join(root, "CIFAR-100", "distiller.py")
    if not root or not os.path.isfile(path):
        raise RuntimeError("ofd_authors: set OVERHAUL_DISTILLATION_DIR to a checkout of "
                           "github.com/clovaai/overhaul-distillation")
    spec = importlib.util.spec_from_file_location("overhaul_cifar_distiller", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_authors(gen):
    authors = authors_module()
    shapes = [((B, 3, 4, 4), (B, 4, 4, 4)), ((B, 4, 3, 3), (B, 6, 3, 3)), ((B, 5, 2, 2), (B, 8, 2, 2))]
    bns = teacher_bns(gen, [t[1] for _, t in shapes])
    feats = {}

    class Net(StandIn):
        def __init__(self, side, channels, bns=()):
            super().__init__(channels, bns)
            self.side = side

        def extract_feature(self, x, preReLU=False):
            assert preReLU
            return list(feats[self.side]), None

    distiller = authors.Distiller(Net("t", [t[1] for _, t in shapes], bns), Net("s", [s[1] for s, _ in shapes]))
    distiller = distiller.double().train()
    perturb_bn(gen, distiller.Connectors)
    inputs = {"connectors." + name: p for name, p in distiller.Connectors.named_parameters()}
    feats["s"], feats["t"] = [], []
    for k, ((ss, ts), bn) in enumerate(zip(shapes, bns)):
        inputs[f"bn{k}.weight"], inputs[f"bn{k}.bias"] = bn.weight.detach(), bn.bias.detach()
        s = randn(gen, *ss, scale=1.5, grad=True)
        t = pre_relu_map(gen, bn, *([ts[0]] + list(ts[2:])))
        inputs[f"s{k}"], inputs[f"t{k}"] = s, t
        feats["s"].append(s)
        feats["t"].append(t)
    _, loss_distill = distiller(None)
    loss = loss_distill.sum() / B  # train_with_distillation.py:91 (then / 1000: the weight)
    extra = {f"margin{k}": getattr(distiller, f"margin{k + 1}").detach().double().flatten() for k in range(len(shapes))}
    return dict(inputs=inputs, loss=loss, extra=extra,
                reference="clovaai/overhaul-distillation 76344a8 CIFAR-100/distiller.py Distiller (Connectors in "
                          "train mode), loss_distill.sum() / batch_size",
                meta=dict(stages=len(shapes), kernel_size=1, feat_weight=0.001))


def cases():
    return {
        "ofd": make_md(1, [((B, 3, 4, 4), (B, 4, 4, 4)), ((B, 4, 2, 2), (B, 6, 4, 4)), ((B, 5, 3, 3), (B, 8, 3, 3))]),
        "ofd_k3": make_md(3, [((B, 3, 4, 4), (B, 4, 4, 4)), ((B, 4, 3, 3), (B, 5, 3, 3))]),
        "ofd_authors": make_authors,
    }
