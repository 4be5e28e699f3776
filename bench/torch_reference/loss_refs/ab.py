"""AB reference values (Heo et al. 2019).

ab_rd: RepDistiller's distiller_zoo/AB.py ABLoss over models/util.py Connector outputs, the loss
  summed over stages as helper/pretrain.py:63-67 does. Five stages cover every connector RD builds:
  identity (same channels and size), 1x1 conv + BN (same size), 3x3 stride-2 conv + BN (student
  twice the teacher's size), 3x3 valid conv + BN (6x6 -> 4x4), 4x4 stride-2 transposed conv + BN
  (student half the teacher's size, 2x2 -> 4x4). The
  connectors are in training mode (batch statistics), as in RD's init stage; their parameters are
  inputs with gradients, named as RD's Connector ("connectors.<k>.conv.weight", ...), except the conv
  biases (inputs without gradients: a bias before a training-mode BN has gradient 0).
ab_td: torchdistill's AltActTransferLoss on three equal-shape pairs with RD's stage weights
  1/4, 1/2, 1, reduction 'mean' (/ B), times RD's 3/1000.
"""
import torch

from .common import randn

MARGIN = 1.0


def make_rd(gen):
    from distiller_zoo.AB import ABLoss
    from models.util import Connector
    shapes = [((4, 3, 4, 4), (4, 3, 4, 4)),   # identity
              ((4, 3, 4, 4), (4, 5, 4, 4)),   # 1x1 conv + BN
              ((4, 2, 8, 8), (4, 4, 4, 4)),   # 3x3 stride-2 conv + BN
              ((4, 3, 6, 6), (4, 4, 4, 4)),   # 3x3 valid conv + BN
              ((4, 2, 2, 2), (4, 3, 4, 4))]   # 4x4 stride-2 transposed conv + BN
    conn = Connector([torch.Size(s) for s, _ in shapes], [torch.Size(t) for _, t in shapes]).double().train()
    inputs = {}
    for name, p in conn.named_parameters():
        if ".bn." in name:  # move BN off weight 1 / bias 0
            with torch.no_grad():
                p.add_(randn(gen, *p.shape, scale=0.3))
        if name.endswith("conv.bias"):
            # a bias right before a training-mode BN cancels out: its gradient is exactly 0 in theory
            # and rounding noise in practice, which no relative check can compare; kept as a plain input
            p.requires_grad_(False)
        inputs[name] = p
    g_s, g_t = [], []
    for k, (ss, ts) in enumerate(shapes):
        s = randn(gen, *ss, scale=1.5, grad=True)
        t = randn(gen, *ts)
        inputs[f"s{k}"], inputs[f"t{k}"] = s, t
        g_s.append(s)
        g_t.append(t)
    loss = sum(ABLoss(len(shapes), margin=MARGIN)(conn(g_s), g_t))
    return dict(inputs=inputs, loss=loss,
                reference="RepDistiller b84f547 distiller_zoo/AB.py ABLoss + models/util.py Connector (train mode)",
                meta=dict(stages=len(shapes), margin=MARGIN))


def make_td(gen):
    from torchdistill.losses.mid_level import AltActTransferLoss
    shapes = [(4, 3, 4, 4), (4, 5, 2, 2), (4, 6, 2, 2)]
    weights = [0.25, 0.5, 1.0]
    inputs, pairs, s_io, t_io = {}, {}, {}, {}
    for k, sh in enumerate(shapes):
        s = randn(gen, *sh, scale=1.5, grad=True)
        t = randn(gen, *sh)
        inputs[f"s{k}"], inputs[f"t{k}"] = s, t
        s_io[f"connector{k}"] = {"output": s}
        t_io[f"layer{k}"] = {"output": t}
        pairs[f"pair{k}"] = {"teacher": {"io": "output", "path": f"layer{k}"},
                             "student": {"io": "output", "path": f"connector{k}"}, "weight": weights[k]}
    loss = AltActTransferLoss(pairs, margin=MARGIN, reduction="mean")(s_io, t_io) * (3.0 / 1000.0)
    return dict(inputs=inputs, loss=loss,
                reference="torchdistill 1.1.5 torchdistill.losses.mid_level.AltActTransferLoss "
                          "(pair weights 1/4, 1/2, 1; reduction mean; times 3/1000)",
                meta=dict(stages=len(shapes), margin=MARGIN))


def cases():
    return {"ab_rd": make_rd, "ab_td": make_td}
