"""KDSVD (Lee, Kim, Song 2018) reference values: RepDistiller b84f547 distiller_zoo/KDSVD.py (torchdistill
has no KDSVD), the pair losses summed as RepDistiller's loops.py does. Three stage pairs with equal channel
counts per pair (as KDSVD requires), a wide last stage (H*W < C), square maps (RepDistiller views [H*H, C]).

torch.svd's singular vectors carry LAPACK's arbitrary signs, and the teacher's RBF between stages depends on
them; retort's svd_right fixes each right singular vector's sign so that its entry of largest |.| is
positive. While RepDistiller's module runs, torch.svd is wrapped to apply that convention (V's and U's
columns flipped together), so both sides compute the same function.
"""
import contextlib

import torch

from .common import relu_features


@contextlib.contextmanager
def signed_svd():
    """torch.svd with each right singular vector's entry of largest |.| (the first on ties) positive."""
    plain = torch.svd

    def svd(x, some=True, compute_uv=True):
        u, s, v = plain(x, some=some, compute_uv=compute_uv)
        at = v.detach().abs().argmax(dim=-2, keepdim=True)  # [..., 1, K]; argmax returns the first maximum
        sign = torch.gather(v.detach(), -2, at).sign()
        sign = torch.where(sign == 0, torch.ones_like(sign), sign)
        return u * sign, s, v * sign

    torch.svd = svd
    try:
        yield
    finally:
        torch.svd = plain


def check_distinct(features, keep):
    """The singular values the loss differentiates must be distinct and non-zero (else the SVD's gradient is
    ill-defined): assert a clear gap between all of them."""
    for f in features:
        b, c, h, w = f.shape
        s = torch.linalg.svdvals(f.detach().reshape(b, c, h * w).transpose(1, 2))
        gaps = (s[:, :-1] - s[:, 1:]) / s[:, :1]
        assert s.min() > 1e-3 * s.max() and gaps.min() > 1e-3, f"near-degenerate singular values in {tuple(f.shape)}"


def make(k, s_shapes, t_shapes):
    def build(gen):
        from distiller_zoo.KDSVD import KDSVD
        student = [relu_features(gen, *s, grad=True) for s in s_shapes]
        teacher = [relu_features(gen, *t) for t in t_shapes]
        check_distinct(student, k + 3)
        check_distinct(teacher, k)
        with signed_svd():
            loss = sum(KDSVD(k=k)(student, teacher))
        inputs = {f"s{i}": f for i, f in enumerate(student)}
        inputs.update({f"t{i}": f for i, f in enumerate(teacher)})
        return dict(inputs=inputs, loss=loss,
                    reference="RepDistiller b84f547 distiller_zoo/KDSVD.py KDSVD, torch.svd wrapped to retort's sign "
                              "convention (each right singular vector's largest-|.| entry positive)",
                    meta={"k": k, "stages": 3})
    return build


def cases():
    return {
        # [H*W, C]: 64 x 4 and 16 x 6 (tall), 9 x 12 (wide: 9 singular vectors, the student keeps 4)
        "kdsvd": make(1, [(4, 4, 8, 8), (4, 6, 4, 4), (4, 12, 3, 3)], [(4, 4, 8, 8), (4, 6, 4, 4), (4, 12, 3, 3)]),
        # k = 2: two teacher vectors scaled by their normalised singular values; teacher maps of other sizes
        "kdsvd_k2": make(2, [(3, 3, 4, 4), (3, 5, 4, 4), (3, 6, 2, 2)], [(3, 3, 6, 6), (3, 5, 3, 3), (3, 6, 2, 2)]),
    }
