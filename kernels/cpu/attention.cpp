// CPU scaled dot-product attention (the reference for kernels/cuda/attention_flash.cu):
// scores, softmax and the weighted sum per query row; one (batch, head) per OpenMP iteration.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>
#include "kernels/attention.h"
#include "kernels/cpu/dispatch.h"

namespace retort::cpu {

void attention_forward(DType type, const void* q_, const void* k_, const void* v_, int64_t BH, int64_t Lq,
                       int64_t Lk, int64_t D, bool causal, double scale, void* out_, void* lse_) {
  RETORT_CPU_DISPATCH_FLOAT(type, "scaled_dot_product_attention", [&] {
    const scalar_t* q = static_cast<const scalar_t*>(q_);
    const scalar_t* k = static_cast<const scalar_t*>(k_);
    const scalar_t* v = static_cast<const scalar_t*>(v_);
    scalar_t* out = static_cast<scalar_t*>(out_);
    acc_t* lse = static_cast<acc_t*>(lse_);
    _Pragma("omp parallel for if (BH > 1 && BH * Lq * Lk * D > 32768)")
    for (int64_t bh = 0; bh < BH; ++bh) {
      std::vector<acc_t> p(static_cast<size_t>(Lk)), o(static_cast<size_t>(D));
      for (int64_t i = 0; i < Lq; ++i) {
        const scalar_t* qi = q + (bh * Lq + i) * D;
        const int64_t nk = causal ? std::min(Lk, i + 1) : Lk;
        acc_t m = -std::numeric_limits<acc_t>::infinity();
        for (int64_t j = 0; j < nk; ++j) {
          const scalar_t* kj = k + (bh * Lk + j) * D;
          acc_t s = 0;
          _Pragma("omp simd reduction(+ : s)")
          for (int64_t d = 0; d < D; ++d) s += acc_t(qi[d]) * acc_t(kj[d]);
          p[size_t(j)] = s * acc_t(scale);
          m = std::max(m, p[size_t(j)]);
        }
        acc_t l = 0;
        for (int64_t j = 0; j < nk; ++j) l += (p[size_t(j)] = std::exp(p[size_t(j)] - m));
        std::fill(o.begin(), o.end(), acc_t(0));
        acc_t* __restrict orow = o.data();
        for (int64_t j = 0; j < nk; ++j) {
          const scalar_t* vj = v + (bh * Lk + j) * D;
          const acc_t pj = p[size_t(j)];
          _Pragma("omp simd")
          for (int64_t d = 0; d < D; ++d) orow[d] += pj * acc_t(vj[d]);
        }
        scalar_t* oi = out + (bh * Lq + i) * D;
        for (int64_t d = 0; d < D; ++d) oi[d] = scalar_t(o[size_t(d)] / l);
        lse[bh * Lq + i] = m + std::log(l);
      }
    }
  });
}

void attention_backward(DType type, const void* grad_out_, const void* q_, const void* k_, const void* v_,
                        const void* out_, const void* lse_, int64_t BH, int64_t Lq, int64_t Lk, int64_t D, bool causal,
                        double scale, void* grad_q_, void* grad_k_, void* grad_v_) {
  RETORT_CPU_DISPATCH_FLOAT(type, "scaled_dot_product_attention backward", [&] {
    const scalar_t* go = static_cast<const scalar_t*>(grad_out_);
    const scalar_t* q = static_cast<const scalar_t*>(q_);
    const scalar_t* k = static_cast<const scalar_t*>(k_);
    const scalar_t* v = static_cast<const scalar_t*>(v_);
    const scalar_t* out = static_cast<const scalar_t*>(out_);
    const acc_t* lse = static_cast<const acc_t*>(lse_);
    scalar_t* gq = static_cast<scalar_t*>(grad_q_);
    scalar_t* gk = static_cast<scalar_t*>(grad_k_);
    scalar_t* gv = static_cast<scalar_t*>(grad_v_);
    const acc_t sc = acc_t(scale);
    _Pragma("omp parallel for if (BH > 1 && BH * Lq * Lk * D > 32768)")
    for (int64_t bh = 0; bh < BH; ++bh) {
      std::vector<acc_t> dk(size_t(Lk * D), acc_t(0)), dv(size_t(Lk * D), acc_t(0)), dq(static_cast<size_t>(D));
      for (int64_t i = 0; i < Lq; ++i) {
        const scalar_t* qi = q + (bh * Lq + i) * D;
        const scalar_t* goi = go + (bh * Lq + i) * D;
        const scalar_t* oi = out + (bh * Lq + i) * D;
        acc_t di = 0;  // rowsum(dO * O)
        _Pragma("omp simd reduction(+ : di)")
        for (int64_t d = 0; d < D; ++d) di += acc_t(goi[d]) * acc_t(oi[d]);
        std::fill(dq.begin(), dq.end(), acc_t(0));
        const int64_t nk = causal ? std::min(Lk, i + 1) : Lk;
        for (int64_t j = 0; j < nk; ++j) {
          const scalar_t* kj = k + (bh * Lk + j) * D;
          const scalar_t* vj = v + (bh * Lk + j) * D;
          acc_t s = 0, dp = 0;
          _Pragma("omp simd reduction(+ : s, dp)")
          for (int64_t d = 0; d < D; ++d) {
            s += acc_t(qi[d]) * acc_t(kj[d]);
            dp += acc_t(goi[d]) * acc_t(vj[d]);
          }
          const acc_t p = std::exp(s * sc - lse[bh * Lq + i]);
          const acc_t ds = p * (dp - di) * sc;  // gradient wrt the unscaled score q.k
          acc_t* __restrict dqr = dq.data();
          acc_t* __restrict dkj = dk.data() + j * D;
          acc_t* __restrict dvj = dv.data() + j * D;
          _Pragma("omp simd")
          for (int64_t d = 0; d < D; ++d) {
            dqr[d] += ds * acc_t(kj[d]);
            dkj[d] += ds * acc_t(qi[d]);
            dvj[d] += p * acc_t(goi[d]);
          }
        }
        if (gq)
          for (int64_t d = 0; d < D; ++d) gq[(bh * Lq + i) * D + d] = scalar_t(dq[size_t(d)]);
      }
      for (int64_t e = 0; e < Lk * D; ++e) {
        if (gk) gk[bh * Lk * D + e] = scalar_t(dk[size_t(e)]);
        if (gv) gv[bh * Lk * D + e] = scalar_t(dv[size_t(e)]);
      }
    }
  });
}

}  // namespace retort::cpu
