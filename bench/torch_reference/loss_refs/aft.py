"""AFT with the authors' code (amazon-science/adaptive-feature-transfer, prior.py KernelPrior):
-log_prob = sqrt(mean((K_s - K_t)^2) + 1e-8) for the linear and rbf kernels, rho = sigmoid(s)
learned (learn_scales=True), s away from 0 so that rho is not uniform; two teachers' features
concatenated as the authors' feature dataset does."""
import torch

from loss_refs.common import randn

REFERENCE = "amazon-science/adaptive-feature-transfer prior.py KernelPrior.log_prob (negated, prec = 1)"


class _Features:
    """The part of the authors' feature dataset that KernelPrior reads."""
    def __init__(self, dims):
        self.feat_dims = dims
        self.num_features = sum(dims)

    def __len__(self):
        return 6


def make_case(kernel):
    def make(gen):
        from prior import KernelPrior
        dims = [5, 3]  # two teachers, concatenated
        prior = KernelPrior(_Features(dims), prec=1.0, learn_scales=True, kernel=kernel).double()
        with torch.no_grad():
            prior.s.copy_(randn(gen, sum(dims)))
        phi = randn(gen, 6, 4, grad=True)
        psi = randn(gen, 6, sum(dims), scale=2.0)
        loss = -prior.log_prob(phi, psi)
        return dict(inputs={"phi": phi, "psi": psi, "s": prior.s}, loss=loss, reference=REFERENCE,
                    meta={"kernel": kernel})
    return make


def cases():
    return {"aft_kernel": make_case("linear"), "aft_rbf": make_case("rbf")}
