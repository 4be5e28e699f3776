"""FT, factor transfer (Kim, Park, Kwak 2018) reference values.

The learned modules' weights are fixture inputs under retort's parameter names
("paraphraser.encoder.0.weight", "translator.encoder.1.bias", ...: RepDistiller's state-dict names),
so retort loads the same values; those that train in the case have gradients.

ft_paraphraser:  stage 1. RepDistiller b84f547 models/util.py Paraphraser(k=0.5, use_bn=False) on a
                 teacher map f_t [4, 6, 4, 4]; loss = nn.MSELoss()(decoder(encoder(f_t)), f_t)
                 (helper/pretrain.py:68-71). Gradients: every paraphraser weight (the transposed
                 convolutions of the decoder included).
ft_repdistiller: stage 2. RepDistiller's Translator(use_bn=True, train mode) on f_s [4, 4, 6, 6],
                 the frozen Paraphraser's encoder on f_t [4, 6, 4, 4] (no gradients), and
                 distiller_zoo/FT.py FactorTransfer() (p1=2, p2=1): the student factor 6x6 is
                 adaptive-average-pooled to 4x4 (overlapping windows). Gradients: f_s and the
                 translator's weights except its conv biases, which feed BatchNorm in training
                 mode (exact gradient 0). Only the paraphraser's encoder weights are stored.
ft_torchdistill: stage 2 with torchdistill 1.1.5 Paraphraser4FactorTransfer(k=0.5, uses_bn=False,
                 uses_decoder=False), Translator4FactorTransfer(uses_bn=True) and
                 torchdistill.losses.mid_level.FTLoss(p=1, reduction='mean'), on maps of equal size
                 (torchdistill does not pool): f_s [4, 4, 4, 4], f_t [4, 6, 4, 4]; gradients as in
                 ft_repdistiller.
"""
import torch

from .common import randn, relu_features, torchdistill_version

RD = "RepDistiller b84f547"
RATE = 0.5


def _randomise_bn(module, gen):
    """BatchNorm affine parameters away from (1, 0), so their gradients say something."""
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.copy_(1.0 + randn(gen, *m.weight.shape, scale=0.2))
                m.bias.copy_(randn(gen, *m.bias.shape, scale=0.1))


def _freeze_biases_before_bn(translator):
    """A conv bias followed by BatchNorm in training mode has an exact gradient of 0 (the batch
    mean removes it): its computed gradient is round-off, which no relative check can compare.
    Those biases stay inputs (retort loads them) without a gradient."""
    for m in translator.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.bias.requires_grad_(False)


def make_paraphraser(gen):
    from models.util import Paraphraser
    f_t = relu_features(gen, 4, 6, 4, 4)
    para = Paraphraser(f_t.shape, k=RATE).double().train()
    _, rec = para(f_t)
    loss = torch.nn.MSELoss()(rec, f_t)
    inputs = {"f_t": f_t}
    inputs.update({"paraphraser." + n: p for n, p in para.named_parameters()})
    return dict(inputs=inputs, loss=loss,
                reference=f"{RD} models/util.py Paraphraser(k=0.5, use_bn=False) + nn.MSELoss (helper/pretrain.py)",
                meta={"phase": "paraphraser", "rate": RATE, "teacher_channels": 6})


def make_repdistiller(gen):
    from models.util import Paraphraser, Translator
    from distiller_zoo.FT import FactorTransfer
    f_s = relu_features(gen, 4, 4, 6, 6, grad=True)
    f_t = relu_features(gen, 4, 6, 4, 4)
    para = Paraphraser(f_t.shape, k=RATE).double().eval()
    para.requires_grad_(False)
    trans = Translator(f_s.shape, f_t.shape, k=RATE).double().train()
    _randomise_bn(trans, gen)
    _freeze_biases_before_bn(trans)
    factor_t = para(f_t, is_factor=True)
    factor_s = trans(f_s)
    loss = FactorTransfer()(factor_s, factor_t)
    inputs = {"f_s": f_s, "f_t": f_t}
    inputs.update({"paraphraser." + n: p for n, p in para.named_parameters() if n.startswith("encoder.")})
    inputs.update({"translator." + n: p for n, p in trans.named_parameters()})
    return dict(inputs=inputs, loss=loss,
                reference=f"{RD} distiller_zoo/FT.py FactorTransfer(p1=2, p2=1) + models/util.py Paraphraser, "
                          "Translator",
                meta={"phase": "transfer", "factor": "repdistiller", "rate": RATE})


def make_torchdistill(gen):
    from torchdistill.losses.mid_level import FTLoss
    from torchdistill.models.wrapper import Paraphraser4FactorTransfer, Translator4FactorTransfer
    f_s = relu_features(gen, 4, 4, 4, 4, grad=True)
    f_t = relu_features(gen, 4, 6, 4, 4)
    para = Paraphraser4FactorTransfer(RATE, 6, uses_bn=False, uses_decoder=False).double().eval()
    para.requires_grad_(False)
    trans = Translator4FactorTransfer(4, int(6 * RATE), uses_bn=True).double().train()
    _randomise_bn(trans, gen)
    _freeze_biases_before_bn(trans)
    loss = FTLoss(p=1, reduction="mean")({"translator": {"output": trans(f_s)}},
                                          {"paraphraser": {"output": para(f_t)}})
    inputs = {"f_s": f_s, "f_t": f_t}
    # torchdistill's encoder without BN is (conv, LeakyReLU) x 3: convs at 0, 2, 4, which are
    # RepDistiller's (and retort's) encoder.0, .3, .6; its translator has RepDistiller's layout.
    for td_index, rd_index in ((0, 0), (2, 3), (4, 6)):
        conv = para.encoder[td_index]
        inputs[f"paraphraser.encoder.{rd_index}.weight"] = conv.weight
        inputs[f"paraphraser.encoder.{rd_index}.bias"] = conv.bias
    inputs.update({"translator.encoder." + n: p for n, p in trans.named_parameters()})
    return dict(inputs=inputs, loss=loss,
                reference=f"torchdistill {torchdistill_version()} torchdistill.losses.mid_level.FTLoss(p=1) + "
                          "torchdistill.models.wrapper.Paraphraser4FactorTransfer(uses_bn=False), "
                          "Translator4FactorTransfer(uses_bn=True)",
                meta={"phase": "transfer", "factor": "torchdistill", "rate": RATE})


def cases():
    return {"ft_paraphraser": make_paraphraser, "ft_repdistiller": make_repdistiller,
            "ft_torchdistill": make_torchdistill}
