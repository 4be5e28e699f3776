// Kernel family "svd": singular values and right singular vectors of a batch of small matrices
// x [B, M, C] (the op svd_right, engine/ops/svd.cpp), K = min(M, C), and the gradient.
//
// Both backends compute in f64 whatever the element type, through the symmetric
// eigendecomposition of the Gram matrix of the smaller side: G = x^T x (C x C) when M >= C,
// G = x x^T (M x M) when M < C. The CPU reference reduces G to tridiagonal form by Householder
// reflections and diagonalises it by implicit QL iterations; the CUDA kernel runs cyclic Jacobi
// rotations in round-robin order, one block per matrix. Then, for either:
//   sigma_j = sqrt(lambda_j), descending (ties keep the eigen-solver's order);
//   lambda_j <= 8 K 2^-52 lambda_max (below what G resolves) gives sigma_j = 0 exactly;
//   M >= C: V = the eigenvectors, U_j = x V_j / sigma_j (U_j = 0 when sigma_j = 0);
//   M <  C: U = the eigenvectors, V_j = x^T U_j / sigma_j; for sigma_j = 0, V_j is completed to
//           an orthonormal set: the unit vector e_i whose residual after projecting out the other
//           columns is longest (lowest i on ties), projected twice and normalised;
//   sign: each V_j is flipped (with U_j) so that its entry of largest |.| is positive (the
//         lowest index among equal magnitudes).
// A matrix with a non-finite entry gives NaN everywhere in its outputs.
#pragma once
#include <cstdint>
#include "core/dtype.h"
#include "kernels/family.h"

namespace retort::kernels {

// f64 words of scratch each function needs per matrix (the caller passes B times this).
inline int64_t svd_right_forward_work(int64_t M, int64_t C) {
  const int64_t K = M < C ? M : C;
  return 2 * K * K + 2 * K;
}
inline int64_t svd_right_backward_work(int64_t M, int64_t C) {
  const int64_t K = M < C ? M : C;
  return 2 * K * K + 3 * K * C;
}

// x [B, M, C] contiguous, of `type`. Writes, in f64:
//   sv [B, 1 + C, K]: row 0 the singular values (descending), rows 1..C the right singular
//                     vectors V [C, K] (column j goes with sv[b, 0, j]);
//   u  [B, M, K]:     the left singular vectors (kept for the backward); null when not wanted.
using SvdRightForward = void(DType type, const void* x, double* sv, double* u, double* work, int64_t B, int64_t M,
                             int64_t C);

// g [B, 1 + C, K] of `type`: the gradient with respect to sv's layout (row 0: gS, rows 1..C:
// gV); dx [B, M, C] of `type`. With P = V^T gV (K x K):
//   inner_ij = sigma_i (P_ij - P_ji) / (sigma_j^2 - sigma_i^2)  (i != j; 0 when P_ij - P_ji == 0)
//   inner_ii = gS_i
//   dx = U inner V^T + [M < C] U diag(1/sigma) (gV^T - P^T V^T)   (a zero row of the bracket
//        adds nothing, also where sigma_i = 0)
// This is PyTorch's svd_backward with gU = 0. Equal singular values give +-inf or NaN where a
// non-zero numerator meets a zero denominator, as there; where the numerator is exactly zero
// (two equal singular values whose vectors the gradient does not involve, e.g. two zero ones
// past the columns a loss reads) the term is 0 here and NaN in PyTorch.
using SvdRightBackward = void(DType type, const double* sv, const double* u, const void* g, void* dx, double* work,
                              int64_t B, int64_t M, int64_t C);

}  // namespace retort::kernels

RETORT_DECLARE_KERNEL(svd_right_forward, SvdRightForward)
RETORT_DECLARE_KERNEL(svd_right_backward, SvdRightBackward)
