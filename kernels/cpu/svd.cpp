// CPU svd_right kernels: the reference for kernels/cuda/svd.cu (semantics in kernels/svd.h).
// The Gram matrix of the smaller side is reduced to tridiagonal form by Householder
// reflections and diagonalised by QL iterations with implicit shifts (the EISPACK tred2/tql2
// procedures, as in JAMA), all in f64; then the singular values, vectors and signs are set up.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>
#include "kernels/cpu/dispatch.h"
#include "kernels/svd.h"

namespace retort::cpu {
namespace {

constexpr double kEps = 0x1p-52;

// a [n x n] row-major symmetric: on return a holds the orthogonal Q with Q^T a Q tridiagonal
// (column j of Q in a[.][j]), d its diagonal and e its sub-diagonal (e[i] couples i-1 and i).
void tridiagonalize(double* a, double* d, double* e, int64_t n) {
  auto A = [&](int64_t i, int64_t j) -> double& { return a[i * n + j]; };
  for (int64_t j = 0; j < n; ++j) d[j] = A(n - 1, j);
  for (int64_t i = n - 1; i > 0; --i) {
    double scale = 0, h = 0;
    for (int64_t k = 0; k < i; ++k) scale += std::abs(d[k]);
    if (scale == 0) {
      e[i] = d[i - 1];
      for (int64_t j = 0; j < i; ++j) {
        d[j] = A(i - 1, j);
        A(i, j) = 0;
        A(j, i) = 0;
      }
    } else {
      for (int64_t k = 0; k < i; ++k) {
        d[k] /= scale;
        h += d[k] * d[k];
      }
      double f = d[i - 1];
      double g = f > 0 ? -std::sqrt(h) : std::sqrt(h);
      e[i] = scale * g;
      h -= f * g;
      d[i - 1] = f - g;
      for (int64_t j = 0; j < i; ++j) e[j] = 0;
      for (int64_t j = 0; j < i; ++j) {
        f = d[j];
        A(j, i) = f;
        g = e[j] + A(j, j) * f;
        for (int64_t k = j + 1; k < i; ++k) {
          g += A(k, j) * d[k];
          e[k] += A(k, j) * f;
        }
        e[j] = g;
      }
      f = 0;
      for (int64_t j = 0; j < i; ++j) {
        e[j] /= h;
        f += e[j] * d[j];
      }
      const double hh = f / (h + h);
      for (int64_t j = 0; j < i; ++j) e[j] -= hh * d[j];
      for (int64_t j = 0; j < i; ++j) {
        f = d[j];
        g = e[j];
        for (int64_t k = j; k < i; ++k) A(k, j) -= f * e[k] + g * d[k];
        d[j] = A(i - 1, j);
        A(i, j) = 0;
      }
    }
    d[i] = h;
  }
  // Accumulate the reflections into Q.
  for (int64_t i = 0; i + 1 < n; ++i) {
    A(n - 1, i) = A(i, i);
    A(i, i) = 1;
    const double h = d[i + 1];
    if (h != 0) {
      for (int64_t k = 0; k <= i; ++k) d[k] = A(k, i + 1) / h;
      for (int64_t j = 0; j <= i; ++j) {
        double g = 0;
        for (int64_t k = 0; k <= i; ++k) g += A(k, i + 1) * A(k, j);
        for (int64_t k = 0; k <= i; ++k) A(k, j) -= g * d[k];
      }
    }
    for (int64_t k = 0; k <= i; ++k) A(k, i + 1) = 0;
  }
  for (int64_t j = 0; j < n; ++j) {
    d[j] = A(n - 1, j);
    A(n - 1, j) = 0;
  }
  A(n - 1, n - 1) = 1;
  e[0] = 0;
}

// Diagonalises the tridiagonal (d, e) of tridiagonalize: d becomes the eigenvalues (unsorted)
// and row i of z [n x n] (on entry Q^T, row i = column i of Q) eigenvector i.
void ql_implicit(double* d, double* e, double* z, int64_t n) {
  for (int64_t i = 1; i < n; ++i) e[i - 1] = e[i];
  e[n - 1] = 0;
  double f = 0, tst1 = 0;
  for (int64_t l = 0; l < n; ++l) {
    tst1 = std::max(tst1, std::abs(d[l]) + std::abs(e[l]));
    int64_t m = l;
    while (m < n - 1 && !(std::abs(e[m]) <= kEps * tst1)) ++m;
    if (m > l) {
      for (int iter = 0; iter < 100; ++iter) {
        double g = d[l];
        double p = (d[l + 1] - g) / (2 * e[l]);
        double r = std::hypot(p, 1.0);
        if (p < 0) r = -r;
        d[l] = e[l] / (p + r);
        d[l + 1] = e[l] * (p + r);
        const double dl1 = d[l + 1];
        double h = g - d[l];
        for (int64_t i = l + 2; i < n; ++i) d[i] -= h;
        f += h;
        p = d[m];
        double c = 1, c2 = 1, c3 = 1, s = 0, s2 = 0;
        const double el1 = e[l + 1];
        for (int64_t i = m - 1; i >= l; --i) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i];
          h = c * p;
          r = std::hypot(p, e[i]);
          e[i + 1] = s * r;
          s = e[i] / r;
          c = p / r;
          p = c * d[i] - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]);
          double* zi = z + i * n;
          double* zj = z + (i + 1) * n;
          for (int64_t k = 0; k < n; ++k) {
            const double t = zj[k];
            zj[k] = s * zi[k] + c * t;
            zi[k] = c * zi[k] - s * t;
          }
        }
        p = -s * s2 * c3 * el1 * e[l] / dl1;
        e[l] = s * p;
        d[l] = c * p;
        if (!(std::abs(e[l]) > kEps * tst1)) break;
      }
    }
    d[l] += f;
    e[l] = 0;
  }
}

