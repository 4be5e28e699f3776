"""SP (Tung & Mori 2019) reference value: RepDistiller b84f547 distiller_zoo/SP.py Similarity on the
student's and the teacher's maps of different shapes (only the B x B similarity matrices meet):
||normalize(G_t) - normalize(G_s)||_F^2 / B^2, G = Q Q^T, rows L2-normalised.

torchdistill 1.1.5 SPKDLoss(reduction='batchmean') is NOT the same loss: its matmul_and_normalize
calls normalize(G, 1), and the positional 1 is F.normalize's exponent p, not dim, so it divides
each row of G by its L1 norm (mid_level.py:821-823). Its value on these inputs is written to the
metadata (torchdistill_l1_rows) for the record; retort follows RepDistiller (and the paper's L2).
"""
import torch

from .common import relu_features, torchdistill_version


def make_sp(gen):
    from distiller_zoo.SP import Similarity
    f_s = relu_features(gen, 6, 8, 4, 4, grad=True)
    f_t = relu_features(gen, 6, 16, 2, 2)
    loss = Similarity()([f_s], [f_t])[0].reshape(())
    meta = {}
    try:
        from torchdistill.losses.mid_level import SPKDLoss
        with torch.no_grad():
            td = SPKDLoss("s", "t", reduction="batchmean")({"s": {"output": f_s}}, {"t": {"output": f_t}})
        meta["torchdistill_l1_rows"] = f"{td.item():.17g} (torchdistill {torchdistill_version()} SPKDLoss, L1 rows)"
    except ImportError:
        pass
    return dict(inputs={"s": f_s, "t": f_t}, loss=loss,
                reference="RepDistiller b84f547 distiller_zoo/SP.py Similarity", meta=meta)


def cases():
    return {"sp": make_sp}
