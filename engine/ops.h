// The op list: every differentiable operation of the engine, on CPU and CUDA with the same
// semantics. Each family lives in engine/ops/<family>.cpp (shape checks, autograd wiring,
// dispatch) with kernels in kernels/cpu/<family>.* and kernels/cuda/<family>.*.
// Binary ops broadcast like NumPy; both operands must share dtype and device (inside a bf16
// autocast scope, engine/autocast.h, each op first casts its operands by its rule).
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <vector>
#include "engine/tensor.h"

namespace retort {

class Generator;

enum class Reduction { none, mean, sum, batchmean };

// ---- elementwise (engine/ops/elementwise.cpp)
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, double s);
Tensor mul(const Tensor& a, double s);
Tensor rsub(double s, const Tensor& a);  // s - a
Tensor rdiv(double s, const Tensor& a);  // s / a
Tensor neg(const Tensor& a);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor sqrt(const Tensor& a);
Tensor pow(const Tensor& a, double exponent);
Tensor abs(const Tensor& a);
Tensor clamp(const Tensor& a, double lo, double hi);  // use +-infinity for one-sided
Tensor relu(const Tensor& a);
Tensor gelu(const Tensor& a);  // exact: x * 0.5 * (1 + erf(x / sqrt(2)))
Tensor sigmoid(const Tensor& a);
Tensor tanh(const Tensor& a);
Tensor maximum(const Tensor& a, const Tensor& b);  // gradient to the larger (a on ties)

inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator+(const Tensor& a, double s) { return add(a, s); }
inline Tensor operator-(const Tensor& a, double s) { return add(a, -s); }
inline Tensor operator*(const Tensor& a, double s) { return mul(a, s); }
inline Tensor operator/(const Tensor& a, double s) { return mul(a, 1.0 / s); }
inline Tensor operator+(double s, const Tensor& a) { return add(a, s); }
inline Tensor operator-(double s, const Tensor& a) { return rsub(s, a); }
inline Tensor operator*(double s, const Tensor& a) { return mul(a, s); }
inline Tensor operator/(double s, const Tensor& a) { return rdiv(s, a); }
inline Tensor operator-(const Tensor& a) { return neg(a); }

// ---- comparisons and selection (engine/ops/select.cpp); masks are u8 (0/1)
Tensor gt(const Tensor& a, double s);                                   // u8 mask a > s
Tensor eq(const Tensor& a, const Tensor& b);                           // u8 mask, broadcast
Tensor where(const Tensor& mask, const Tensor& a, const Tensor& b);   // mask ? a : b (broadcast)
Tensor masked_fill(const Tensor& a, const Tensor& mask, double value);
Tensor index_select(const Tensor& a, int64_t dim, const Tensor& index);  // index: i64 [K]
Tensor gather(const Tensor& a, int64_t dim, const Tensor& index);        // torch.gather semantics

// ---- reductions (engine/ops/reduce.cpp); empty dims = all dims
Tensor sum(const Tensor& a, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& a, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor max(const Tensor& a, const std::vector<int64_t>& dims = {}, bool keepdim = false);  // grad to first max
Tensor var(const Tensor& a, const std::vector<int64_t>& dims = {}, bool keepdim = false, bool unbiased = true);
Tensor argmax(const Tensor& a, int64_t dim, bool keepdim = false);  // i64, no grad
Tensor softmax(const Tensor& a, int64_t dim);
Tensor log_softmax(const Tensor& a, int64_t dim);

// ---- linear algebra (engine/ops/matmul.cpp): cuBLAS(Lt) on GPU, OpenBLAS on CPU
Tensor matmul(const Tensor& a, const Tensor& b);  // [..., m, k] x [..., k, n], batch dims broadcast
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());  // x W^T + b

// ---- convolution and pooling (engine/ops/conv.cpp, engine/ops/pool.cpp); NCHW
struct Conv2dOptions {
  std::array<int64_t, 2> stride{1, 1};
  std::array<int64_t, 2> padding{0, 0};
  std::array<int64_t, 2> dilation{1, 1};
  int64_t groups = 1;
};
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(), const Conv2dOptions& opt = {});
// The transposed convolution (PyTorch's ConvTranspose2d, the adjoint of conv2d): x [N, C_in, H, W],
// weight [C_in, C_out/groups, KH, KW]; output [N, C_out, (H-1)*s - 2p + d*(KH-1) + output_padding + 1, ...].
Tensor conv_transpose2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(), const Conv2dOptions& opt = {},
                        std::array<int64_t, 2> output_padding = {0, 0});
Tensor max_pool2d(const Tensor& x, std::array<int64_t, 2> kernel, std::array<int64_t, 2> stride,
                  std::array<int64_t, 2> padding = {0, 0});
Tensor avg_pool2d(const Tensor& x, std::array<int64_t, 2> kernel, std::array<int64_t, 2> stride,
                  std::array<int64_t, 2> padding = {0, 0}, bool count_include_pad = true);
Tensor adaptive_avg_pool2d(const Tensor& x, std::array<int64_t, 2> output_size);