// From the eigenpairs (lam[j], row j of z) of the Gram matrix of xd [M x C] (row-major f64):
// sv [1 + C, K] and u [M, K] (u may be null: not wanted) as kernels/svd.h describes. scratch
// holds K * K words. Products are summed in ascending order of their inner index, as on CUDA.
void assemble(const double* xd, const double* lam, const double* z, double* sv, double* u, double* scratch,
              int64_t M, int64_t C) {
  const int64_t K = std::min(M, C);
  const bool tall = M >= C;
  std::vector<int64_t> order(static_cast<size_t>(K));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return lam[a] > lam[b]; });
  const double lam_max = std::max(lam[order[0]], 0.0);
  const double floor = 8.0 * double(K) * kEps * lam_max;
  double* V = sv + K;  // V[c * K + r]
  auto sigma = [&](int64_t r) -> double& { return sv[r]; };
  for (int64_t r = 0; r < K; ++r) {
    const double l = lam[order[size_t(r)]];
    sigma(r) = l > floor ? std::sqrt(l) : 0.0;
  }
  // The eigenvectors are V (tall) or U (wide); the other side is x V / sigma or x^T U / sigma.
  double* E = tall ? V : (u ? u : scratch);  // [L, K], L = C (tall) or M (wide)
  for (int64_t k = 0; k < K; ++k)
    for (int64_t r = 0; r < K; ++r) E[k * K + r] = z[order[size_t(r)] * K + k];
  double* O = tall ? u : V;  // [M, K] (tall) or [C, K] (wide)
  if (O) {
    const int64_t L = tall ? M : C;
    std::fill(O, O + L * K, 0.0);
    for (int64_t m = 0; m < M; ++m)
      for (int64_t c = 0; c < C; ++c) {
        const double xv = xd[m * C + c];
        double* out = tall ? O + m * K : O + c * K;
        const double* in = tall ? E + c * K : E + m * K;
        for (int64_t r = 0; r < K; ++r) out[r] += xv * in[r];
      }
    for (int64_t l = 0; l < L; ++l)
      for (int64_t r = 0; r < K; ++r) O[l * K + r] = sigma(r) > 0 ? O[l * K + r] / sigma(r) : 0.0;
  }
  if (!tall) {
    // Complete the columns of zero singular values to an orthonormal set.
    std::vector<char> done(static_cast<size_t>(K));
    for (int64_t r = 0; r < K; ++r) done[size_t(r)] = sigma(r) > 0;
    std::vector<double> v(static_cast<size_t>(C));
    for (int64_t r = 0; r < K; ++r) {
      if (done[size_t(r)]) continue;
      int64_t best = 0;
      double best_res = -1;
      for (int64_t i = 0; i < C; ++i) {
        double res = 1;
        for (int64_t q = 0; q < K; ++q)
          if (done[size_t(q)]) res -= V[i * K + q] * V[i * K + q];
        if (res > best_res) best_res = res, best = i;
      }
      for (int64_t c = 0; c < C; ++c) v[size_t(c)] = c == best ? 1.0 : 0.0;
      for (int pass = 0; pass < 2; ++pass)
        for (int64_t q = 0; q < K; ++q) {
          if (!done[size_t(q)]) continue;
          double dot = 0;
          for (int64_t c = 0; c < C; ++c) dot += V[c * K + q] * v[size_t(c)];
          for (int64_t c = 0; c < C; ++c) v[size_t(c)] -= dot * V[c * K + q];
        }
      double nrm = 0;
      for (int64_t c = 0; c < C; ++c) nrm += v[size_t(c)] * v[size_t(c)];
      nrm = std::sqrt(nrm);
      for (int64_t c = 0; c < C; ++c) V[c * K + r] = v[size_t(c)] / nrm;
      done[size_t(r)] = 1;
    }
  }
  // Sign: each V_r's entry of largest magnitude is positive.
  for (int64_t r = 0; r < K; ++r) {
    int64_t at = 0;
    for (int64_t c = 1; c < C; ++c)
      if (std::abs(V[c * K + r]) > std::abs(V[at * K + r])) at = c;
    if (V[at * K + r] < 0) {
      for (int64_t c = 0; c < C; ++c) V[c * K + r] = -V[c * K + r];
      if (u)
        for (int64_t m = 0; m < M; ++m) u[m * K + r] = -u[m * K + r];
    }
  }
}

}  // namespace

