"""FSP in RepDistiller's exact form (distiller_zoo/FSP.py): consecutive maps (here a stem and three
stages of equal widths, sizes 8, 8, 4, 2), the larger of each pair adaptive-average-pooled, the
mean of (G_S - G_T)^2 per pair, summed over the pairs as RepDistiller's init stage does."""
from loss_refs.common import relu_features

REFERENCE = "RepDistiller b84f547 distiller_zoo/FSP.py (summed over pairs, as init.py)"


def make(gen):
    from distiller_zoo.FSP import FSP
    shapes = [(3, 4, 8, 8), (3, 4, 8, 8), (3, 6, 4, 4), (3, 5, 2, 2)]
    student = [relu_features(gen, *s, grad=True) for s in shapes]
    teacher = [relu_features(gen, *s) for s in shapes]
    loss = sum(FSP(shapes, shapes)(student, teacher))
    inputs = {f"student{k}": t for k, t in enumerate(student)}
    inputs.update({f"teacher{k}": t for k, t in enumerate(teacher)})
    return dict(inputs=inputs, loss=loss, reference=REFERENCE, meta={"maps": len(shapes)})


def cases():
    return {"fsp_repdistiller": make}
