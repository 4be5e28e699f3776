"""VID reference values (Ahn et al. 2019).

vid_rd: RepDistiller's distiller_zoo/VID.py VIDLoss, one module per stage as train_student.py:219-226
  builds them (VIDLoss(C_s, C_t, C_t)), summed over three stages as helper/loops.py:166-170; the
  stages exercise RD's pool-to-match both ways (student larger, teacher larger) and equal sizes.
vid_td: torchdistill's VIDLoss with Regressor4VID (no pooling: equal sizes), two pairs, weight 1.
The regressor weights and the log-variance parameters are inputs with gradients, named as RD's
criterion ModuleList ("<k>.regressor.{0,2,4}.weight", "<k>.log_scale"); the log-variances are
moved off their initial value so the softplus gradient is exercised.
"""
import torch

from .common import relu_features, randn

INIT_PRED_VAR = 5.0
EPS = 1e-5


def _stage_inputs(inputs, k, named_params, gen, rename=None):
    for name, p in named_params:
        if name.endswith("log_scale") or name.endswith("soft_plus_param"):
            with torch.no_grad():
                p.add_(randn(gen, *p.shape, scale=0.7))
        key = rename(name) if rename else name
        inputs[f"{k}.{key}"] = p


def make_rd(gen):
    from distiller_zoo.VID import VIDLoss
    shapes = [((4, 3, 8, 8), (4, 6, 4, 4)),   # student pooled 8x8 -> 4x4
              ((4, 6, 4, 4), (4, 3, 8, 8)),   # teacher pooled 8x8 -> 4x4
              ((4, 5, 4, 4), (4, 7, 4, 4))]   # equal sizes
    inputs, losses = {}, []
    for k, (ss, ts) in enumerate(shapes):
        crit = VIDLoss(ss[1], ts[1], ts[1], init_pred_var=INIT_PRED_VAR, eps=EPS).double()
        _stage_inputs(inputs, k, list(crit.named_parameters()), gen)
        s = relu_features(gen, *ss, grad=True)
        t = relu_features(gen, *ts)
        inputs[f"s{k}"], inputs[f"t{k}"] = s, t
        losses.append(crit(s, t))
    return dict(inputs=inputs, loss=sum(losses),
                reference="RepDistiller b84f547 distiller_zoo/VID.py VIDLoss (one per stage, summed)",
                meta=dict(stages=len(shapes), init_pred_var=INIT_PRED_VAR, eps=EPS))


def make_td(gen):
    from torchdistill.losses.mid_level import VIDLoss
    from torchdistill.models.wrapper import Regressor4VID
    shapes = [((4, 3, 4, 4), (4, 5, 4, 4)), ((4, 6, 2, 2), (4, 4, 2, 2))]
    inputs, pairs, s_io, t_io = {}, {}, {}, {}
    for k, (ss, ts) in enumerate(shapes):
        reg = Regressor4VID(ss[1], ts[1], ts[1], eps=EPS, init_pred_var=INIT_PRED_VAR).double()
        _stage_inputs(inputs, k, list(reg.named_parameters()), gen,
                      rename=lambda n: "log_scale" if n == "soft_plus_param" else n)
        s = relu_features(gen, *ss, grad=True)
        t = relu_features(gen, *ts)
        inputs[f"s{k}"], inputs[f"t{k}"] = s, t
        s_io[f"regressor{k}"] = {"output": reg(s)}
        t_io[f"layer{k}"] = {"output": t}
        pairs[f"pair{k}"] = {"teacher": {"io": "output", "path": f"layer{k}"},
                             "student": {"io": "output", "path": f"regressor{k}"}, "weight": 1}
    loss = VIDLoss(pairs)(s_io, t_io)
    return dict(inputs=inputs, loss=loss,
                reference="torchdistill 1.1.5 torchdistill.losses.mid_level.VIDLoss + models.wrapper.Regressor4VID",
                meta=dict(stages=len(shapes), init_pred_var=INIT_PRED_VAR, eps=EPS))


def cases():
    return {"vid_rd": make_rd, "vid_td": make_td}