// ---- normalisation (engine/ops/norm.cpp)
// Training: normalises with batch statistics and updates running_mean/var in place
// (momentum, unbiased var for the running estimate, like PyTorch). Eval: uses running stats.
Tensor batch_norm2d(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                    Tensor running_var, bool training, double momentum = 0.1, double eps = 1e-5);
// relu?(batch_norm2d(x) + residual?) in one pass over the activation, and one pass back (the
// ReLU's mask and the residual's gradient inside batch norm's backward): a ResNet block's
// bn -> relu and bn -> add -> relu. residual (x's shape; may be undefined) under autocast is
// promoted with x as add would. Bitwise the three ops for f32 and f64; bf16 rounds once.
Tensor batch_norm2d_act(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                        Tensor running_var, bool training, double momentum, double eps, const Tensor& residual,
                        bool relu);
// The running-statistics update of a training BatchNorm, in place: r = (1 - momentum) r +
// momentum * batch value, the variance made unbiased with the `count` values per channel.
void update_batch_norm_running_stats(Tensor running_mean, Tensor running_var, const Tensor& mean, const Tensor& var,
                                     double momentum, double count);
// Normalises over the last dim; weight/bias [C] (either may be undefined).
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps = 1e-5);

// ---- attention (engine/ops/attention.cpp): q [B, H, Lq, D], k/v [B, H, Lk, D]
// softmax(q k^T * scale) v; scale <= 0 means 1/sqrt(D). Fused flash-style kernel on CUDA.
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal = false,
                                    double scale = 0.0);

// ---- losses (engine/ops/loss.cpp)
// logits [N, C], target i64 [N]; fused log-softmax; label smoothing eps mixes in uniform/C.
Tensor cross_entropy(const Tensor& logits, const Tensor& target, double label_smoothing = 0.0,
                     Reduction reduction = Reduction::mean);
// A label outside [0, C) is an error at once (one host read per call), except inside a
// DeferLabelCheck scope (the trainer's step, whose labels were checked on the host when the
// data loaded): there it makes the loss NaN on the device, which the step's non-finite check
// reports, and cross_entropy makes no host read.
class DeferLabelCheck {
 public:
  DeferLabelCheck();
  ~DeferLabelCheck();
  DeferLabelCheck(const DeferLabelCheck&) = delete;
  DeferLabelCheck& operator=(const DeferLabelCheck&) = delete;

 private:
  bool prev_;
};
// KL(p || q) with input = log q and target = p (or log p when log_target), PyTorch's kl_div.
Tensor kl_div(const Tensor& log_q, const Tensor& target, Reduction reduction = Reduction::batchmean,
              bool log_target = false);
Tensor mse_loss(const Tensor& a, const Tensor& b, Reduction reduction = Reduction::mean);
Tensor smooth_l1_loss(const Tensor& a, const Tensor& b, double beta = 1.0, Reduction reduction = Reduction::mean);

// ---- geometry (engine/ops/geometry.cpp)
Tensor l2_normalize(const Tensor& x, int64_t dim, double eps = 1e-12);  // x / max(||x||, eps)
Tensor pairwise_sq_dist(const Tensor& a, const Tensor& b);              // [N, D], [M, D] -> [N, M]

// ---- singular values (engine/ops/svd.cpp): small matrices, computed in f64 whatever the dtype
// x [B, M, C] -> {S [B, K] descending, V [B, C, K]}, K = min(M, C), x_b = U_b diag(S_b) V_b^T;
// each right singular vector V[b, :, j] is signed so that its entry of largest |.| is positive.
// Differentiable through S and V (PyTorch's SVD backward with no gradient on U); equal singular
// values leave it ill-defined (inf/NaN, as in PyTorch). Details: kernels/svd.h.
std::vector<Tensor> svd_right(const Tensor& x);

// ---- shape ops (engine/ops/shape.cpp)
Tensor concat(const std::vector<Tensor>& xs, int64_t dim);
Tensor stack(const std::vector<Tensor>& xs, int64_t dim);
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim);
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim);
// pads = {left, right} for the last dim, then {top, bottom} for the one before (PyTorch order).
Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, double value = 0.0);

// ---- random (engine/ops/random.cpp); counter-based, identical bits on CPU and CUDA
Tensor dropout(const Tensor& x, double p, bool training, Generator& gen);
Tensor randn(const Shape& shape, Generator& gen, DType dtype = DType::f32, Device device = Device::cpu());
Tensor rand(const Shape& shape, Generator& gen, DType dtype = DType::f32, Device device = Device::cpu());

// ---- fused inference convolution (engine/ops/conv_fused.cpp); forward only
// act(conv2d(x, weight, bias, opt) + residual), act = relu when `relu` else identity; bias [OC] is
// required, residual (may be undefined) has the output's shape [N, OC, OH, OW]. One kernel on CUDA
// (cuDNN's fused convolution, or conv + one elementwise pass where cuDNN refuses); on the CPU the
// convolution and one pass. f32, f64, bf16 (on the CPU through f32). Refuses inputs that require
// a gradient while grad mode is on: it has no backward (BatchNorm folded into a frozen teacher's
// convolutions, models/fold_batch_norm.h, is what it is for).
Tensor conv2d_bias_act(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& residual, bool relu,
                       const Conv2dOptions& opt = {});

}  // namespace retort
