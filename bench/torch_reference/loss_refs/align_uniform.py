"""Alignment/uniformity distillation (Farhat & Chen 2024) with Wang & Isola's own loss functions
(ssnl/align_uniform: align_loss with alpha = 2, uniform_loss with t = 2) on the outputs of the
two projection heads Linear(d, d) -> ReLU -> Linear(d, dim) -> L2-normalise:
L_AU = align(z_s, z_t) + (unif(z_s) + unif(z_t)) / 2. The heads' weights are inputs, so the
gradients of both heads and of the student's features are compared."""
import torch
import torch.nn.functional as F

from loss_refs.common import randn

REFERENCE = "ssnl/align_uniform align_loss + uniform_loss on Farhat & Chen's projection heads"


def make(gen):
    from align_uniform import align_loss, uniform_loss
    d_s, d_t, dim, batch = 6, 5, 4, 7
    w = {}
    for side, d in (("student_head", d_s), ("teacher_head", d_t)):
        bound = 1 / d ** 0.5
        w[f"{side}.fc1.weight"] = randn(gen, d, d, scale=bound, grad=True)
        w[f"{side}.fc1.bias"] = randn(gen, d, scale=bound, grad=True)
        w[f"{side}.fc2.weight"] = randn(gen, dim, d, scale=bound, grad=True)
        w[f"{side}.fc2.bias"] = randn(gen, dim, scale=bound, grad=True)

    def head(side, x):
        h = F.relu(F.linear(x, w[f"{side}.fc1.weight"], w[f"{side}.fc1.bias"]))
        return F.normalize(F.linear(h, w[f"{side}.fc2.weight"], w[f"{side}.fc2.bias"]), dim=1)

    phi_s = randn(gen, batch, d_s, grad=True)
    phi_t = torch.relu(randn(gen, batch, d_t) + 0.5)
    z_s, z_t = head("student_head", phi_s), head("teacher_head", phi_t)
    loss = align_loss(z_s, z_t, alpha=2) + (uniform_loss(z_s, t=2) + uniform_loss(z_t, t=2)) / 2
    inputs = {"phi_s": phi_s, "phi_t": phi_t}
    inputs.update(w)
    return dict(inputs=inputs, loss=loss, reference=REFERENCE, meta={"dim": dim, "t": 2.0})


def cases():
    return {"align_uniform": make}
