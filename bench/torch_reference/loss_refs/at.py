"""AT (Zagoruyko & Komodakis 2017) reference values.

at:      torchdistill 1.1.5 ATLoss(mode='code'), three stage pairs of equal spatial size (torchdistill
         does not pool: it needs equal sizes), channel counts differing between the two sides.
at_pool: RepDistiller b84f547 distiller_zoo/AT.py Attention(p=2), summed over three stage pairs whose
         sizes differ (the larger map adaptive-average-pooled to the smaller, both directions,
         including a 7x7 -> 3x3 pooling with overlapping windows).
On the `at` inputs both implementations are computed and checked to agree (they do: the same
normalize(mean_c f^2) maps and mean of squared differences, summed over pairs).
"""
import torch

from .common import relu_features, torchdistill_version


def _td_at(student, teacher):
    from torchdistill.losses.mid_level import ATLoss
    pairs = {f"pair{k}": {"student": {"io": "output", "path": f"s{k}"},
                          "teacher": {"io": "output", "path": f"t{k}"}, "weight": 1}
             for k in range(len(student))}
    loss = ATLoss(pairs, mode="code")
    s_io = {f"s{k}": {"output": f} for k, f in enumerate(student)}
    t_io = {f"t{k}": {"output": f} for k, f in enumerate(teacher)}
    return loss(s_io, t_io)


def _rd_at(student, teacher, p=2):
    from distiller_zoo.AT import Attention
    return sum(Attention(p=p)(student, teacher))


def _make(gen, s_shapes, t_shapes):
    student = [relu_features(gen, *s, grad=True) for s in s_shapes]
    teacher = [relu_features(gen, *t) for t in t_shapes]
    inputs = {}
    for k, f in enumerate(student):
        inputs[f"s{k}"] = f
    for k, f in enumerate(teacher):
        inputs[f"t{k}"] = f
    return student, teacher, inputs


def make_at(gen):
    student, teacher, inputs = _make(gen, [(4, 4, 8, 8), (4, 6, 4, 4), (4, 8, 2, 2)],
                                     [(4, 6, 8, 8), (4, 3, 4, 4), (4, 12, 2, 2)])
    loss = _td_at(student, teacher)
    try:
        rd = _rd_at(student, teacher)
        assert torch.allclose(loss, rd, rtol=1e-13, atol=0), (loss.item(), rd.item())
        agree = "yes"
    except ImportError:
        agree = "RepDistiller not on sys.path"
    return dict(inputs=inputs, loss=loss,
                reference=f"torchdistill {torchdistill_version()} torchdistill.losses.mid_level.ATLoss(mode='code')",
                meta={"p": 2, "stages": 3, "repdistiller_agrees": agree})


def make_at_pool(gen):
    student, teacher, inputs = _make(gen, [(4, 4, 8, 8), (4, 6, 4, 4), (4, 5, 7, 7)],
                                     [(4, 6, 6, 6), (4, 3, 8, 8), (4, 7, 3, 3)])
    loss = _rd_at(student, teacher)
    return dict(inputs=inputs, loss=loss, reference="RepDistiller b84f547 distiller_zoo/AT.py Attention(p=2)",
                meta={"p": 2, "stages": 3})


def cases():
    return {"at": make_at, "at_pool": make_at_pool}
