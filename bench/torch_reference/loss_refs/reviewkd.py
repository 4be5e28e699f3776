"""ReviewKD (Chen et al. 2021) reference values: mdistiller's ReviewKD distiller
(mdistiller/distillers/ReviewKD.py: its ABFs, the deepest-first fusion of forward_train, hcl_loss,
the warm-up factor and the loss weight) on stand-in student and teacher networks that return
fixed feature lists, so the whole loss_kd term is computed by mdistiller's own code.

Four levels, shallow to deep (B = 4), chosen to reach every resize ABF does:
  level 0: student [4, 2, 6, 6]  teacher [4, 2, 6, 6]   residual 3x3 -> 6x6 (nearest, x2)
  level 1: student [4, 4, 4, 4]  teacher [4, 3, 3, 3]   output 4x4 -> 3x3 (nearest, scale 4/3)
  level 2: student [4, 5, 2, 2]  teacher [4, 4, 4, 4]   residual 1x1 -> 2x2, output 2x2 -> 4x4
  level 3: student pooled [4, 6] teacher pooled [4, 4]  (as [B, C, 1, 1]; the deepest, no fusion)
HCL then pools 6x6 to 4, 2, 1 (6 -> 4 overlapping windows), 3x3 to 2, 1, 4x4 to 2, 1, and 1x1 not
at all. mid = min(512, 6) = 6 (ReviewKD.py:45). The ABFs are in training mode (batch statistics),
their BatchNorm affine parameters moved off 1 / 0; every ABF parameter is an input with a gradient,
named as mdistiller's state dict ("abfs.0" = the deepest level). Epoch 5 of a 20-epoch warm-up
with REVIEWKD_WEIGHT 5: loss = 5 * 5/20 * hcl (hcl alone is extra.hcl).

The script also asserts that torchdistill 1.1.5's HierarchicalContextLoss, summed over the levels,
gives mdistiller's hcl_loss, and that its AttentionBasedFusion with the same weights gives the
same outputs on the levels where it applies (no output resize: levels 0 and 3).
"""
import types

import torch
from torch import nn

from .common import mdistiller_module, randn

B = 4
STUDENT = [(2, 6), (4, 4), (5, 2)]  # (channels, size) of the student maps, shallow to deep
TEACHER = [(2, 6), (3, 3), (4, 4)]
POOLED_S, POOLED_T = 6, 4
EPOCH, WARMUP, WEIGHT = 5, 20.0, 5.0
REFERENCE = "mdistiller a08d46f mdistiller.distillers.ReviewKD (ReviewKD.forward_train: ABF + hcl_loss)"


class FixedFeatures(nn.Module):
    """Stands in for a network: returns fixed logits and mdistiller's feature dict."""

    def __init__(self, feats, preact_feats, pooled):
        super().__init__()
        self.out = (torch.zeros(B, 2, dtype=torch.float64),
                    {"feats": feats, "preact_feats": preact_feats, "pooled_feat": pooled})

    def forward(self, image):
        return self.out


