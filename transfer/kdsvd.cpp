// KDSVD loss: right singular vectors of each tap, aligned to the teacher's, and the RBF between
// consecutive taps matched (formula and references in transfer/kdsvd.h).
#include "transfer/kdsvd.h"
#include <algorithm>
#include <cmath>
#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/ops.h"

namespace retort::transfer {
namespace {

// Holds the per-pair student projections under the names "tap<p>".
class ProjectionSet : public nn::Module {
 public:
  std::string type_name() const override { return "KdsvdProjections"; }
  void add(const std::string& name, std::shared_ptr<nn::Module> m) { register_module(name, std::move(m)); }
};

// x with its non-finite entries replaced by 0 (RepDistiller's removenan); x - x is 0 exactly
// where x is finite.
Tensor finite_or_zero(const Tensor& x) {
  Tensor finite;
  {
    NoGradGuard ng;
    Tensor d = x.detach();
    finite = eq(sub(d, d), Tensor::scalar(0.0, d.dtype(), d.device()));
  }
  return where(finite, x, Tensor::scalar(0.0, x.dtype(), x.device()));
}

// exp(-(a[b, i, j] - c[b, l, j])^2 / 8) for a [B, C1, k], c [B, C0, k]: [B, C1, C0, k].
Tensor rbf(const Tensor& a, const Tensor& c) {
  Tensor d = sub(a.unsqueeze(2), c.unsqueeze(1));
  return exp(mul(mul(d, d), -1.0 / 8.0));
}

}  // namespace

KdsvdBasis kdsvd_basis(const Tensor& f, int64_t n) {
  RETORT_CHECK(f.dim() == 4, "kdsvd: expects a map [B, C, H, W], got {}", f.str());
  RETORT_CHECK(n >= 1, "kdsvd: needs at least one singular vector, asked for {}", n);
  const int64_t B = f.size(0), C = f.size(1), HW = f.size(2) * f.size(3);
  auto sv = svd_right(f.reshape({B, C, HW}).transpose(1, 2));  // M = [B, H*W, C]
  const int64_t keep = std::min(n, sv[0].size(1));
  Tensor s = finite_or_zero(sv[0].slice(1, 0, keep));
  Tensor v = finite_or_zero(sv[1].slice(2, 0, keep));
  return {l2_normalize(s, 1), l2_normalize(v, 1)};
}

Tensor kdsvd_align(const Tensor& v_s, const Tensor& v_t) {
  RETORT_CHECK(v_s.dim() == 3 && v_t.dim() == 3 && v_s.size(0) == v_t.size(0) && v_s.size(1) == v_t.size(1),
               "kdsvd: student vectors {} and teacher vectors {} must be [B, C, n] with the same B and C", v_s.str(),
               v_t.str());
  Tensor select;
  {
    NoGradGuard ng;
    Tensor cos = matmul(v_s.detach().transpose(1, 2), v_t.detach());  // [B, n_s, k]
    Tensor mag = abs(cos);
    Tensor top = eq(mag, max(mag, {1}, /*keepdim=*/true));
    const Tensor one = Tensor::scalar(1.0, cos.dtype(), cos.device());
    const Tensor zero = Tensor::scalar(0.0, cos.dtype(), cos.device());
    Tensor sign = where(gt(cos, 0.0), one, where(gt(neg(cos), 0.0), neg(one), zero));
    select = where(top, sign, zero);
  }
  return matmul(v_s, select);
}

Tensor kdsvd_loss(const std::vector<Tensor>& student_maps, const std::vector<Tensor>& teacher_maps, int64_t k) {
  RETORT_CHECK(student_maps.size() == teacher_maps.size() && student_maps.size() >= 2,
               "kdsvd: needs at least two tap pairs and as many student as teacher maps, got {} and {}",
               student_maps.size(), teacher_maps.size());
  RETORT_CHECK(k >= 1, "kdsvd: k must be at least 1, got {}", k);
  const int64_t B = student_maps[0].size(0);
  Tensor total, prev_s, prev_t;
  for (size_t p = 0; p < student_maps.size(); ++p) {
    const Tensor &fs = student_maps[p], &ft = teacher_maps[p];
    RETORT_CHECK(fs.dim() == 4 && ft.dim() == 4 && fs.size(0) == B && ft.size(0) == B && fs.size(1) == ft.size(1),
                 "kdsvd: pair {}: student map {} and teacher map {} must be [B, C, H, W] with the same B and C "
                 "(the singular vectors of both live in R^C)",
                 p, fs.str(), ft.str());
    KdsvdBasis t;
    {
      NoGradGuard ng;
      t = kdsvd_basis(ft.detach(), k);
    }
    RETORT_CHECK(t.v.size(2) == k, "kdsvd: pair {}: the teacher map {} has only {} singular vectors, fewer than k = {}",
                 p, ft.str(), t.v.size(2), k);
    KdsvdBasis s = kdsvd_basis(fs, k + 3);
    Tensor scale = t.s.unsqueeze(1);  // [B, 1, k]
    Tensor vt = mul(t.v, scale);
    Tensor vs = mul(kdsvd_align(s.v, t.v), scale);
    if (p > 0) {
      Tensor rt;
      {
        NoGradGuard ng;
        rt = rbf(vt, prev_t);
      }
      Tensor d = sub(rbf(vs, prev_s), rt);
      // The terms lie in [0, 1] where finite; a non-finite one (equal singular values) counts 0.
      // The mask is formed every step: deciding on the host whether it is needed would cost a
      // host read (a GPU synchronisation) per tap pair.
      Tensor sq = mul(d, d), total_sq = sum(finite_or_zero(sq));
      Tensor term = mul(total_sq, 1.0 / double(B));
      total = total.defined() ? add(total, term) : term;
    }
    prev_s = vs;
    prev_t = vt;
  }
  return total;
}

KdsvdLoss::KdsvdLoss(std::string teacher, const std::vector<models::TapInfo>& s,
                     const std::vector<models::TapInfo>& t, int64_t k, bool project, Device device, uint64_t seed)
    : taps_(std::move(teacher), "kdsvd"), k_(k) {
  RETORT_CHECK(s.size() == t.size() && s.size() >= 2, "kdsvd: needs at least two taps on each side, got {} and {}",
               s.size(), t.size());
  RETORT_CHECK(k >= 1, "kdsvd: k must be at least 1, got {}", k);
  Generator gen(seed ^ 0x5dull);
  auto set = std::make_shared<ProjectionSet>();
  for (size_t p = 0; p < s.size(); ++p) {
    taps_.add(s[p], t[p]);
    const Shape ms = tap_map_shape(s[p], "kdsvd: student"), mt = tap_map_shape(t[p], "kdsvd: teacher");
    RETORT_CHECK(std::min(mt[2] * mt[3], mt[1]) >= k,
                 "kdsvd: teacher tap '{}' {} gives [H*W, C] = [{}, {}] matrices with {} singular vectors, fewer than "
                 "k = {}",
                 t[p].name, shape_str(t[p].shape), mt[2] * mt[3], mt[1], std::min(mt[2] * mt[3], mt[1]), k);
    std::shared_ptr<nn::Module> proj;
    if (ms[1] != mt[1]) {
      RETORT_CHECK(project,
                   "kdsvd: student tap '{}' {} has {} channels but teacher tap '{}' {} has {}: KDSVD compares right "
                   "singular vectors in R^C, so the channel counts must agree (RepDistiller's pairs have equal ones); "
                   "set project = true to map the student's channels with a learned 1x1 conv + BN",
                   s[p].name, shape_str(s[p].shape), ms[1], t[p].name, shape_str(t[p].shape), mt[1]);
      proj = std::make_shared<ChannelProjection>(ms[1], mt[1], gen, /*batch_norm=*/true);
      set->add("tap" + std::to_string(p), proj);
    }
    projection_of_.push_back(proj);
  }
  projections_ = set;
  projections_->to(device);
}

Tensor KdsvdLoss::compute(const std::vector<Tensor>& student_maps, const std::vector<Tensor>& teacher_maps) {
  RETORT_CHECK(student_maps.size() == taps_.size() && teacher_maps.size() == taps_.size(),
               "kdsvd: {} student and {} teacher maps for {} tap pairs", student_maps.size(), teacher_maps.size(),
               taps_.size());
  std::vector<Tensor> s, t;
  for (size_t p = 0; p < taps_.size(); ++p) {
    Tensor m = taps_.student_map(p, student_maps[p]);
    if (projection_of_[p]) m = projection_of_[p]->forward(m);
    s.push_back(m);
    t.push_back(taps_.teacher_map(p, teacher_maps[p]));
  }
  return kdsvd_loss(s, t, k_);
}

Tensor KdsvdLoss::compute(const StepInputs& in) {
  auto x = taps_.gather(in);
  return compute(x.student, x.teacher);
}

std::unique_ptr<KdsvdLoss> make_kdsvd_loss(const models::Model& student, const models::Model& teacher,
                                           const std::string& teacher_name,
                                           const std::vector<std::string>& student_taps,
                                           const std::vector<std::string>& teacher_taps, const Shape& input, int64_t k,
                                           bool project, Device device, uint64_t seed) {
  RETORT_CHECK(student_taps.size() == teacher_taps.size(),
               "kdsvd: {} student taps [{}] but {} teacher taps [{}]; pair p matches student tap p with teacher tap p",
               student_taps.size(), fmt::join(student_taps, ", "), teacher_taps.size(), fmt::join(teacher_taps, ", "));
  RETORT_CHECK(student_taps.size() >= 2, "kdsvd: needs at least two taps (one consecutive pair), got [{}]",
               fmt::join(student_taps, ", "));
  auto taps = find_tap_pairs(student, teacher, teacher_name, student_taps, teacher_taps, input, "kdsvd",
                             VitTapHint::stage_taps);
  return std::make_unique<KdsvdLoss>(teacher_name, taps.student, taps.teacher, k, project, device, seed);
}

void register_kdsvd_loss() {
  const std::vector<std::string> stages{"stage1", "stage2", "stage3"};
  register_loss(
      "kdsvd",
      {ParamSpec("teacher", ValueKind::model, kRequired, "the teacher whose singular vectors are matched"),
       ParamSpec("student_taps", ValueKind::strings, ParamValue(stages), "the student's taps (maps or ViT tokens)"),
       ParamSpec("teacher_taps", ValueKind::strings, ParamValue(stages),
                 "the teacher's taps, pair p with student_taps[p]"),
       ParamSpec("k", ValueKind::integer, ParamValue(kKdsvdDefaultK),
                 "teacher singular vectors kept per tap (the student keeps k + 3)")
           .at_least(1),
       ParamSpec("project", ValueKind::boolean, ParamValue(true),
                 "map student channels to the teacher's with a learned 1x1 conv + BN where they differ")},
      "KDSVD (Lee 2018): RBF between consecutive taps' top right singular vectors, student aligned to teacher",
      [](const BuildContext& c) -> std::unique_ptr<Loss> {
        return with_recipe_line(c, [&] {
          const models::Model& teacher = stage_teacher(c);
          return make_kdsvd_loss(stage_student(c), teacher, c.args->string("teacher"), c.args->strings("student_taps"),
                                 c.args->strings("teacher_taps"), c.input_shape, c.args->integer("k"),
                                 c.args->boolean("project"), c.device, c.seed);
        });
      },
      kKdsvdDefaultWeight);
}

}  // namespace retort::transfer