void svd_right_forward(DType type, const void* x, double* sv, double* u, double* work, int64_t B, int64_t M,
                       int64_t C) {
  const int64_t K = std::min(M, C), per = kernels::svd_right_forward_work(M, C);
  RETORT_CPU_DISPATCH_FLOAT(type, "svd_right", [&] {
    const scalar_t* px = static_cast<const scalar_t*>(x);
    _Pragma("omp parallel for schedule(dynamic) if (B > 1 && M * C * K > 4096)")
    for (int64_t b = 0; b < B; ++b) {
      const scalar_t* xb = px + b * M * C;
      double* svb = sv + b * (1 + C) * K;
      double* ub = u ? u + b * M * K : nullptr;
      double* g = work + b * per;  // the Gram matrix, then Q, then scratch
      double* z = g + K * K;
      double* d = z + K * K;
      double* e = d + K;
      std::vector<double> xd(static_cast<size_t>(M * C));
      bool finite = true;
      for (int64_t i = 0; i < M * C; ++i) {
        xd[size_t(i)] = double(acc_t(xb[i]));
        finite = finite && std::isfinite(xd[size_t(i)]);
      }
      if (!finite) {
        std::fill(svb, svb + (1 + C) * K, std::numeric_limits<double>::quiet_NaN());
        if (ub) std::fill(ub, ub + M * K, std::numeric_limits<double>::quiet_NaN());
        continue;
      }
      // G = x^T x (C x C) or x x^T (M x M): the sum over rows of a [L, K] matrix y of y_l^T y_l,
      // with y = x or x^T, in ascending order of l.
      const bool tall = M >= C;
      const int64_t L = tall ? M : C;
      std::vector<double> xt;
      if (!tall) {
        xt.resize(size_t(M * C));
        for (int64_t m = 0; m < M; ++m)
          for (int64_t c = 0; c < C; ++c) xt[size_t(c * M + m)] = xd[size_t(m * C + c)];
      }
      const double* y = tall ? xd.data() : xt.data();
      std::fill(g, g + K * K, 0.0);
      for (int64_t l = 0; l < L; ++l) {
        const double* row = y + l * K;
        for (int64_t i = 0; i < K; ++i) {
          const double yi = row[i];
          double* gi = g + i * K;
          for (int64_t j = i; j < K; ++j) gi[j] += yi * row[j];
        }
      }
      for (int64_t i = 0; i < K; ++i)
        for (int64_t j = 0; j < i; ++j) g[i * K + j] = g[j * K + i];
      tridiagonalize(g, d, e, K);
      for (int64_t i = 0; i < K; ++i)
        for (int64_t k = 0; k < K; ++k) z[i * K + k] = g[k * K + i];
      ql_implicit(d, e, z, K);
      assemble(xd.data(), d, z, svb, ub, g, M, C);
    }
  });
}

