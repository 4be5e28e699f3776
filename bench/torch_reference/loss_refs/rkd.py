"""RKD (Park et al. 2019) reference values: torchdistill's RKDLoss with RepDistiller's weights
(dist_factor 25, angle_factor 50, reduction 'mean') on pooled student/teacher features of
different widths. RepDistiller's distiller_zoo/RKD.py (w_d 25, w_a 50) is the same code; the
script asserts both agree. The two terms alone (factors (1, 0) and (0, 1)) are extras.
"""
import torch

from .common import randn

B, D_S, D_T = 6, 10, 12


def make(gen):
    from torchdistill.losses.mid_level import RKDLoss
    from distiller_zoo.RKD import RKDLoss as RDRKDLoss
    x = dict(student=randn(gen, B, D_S, grad=True), teacher=randn(gen, B, D_T))
    s, t = {"feat": {"output": x["student"]}}, {"feat": {"output": x["teacher"]}}
    loss = RKDLoss("feat", "feat", dist_factor=25.0, angle_factor=50.0, reduction="mean")(s, t)
    distance = RKDLoss("feat", "feat", dist_factor=1.0, angle_factor=0.0, reduction="mean")(s, t)
    angle = RKDLoss("feat", "feat", dist_factor=0.0, angle_factor=1.0, reduction="mean")(s, t)
    rd = RDRKDLoss(w_d=25, w_a=50)(x["student"], x["teacher"])
    assert torch.allclose(rd, loss, rtol=1e-14, atol=0), (rd.item(), loss.item())
    return dict(inputs=x, loss=loss, reference="torchdistill 1.1.5 torchdistill.losses.mid_level.RKDLoss",
                meta=dict(distance_weight=25.0, angle_weight=50.0, repdistiller_loss=repr(rd.item())),
                extra=dict(distance=distance.detach(), angle=angle.detach()))


def cases():
    return {"rkd": make}
