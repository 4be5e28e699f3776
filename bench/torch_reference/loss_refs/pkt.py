"""PKT (Passalis & Tefas 2018) reference values: torchdistill's PKTLoss (eps 1e-7) on pooled
student/teacher features of different widths. RepDistiller's distiller_zoo/PKT.py computes the
same formula; the script asserts both agree on these inputs (meta repdistiller_loss).
"""
import torch

from .common import randn

B, D_S, D_T = 8, 12, 16


def make(gen):
    from torchdistill.losses.mid_level import PKTLoss
    x = dict(student=randn(gen, B, D_S, grad=True), teacher=randn(gen, B, D_T))
    criterion = PKTLoss("fc", "input", "fc", "input", eps=1e-7)
    loss = criterion({"fc": {"input": x["student"]}}, {"fc": {"input": x["teacher"]}})
    from distiller_zoo.PKT import PKT
    rd = PKT()(x["student"], x["teacher"])
    assert torch.allclose(rd, loss, rtol=1e-14, atol=0), (rd.item(), loss.item())
    return dict(inputs=x, loss=loss, reference="torchdistill 1.1.5 torchdistill.losses.mid_level.PKTLoss",
                meta=dict(eps=1e-7, repdistiller_loss=repr(rd.item())))


def cases():
    return {"pkt": make}