void svd_right_backward(DType type, const double* sv, const double* u, const void* g, void* dx, double* work,
                        int64_t B, int64_t M, int64_t C) {
  const int64_t K = std::min(M, C), per = kernels::svd_right_backward_work(M, C);
  RETORT_CPU_DISPATCH_FLOAT(type, "svd_right backward", [&] {
    const scalar_t* pg = static_cast<const scalar_t*>(g);
    scalar_t* pd = static_cast<scalar_t*>(dx);
    _Pragma("omp parallel for schedule(dynamic) if (B > 1 && M * C * K > 4096)")
    for (int64_t b = 0; b < B; ++b) {
      const double* s = sv + b * (1 + C) * K;
      const double* V = s + K;  // V[c * K + j]
      const double* U = u + b * M * K;
      const scalar_t* gs = pg + b * (1 + C) * K;
      const scalar_t* gV = gs + K;
      double* P = work + b * per;  // P = V^T gV [K, K]
      double* inner = P + K * K;   // [K, K]
      double* H = inner + K * K;   // [K, C]
      double* Vt = H + K * C;      // V^T [K, C]
      double* gVt = Vt + K * C;    // gV^T [K, C]
      for (int64_t c = 0; c < C; ++c)
        for (int64_t j = 0; j < K; ++j) {
          Vt[j * C + c] = V[c * K + j];
          gVt[j * C + c] = double(acc_t(gV[c * K + j]));
        }
      std::fill(P, P + K * K, 0.0);
      std::vector<double> grow(static_cast<size_t>(K));
      for (int64_t c = 0; c < C; ++c) {  // each sum in ascending c
        for (int64_t j = 0; j < K; ++j) grow[size_t(j)] = gVt[j * C + c];
        for (int64_t i = 0; i < K; ++i) {
          const double v = V[c * K + i];
          double* Pi = P + i * K;
          for (int64_t j = 0; j < K; ++j) Pi[j] += v * grow[size_t(j)];
        }
      }
      for (int64_t i = 0; i < K; ++i)
        for (int64_t j = 0; j < K; ++j) {
          if (i == j) {
            inner[i * K + j] = double(acc_t(gs[i]));
            continue;
          }
          const double num = P[i * K + j] - P[j * K + i];
          inner[i * K + j] = num == 0 ? 0.0 : s[i] * num / (s[j] * s[j] - s[i] * s[i]);
        }
      std::vector<double> r(static_cast<size_t>(C));
      for (int64_t i = 0; i < K; ++i) {  // H = inner V^T (+ the M < C term), each sum in ascending j
        double* Hi = H + i * C;
        std::fill(Hi, Hi + C, 0.0);
        for (int64_t j = 0; j < K; ++j) {
          const double a = inner[i * K + j];
          const double* vj = Vt + j * C;
          for (int64_t c = 0; c < C; ++c) Hi[c] += a * vj[c];
        }
        if (M < C) {  // + (gV^T - P^T V^T)_ic / sigma_i
          std::copy(gVt + i * C, gVt + (i + 1) * C, r.begin());
          for (int64_t j = 0; j < K; ++j) {
            const double a = P[j * K + i];
            const double* vj = Vt + j * C;
            for (int64_t c = 0; c < C; ++c) r[size_t(c)] -= a * vj[c];
          }
          for (int64_t c = 0; c < C; ++c)
            if (r[size_t(c)] != 0) Hi[c] += r[size_t(c)] / s[i];
        }
      }
      scalar_t* dxb = pd + b * M * C;
      std::vector<double> acc(static_cast<size_t>(C));
      for (int64_t m = 0; m < M; ++m) {  // dx = U H, each sum in ascending i
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t i = 0; i < K; ++i) {
          const double a = U[m * K + i];
          const double* Hi = H + i * C;
          for (int64_t c = 0; c < C; ++c) acc[size_t(c)] += a * Hi[c];
        }
        for (int64_t c = 0; c < C; ++c) dxb[m * C + c] = scalar_t(acc_t(acc[size_t(c)]));
      }
    }
  });
}

}  // namespace retort::cpu
