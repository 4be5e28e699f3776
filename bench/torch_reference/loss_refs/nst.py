"""NST (Huang & Wang 2017) reference value: RepDistiller b84f547 distiller_zoo/NST.py NSTLoss (torchdistill
has no NST), summed over three stage pairs: channel counts differ between the sides and the sizes
differ in two of them (the larger map adaptive-average-pooled to the smaller, both directions).
"""
from .common import relu_features


def make_nst(gen):
    from distiller_zoo.NST import NSTLoss
    s_shapes = [(4, 4, 8, 8), (4, 8, 4, 4), (4, 6, 3, 3)]
    t_shapes = [(4, 6, 6, 6), (4, 8, 4, 4), (4, 12, 5, 5)]
    student = [relu_features(gen, *s, grad=True) for s in s_shapes]
    teacher = [relu_features(gen, *t) for t in t_shapes]
    loss = sum(NSTLoss()(student, teacher))
    inputs = {f"s{k}": f for k, f in enumerate(student)}
    inputs.update({f"t{k}": f for k, f in enumerate(teacher)})
    return dict(inputs=inputs, loss=loss, reference="RepDistiller b84f547 distiller_zoo/NST.py NSTLoss",
                meta={"stages": 3, "kernel": "poly degree 2, no constant"})


def cases():
    return {"nst": make_nst}