def make(gen):
    rk = mdistiller_module("ReviewKD")
    s_maps = [randn(gen, B, c, h, h, grad=True) for c, h in STUDENT]
    t_maps = [randn(gen, B, c, h, h) for c, h in TEACHER]
    s_pooled, t_pooled = randn(gen, B, POOLED_S, grad=True), randn(gen, B, POOLED_T)
    dummy = randn(gen, B, 1, 6, 6)  # f0: the stem output, which the zip over the ABFs leaves out
    student = FixedFeatures([dummy] + s_maps, [dummy] + s_maps, s_pooled)
    teacher = FixedFeatures([dummy] + t_maps, [dummy] + t_maps, t_pooled)
    cfg = types.SimpleNamespace(REVIEWKD=types.SimpleNamespace(
        SHAPES=[1] + [h for _, h in reversed(STUDENT)], OUT_SHAPES=[1] + [h for _, h in reversed(TEACHER)],
        IN_CHANNELS=[c for c, _ in STUDENT] + [POOLED_S], OUT_CHANNELS=[c for c, _ in TEACHER] + [POOLED_T],
        CE_WEIGHT=1.0, REVIEWKD_WEIGHT=WEIGHT, WARMUP_EPOCHS=WARMUP, STU_PREACT=False, MAX_MID_CHANNEL=512))
    distiller = rk.ReviewKD(student, teacher, cfg).double()
    distiller.train()
    params = {}
    for name, p in distiller.abfs.named_parameters():
        if ".1." in name:  # BatchNorm affine (conv1.1, conv2.1): away from weight 1 / bias 0
            with torch.no_grad():
                p.copy_(randn(gen, *p.shape, scale=0.3) + (1.0 if name.endswith("weight") else 0.0))
        params["abfs." + name] = p
    _, losses = distiller.forward_train(image=None, target=torch.zeros(B, dtype=torch.long), epoch=EPOCH)
    loss = losses["loss_kd"]

    # hcl_loss alone on the same fused outputs (recomputed: forward_train keeps them to itself)
    results, res = [], None
    x = [s_pooled[:, :, None, None]] + s_maps[::-1]
    for j, (f, abf) in enumerate(zip(x, distiller.abfs)):
        if j == 0:
            out, res = abf(f, out_shape=cfg.REVIEWKD.OUT_SHAPES[0])
        else:
            out, res = abf(f, res, cfg.REVIEWKD.SHAPES[j], cfg.REVIEWKD.OUT_SHAPES[j])
        results.insert(0, out)
    t_all = t_maps + [t_pooled[:, :, None, None]]
    hcl = rk.hcl_loss(results, t_all)
    factor = WEIGHT * min(EPOCH / WARMUP, 1.0)
    assert torch.allclose(loss, factor * hcl, rtol=1e-13, atol=0), (loss.item(), factor * hcl.item())
    check_torchdistill(distiller, results, t_all, x, hcl)

    inputs = {f"s{k}": s for k, s in enumerate(s_maps + [s_pooled])}
    inputs.update({f"t{k}": t for k, t in enumerate(t_maps + [t_pooled])})
    inputs.update(params)
    return dict(inputs=inputs, loss=loss, reference=REFERENCE,
                meta=dict(levels=4, epoch=EPOCH, warmup_epochs=WARMUP, weight=WEIGHT, mid_channels=6,
                          shapes=cfg.REVIEWKD.SHAPES, out_shapes=cfg.REVIEWKD.OUT_SHAPES),
                extra=dict(hcl=hcl.detach()))


def check_torchdistill(distiller, results, t_all, x, hcl):
    """torchdistill 1.1.5: HierarchicalContextLoss per level sums to hcl_loss; AttentionBasedFusion
    with mdistiller's weights gives the same fused outputs where no output resize is involved."""
    from torchdistill.losses.mid_level import HierarchicalContextLoss
    from torchdistill.models.wrapper import AttentionBasedFusion
    total = 0.0
    for y, t in zip(results, t_all):
        crit = HierarchicalContextLoss("s", "output", "t", "input", reduction="mean", output_sizes=[4, 2, 1])
        total = total + crit({"s": {"output": (y, None)}}, {"t": {"input": t}})
    assert torch.allclose(total, hcl, rtol=1e-13, atol=0), (total.item(), hcl.item())
    with torch.no_grad():
        n = len(distiller.abfs)
        # level 3 (abfs.0, no fusion) and level 0 (abfs.3, fused, sizes agree); the residual into
        # abfs.3 is recomputed through abfs.0..2 as forward_train does
        res, ys = None, []
        for j, abf in enumerate(distiller.abfs):
            md = abf
            td = AttentionBasedFusion(md.conv1[0].in_channels, md.conv1[0].out_channels,
                                      md.conv2[0].out_channels, uses_attention=j > 0).double().train()
            state = {k.replace("att_conv", "attention_conv"): v for k, v in md.state_dict().items()}
            td.load_state_dict(state)
            if j == 0:
                y_md, res_md = md(x[0], out_shape=1)
                y_td, _ = td(x[0])
            else:
                y_md, res_next = md(x[j], res, distiller.shapes[j], distiller.out_shapes[j])
                y_td = td(x[j], res, distiller.shapes[j])[0] if distiller.shapes[j] == distiller.out_shapes[j] else None
                res_md = res_next
            if y_td is not None:
                assert torch.allclose(y_md, y_td, rtol=1e-12, atol=1e-12), j
                ys.append(j)
            res = res_md
        assert ys == [0, n - 1], ys


def cases():
    return {"reviewkd": make}
