"""DeiT's distillation-token losses (Touvron et al. 2021) reference values: DeiT's own
DistillationLoss (facebookresearch/deit losses.py) with alpha 1, so that the value is the
distillation term alone, in its hard form (CE with the teacher's argmax) and its soft form
(T^2 KL / numel, T 3: the paper's soft setting), on the distillation head's logits of 6 examples
and 7 classes. The teacher "model" hands out fixed logits.
"""
import torch

from .common import randn, source_module

B, C = 6, 7


class FixedTeacher(torch.nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, inputs):
        return self.logits


def make(form, temperature):
    def build(gen):
        losses = source_module("losses")
        x = dict(student=randn(gen, B, C, scale=2.0, grad=True), teacher=randn(gen, B, C, scale=3.0))
        cls_logits = randn(gen, B, C)  # the CLS head's output: weighted by 1 - alpha = 0
        labels = torch.randint(0, C, (B,), generator=gen)
        criterion = losses.DistillationLoss(torch.nn.CrossEntropyLoss(), FixedTeacher(x["teacher"]), form,
                                            alpha=1.0, tau=temperature)
        loss = criterion(None, (cls_logits, x["student"]), labels)
        return dict(inputs=x, loss=loss, reference=f"facebookresearch/deit 7e160fe losses.DistillationLoss ({form})",
                    meta=dict(form=form, T=temperature))
    return build


def cases():
    return {"deit_hard": make("hard", 1.0), "deit_soft": make("soft", 3.0)}
