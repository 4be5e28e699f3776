"""CC (Peng et al. 2019) reference values.

cc: RepDistiller's form (distiller_zoo/CC.py Correlation on models/util.py LinearEmbed outputs, as
    helper/loops.py:162-165 runs it): the student and teacher pooled features each go through a
    Linear embedding D -> feat_dim, then mean_i sum_d |e_s - e_t|_i,d * |e_s - e_t|_{i+1},d.
cc_kernel / cc_kernel_bilinear: torchdistill's CCKDLoss (the kernel form) on nn.Linear embeddings
    (its Linear4CCKD wrapper is nn.Linear on the flattened input), gaussian Taylor kernel
    (gamma 0.4, max_p 2, the sample config's values) or bilinear, reduction 'batchmean'.
The embedding weights are inputs with gradients, so retort loads the same values; the teacher's
features are constants (RepDistiller detaches them, loops.py:115-117).
"""
import torch
import torch.nn.functional as F
from torch.func import functional_call

from .common import randn

B, D_S, D_T, FEAT = 6, 10, 12, 16


def embedding_inputs(gen):
    return dict(
        student=randn(gen, B, D_S, grad=True),
        teacher=randn(gen, B, D_T),
        **{"embed_s.weight": randn(gen, FEAT, D_S, scale=D_S ** -0.5, grad=True),
           "embed_s.bias": randn(gen, FEAT, scale=0.1, grad=True),
           "embed_t.weight": randn(gen, FEAT, D_T, scale=D_T ** -0.5, grad=True),
           "embed_t.bias": randn(gen, FEAT, scale=0.1, grad=True)})


def make_repdistiller(gen):
    from distiller_zoo.CC import Correlation
    from models.util import LinearEmbed
    x = embedding_inputs(gen)
    embed_s, embed_t = LinearEmbed(D_S, FEAT).double(), LinearEmbed(D_T, FEAT).double()
    e_s = functional_call(embed_s, {"linear.weight": x["embed_s.weight"], "linear.bias": x["embed_s.bias"]},
                          (x["student"],))
    e_t = functional_call(embed_t, {"linear.weight": x["embed_t.weight"], "linear.bias": x["embed_t.bias"]},
                          (x["teacher"],))
    loss = Correlation()(e_s, e_t)
    return dict(inputs=x, loss=loss, reference="RepDistiller b84f547 distiller_zoo/CC.py + models/util.py LinearEmbed",
                 meta=dict(form="repdistiller", feat_dim=FEAT), extra=dict(e_s=e_s, e_t=e_t))


def make_kernel(kernel):
    def make(gen):
        from torchdistill.losses.mid_level import CCKDLoss
        x = embedding_inputs(gen)
        e_s = F.linear(x["student"].flatten(1), x["embed_s.weight"], x["embed_s.bias"])
        e_t = F.linear(x["teacher"].flatten(1), x["embed_t.weight"], x["embed_t.bias"])
        config = {"type": kernel, "gamma": 0.4, "max_p": 2} if kernel == "gaussian" else {"type": kernel}
        criterion = CCKDLoss("linear", "linear", kernel_config=config, reduction="batchmean")
        loss = criterion({"linear": {"output": e_s}}, {"linear": {"output": e_t}})
        return dict(inputs=x, loss=loss, reference="torchdistill 1.1.5 torchdistill.losses.mid_level.CCKDLoss",
                    meta=dict(form="kernel", kernel=kernel, gamma=0.4, max_p=2, reduction="batchmean",
                              feat_dim=FEAT),
                    extra=dict(e_s=e_s, e_t=e_t))
    return make


def cases():
    return {"cc": make_repdistiller, "cc_kernel": make_kernel("gaussian"),
            "cc_kernel_bilinear": make_kernel("bilinear")}
