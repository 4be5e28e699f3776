// Broadcasting helpers shared by the op families.
#include "engine/ops/broadcast.h"
#include "engine/error.h"

namespace retort {

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i + a.size() >= n ? a[i + a.size() - n] : 1;
    int64_t db = i + b.size() >= n ? b[i + b.size() - n] : 1;
    RETORT_CHECK(da == db || da == 1 || db == 1, "{}: shapes {} (first operand) and {} (second operand) do not broadcast",
                 op, shape_str(a), shape_str(b));
    out[i] = da == 1 ? db : da;
  }
  return out;
}

Layout broadcast_layout(const Tensor& t, const Shape& out) {
  Layout l;
  l.ndim = int(out.size());
  size_t lead = out.size() - t.shape().size();
  for (size_t i = 0; i < out.size(); ++i) {
    l.shape[i] = out[i];
    if (i < lead) { l.strides[i] = 0; continue; }
    int64_t have = t.shape()[i - lead];
    l.strides[i] = (have == 1 && out[i] != 1) ? 0 : t.strides()[i - lead];
  }
  return l;
}

void check_same(const Tensor& a, const Tensor& b, const char* op) {
  RETORT_CHECK(a.defined() && b.defined(), "{}: an operand is undefined", op);
  RETORT_CHECK(a.dtype() == b.dtype(), "{}: dtype mismatch, first operand {} vs second operand {}", op, a.str(), b.str());
  RETORT_CHECK(a.device() == b.device(), "{}: device mismatch, first operand {} vs second operand {}", op, a.str(),
               b.str());
}

}  // namespace retort
