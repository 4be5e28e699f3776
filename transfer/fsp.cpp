// FSP loss: Gram matrices between consecutive maps of each network, squared Frobenius distance.
#include "transfer/fsp.h"
#include <numeric>
#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/ops.h"

namespace retort::transfer {
namespace {

// Holds the per-tap student projections under the names "tap<k>".
class ProjectionSet : public nn::Module {
 public:
  std::string type_name() const override { return "FspProjections"; }
  void add(const std::string& name, std::shared_ptr<nn::Module> m) { register_module(name, std::move(m)); }
};

Tensor random_permutation(int64_t n, Generator& gen, Device device) {
  std::vector<int64_t> p(static_cast<size_t>(n));
  std::iota(p.begin(), p.end(), 0);
  for (int64_t i = n - 1; i > 0; --i) std::swap(p[size_t(i)], p[size_t(gen.randint(i + 1))]);
  return Tensor::from_i64(p, {n}, device);
}

}  // namespace

FspPairing parse_fsp_pairing(const std::string& s) {
  if (s == "repdistiller") return FspPairing::repdistiller;
  if (s == "paper") return FspPairing::paper;
  fail("fsp: pairing must be \"repdistiller\" or \"paper\", got \"{}\"", s);
}

Tensor fsp_matrix(const Tensor& f1, const Tensor& f2) {
  RETORT_CHECK(f1.dim() == 4 && f2.dim() == 4 && f1.size(0) == f2.size(0) && f1.size(2) == f2.size(2) &&
                   f1.size(3) == f2.size(3),
               "fsp_matrix: maps {} and {} must be [B, m, h, w] and [B, n, h, w] with the same B, h, w", f1.str(),
               f2.str());
  const int64_t B = f1.size(0), hw = f1.size(2) * f1.size(3);
  Tensor a = f1.reshape({B, f1.size(1), hw});
  Tensor b = f2.reshape({B, f2.size(1), hw});
  return mul(matmul(a, b.transpose(1, 2)), 1.0 / double(hw));
}

std::vector<Tensor> fsp_matrices(const std::vector<Tensor>& maps, PoolMode pool) {
  RETORT_CHECK(maps.size() >= 2, "fsp: needs at least two maps, got {}", maps.size());
  std::vector<Tensor> out;
  for (size_t k = 0; k + 1 < maps.size(); ++k) {
    const Tensor &a = maps[k], &b = maps[k + 1];
    RETORT_CHECK(a.dim() == 4 && b.dim() == 4, "fsp: pair {} needs maps, got {} and {}", k, a.str(), b.str());
    const int64_t h = std::min(a.size(2), b.size(2)), w = std::min(a.size(3), b.size(3));
    out.push_back(fsp_matrix(pool_to(a, h, w, pool), pool_to(b, h, w, pool)));
  }
  return out;
}

FspReduction parse_fsp_reduction(const std::string& s) {
  if (s == "sum") return FspReduction::sum;
  if (s == "mean") return FspReduction::mean;
  fail("fsp: reduction must be \"sum\" (paper) or \"mean\" (RepDistiller), got \"{}\"", s);
}

std::vector<Tensor> fsp_pair_losses(const std::vector<Tensor>& s, const std::vector<Tensor>& t,
                                    FspReduction reduction) {
  RETORT_CHECK(!s.empty() && s.size() == t.size(), "fsp: {} student matrices but {} teacher matrices", s.size(),
               t.size());
  std::vector<Tensor> terms;
  for (size_t k = 0; k < s.size(); ++k) {
    RETORT_CHECK(s[k].shape() == t[k].shape(), "fsp: pair {}: student matrix {} and teacher matrix {} differ", k,
                 s[k].str(), t[k].str());
    Tensor d = sub(t[k].detach(), s[k]);
    const double n = reduction == FspReduction::sum ? double(s[k].size(0)) : double(s[k].numel());
    terms.push_back(mul(sum(mul(d, d)), 1.0 / n));
  }
  return terms;
}

namespace {
Tensor sum_of(const std::vector<Tensor>& terms) {
  Tensor total;
  for (const Tensor& term : terms) total = total.defined() ? add(total, term) : term;
  return total;
}
}  // namespace

Tensor fsp_loss(const std::vector<Tensor>& s, const std::vector<Tensor>& t, FspReduction reduction) {
  return sum_of(fsp_pair_losses(s, t, reduction));
}

FspLoss::FspLoss(std::string teacher, const std::vector<models::TapInfo>& s, const std::vector<models::TapInfo>& t,
                 const FspOptions& options, Device device, uint64_t seed)
    : taps_(std::move(teacher), "fsp"), options_(options) {
  RETORT_CHECK(s.size() == t.size() && s.size() >= 2, "fsp: needs at least two taps on each side, got {} and {}",
               s.size(), t.size());
  Generator gen(seed ^ 0xf5bull);
  auto set = std::make_shared<ProjectionSet>();
  std::vector<int64_t> teacher_channels;
  for (size_t k = 0; k < s.size(); ++k) {
    taps_.add(s[k], t[k]);
    const int64_t cs = tap_map_shape(s[k], "fsp: student")[1], ct = tap_map_shape(t[k], "fsp: teacher")[1];
    teacher_channels.push_back(ct);
    std::shared_ptr<nn::Module> proj;
    RETORT_CHECK(cs == ct || !options_.repdistiller_exact,
                 "fsp (form = \"repdistiller\"): RepDistiller's FSP needs equal channel counts, but student tap '{}' "
                 "has {} and teacher tap '{}' {}; form = \"retort\" maps them with learned 1x1 projections (retort's "
                 "extension)",
                 s[k].name, cs, t[k].name, ct);
    if (cs != ct) {
      proj = std::make_shared<ChannelProjection>(cs, ct, gen, /*batch_norm=*/true);
      set->add("tap" + std::to_string(k), proj);
    }
    projection_of_.push_back(proj);
  }
  projections_ = set;
  projections_->to(device);
  if (options_.shuffle) {
    Generator pg(options_.shuffle_seed * 0x9e3779b97f4a7c15ull + 0x5a1ull);
    for (size_t k = 0; k + 1 < teacher_channels.size(); ++k) {
      row_perm_.push_back(random_permutation(teacher_channels[k], pg, device));
      col_perm_.push_back(random_permutation(teacher_channels[k + 1], pg, device));
    }
  }
}

std::vector<Tensor> FspLoss::teacher_matrices(const std::vector<Tensor>& teacher_maps) const {
  RETORT_CHECK(teacher_maps.size() == taps_.size(), "fsp: {} teacher maps for {} taps", teacher_maps.size(),
               taps_.size());
  NoGradGuard no_grad;
  std::vector<Tensor> maps;
  for (size_t k = 0; k < taps_.size(); ++k) maps.push_back(taps_.teacher_map(k, teacher_maps[k]));
  std::vector<Tensor> g = fsp_matrices(maps, pool());
  if (options_.shuffle)
    for (size_t k = 0; k < g.size(); ++k) g[k] = index_select(index_select(g[k], 1, row_perm_[k]), 2, col_perm_[k]);
  return g;
}

std::vector<Tensor> FspLoss::student_matrices(const std::vector<Tensor>& student_maps) const {
  RETORT_CHECK(student_maps.size() == taps_.size(), "fsp: {} student maps for {} taps", student_maps.size(),
               taps_.size());
  std::vector<Tensor> maps;
  for (size_t k = 0; k < taps_.size(); ++k) {
    Tensor m = taps_.student_map(k, student_maps[k]);
    if (projection_of_[k]) m = projection_of_[k]->forward(m);
    maps.push_back(m);
  }
  return fsp_matrices(maps, pool());
}

Tensor FspLoss::compute(const std::vector<Tensor>& student_maps, const std::vector<Tensor>& teacher_maps) {
  const std::vector<Tensor> terms =
      fsp_pair_losses(student_matrices(student_maps), teacher_matrices(teacher_maps), options_.reduction);
  last_pairs_.clear();
  for (const Tensor& term : terms) last_pairs_.push_back(term.detach());
  return sum_of(terms);
}

Tensor FspLoss::compute(const StepInputs& in) {
  auto x = taps_.gather(in);
  return compute(x.student, x.teacher);
}

std::map<std::string, Tensor> FspLoss::step_stats(const StepInputs& in) const {
  (void)in;  // the step's inputs are those of the last compute()
  std::map<std::string, Tensor> out;
  for (size_t k = 0; k < last_pairs_.size(); ++k) out["pair" + std::to_string(k)] = last_pairs_[k];
  return out;
}

std::map<std::string, Tensor> FspLoss::pictures(const StepInputs& in) const {
  auto x = taps_.gather(in);
  std::vector<Tensor> s = student_matrices(x.student), t = teacher_matrices(x.teacher);
  std::map<std::string, Tensor> out;
  for (size_t k = 0; k < s.size(); ++k) {
    out["teacher.pair" + std::to_string(k)] = mean(t[k].detach(), {0});
    out["student.pair" + std::to_string(k)] = mean(s[k].detach(), {0});
  }
  return out;
}

std::vector<std::string> fsp_default_taps(const models::Model& model, const Shape& input) {
  std::vector<std::string> out;
  auto infos = model.tap_info(input);
  auto has = [&](const std::string& n) {
    for (const auto& i : infos)
      if (i.name == n) return true;
    return false;
  };
  if (has("stem")) out.push_back("stem");
  for (int k = 1; has("stage" + std::to_string(k)); ++k) out.push_back("stage" + std::to_string(k));
  return out;
}

std::unique_ptr<FspLoss> make_fsp_loss(const models::Model& student, const models::Model& teacher,
                                       const std::string& teacher_name, std::vector<std::string> student_taps,
                                       std::vector<std::string> teacher_taps, const Shape& input,
                                       const FspOptions& options, Device device, uint64_t seed) {
  if (student_taps.empty() && teacher_taps.empty()) {
    student_taps = fsp_default_taps(student, input);
    teacher_taps = fsp_default_taps(teacher, input);
    RETORT_CHECK(student_taps == teacher_taps && student_taps.size() >= 2,
                 "fsp: the default taps (stem, stage1..stageN) differ: the student ({}) has [{}], teacher '{}' ({}) "
                 "has [{}]; FSP pairs the same taps in both networks -- give `taps`, or `student_taps` and "
                 "`teacher_taps` of equal length",
                 student.family(), fmt::join(student_taps, ", "), teacher_name, teacher.family(),
                 fmt::join(teacher_taps, ", "));
  }
  if (teacher_taps.empty()) teacher_taps = student_taps;
  RETORT_CHECK(!student_taps.empty(), "fsp: teacher_taps [{}] given without student_taps", fmt::join(teacher_taps, ", "));
  RETORT_CHECK(student_taps.size() == teacher_taps.size(),
               "fsp: {} student taps [{}] but {} teacher taps [{}]; pair k matches student tap k with teacher tap k",
               student_taps.size(), fmt::join(student_taps, ", "), teacher_taps.size(), fmt::join(teacher_taps, ", "));
  RETORT_CHECK(student_taps.size() >= 2, "fsp: needs at least two taps (one pair), got [{}]",
               fmt::join(student_taps, ", "));
  auto taps = find_tap_pairs(student, teacher, teacher_name, student_taps, teacher_taps, input, "fsp");
  return std::make_unique<FspLoss>(teacher_name, taps.student, taps.teacher, options, device, seed);
}

void register_fsp_loss() {
  register_loss(
      "fsp",
      {ParamSpec("teacher", ValueKind::model, kRequired, "the teacher model whose FSP matrices are matched"),
       ParamSpec("pairing", ValueKind::string, "repdistiller",
                 "repdistiller (consecutive taps, average pooling) | paper (same pairs, max pooling)")
           .one_of({"repdistiller", "paper"}),
       ParamSpec("taps", ValueKind::strings, kOptional, "tap list overriding stem, stage1..stageN (both networks)"),
       ParamSpec("student_taps", ValueKind::strings, kOptional, "the student's taps, when its names differ"),
       ParamSpec("teacher_taps", ValueKind::strings, kOptional, "the teacher's taps, pair k with student_taps[k]"),
       ParamSpec("shuffle", ValueKind::boolean, ParamValue(false), "permute the teacher matrices' rows/columns (ensembles)"),
       ParamSpec("shuffle_seed", ValueKind::integer, ParamValue(int64_t{0}), "seed of the shuffle permutations")
           .at_least(0),
       ParamSpec("reduction", ValueKind::string, kOptional,
                 "sum (default of form retort; the paper: batch mean of squared Frobenius norms) | mean (RepDistiller: "
                 "mean over b, i, j)")
           .one_of({"sum", "mean"}),
       ParamSpec("form", ValueKind::string, "retort",
                 "retort (sum, learned projections for unequal widths) | repdistiller (RepDistiller's exact FSP: mean, "
                 "average pooling, equal widths; use weight 1)")
           .one_of({"retort", "repdistiller"})},
      "FSP (Yim 2017): (1/B) sum over consecutive tap pairs ||G_T - G_S||_F^2, G = F1 F2^T / (h*w)",
      [](const BuildContext& c) -> std::unique_ptr<Loss> {
        return with_recipe_line(c, [&] {
          const models::Model& teacher = stage_teacher(c);
          const models::Model& student = stage_student(c);
          FspOptions o;
          o.pairing = parse_fsp_pairing(c.args->string("pairing"));
          o.shuffle = c.args->boolean("shuffle");
          o.shuffle_seed = uint64_t(c.args->integer("shuffle_seed"));
          o.repdistiller_exact = c.args->string("form") == "repdistiller";
          const std::string reduction =
              c.args->has("reduction") ? c.args->string("reduction") : (o.repdistiller_exact ? "mean" : "sum");
          o.reduction = parse_fsp_reduction(reduction);
          RETORT_CHECK(!o.repdistiller_exact || (reduction == "mean" && o.pairing == FspPairing::repdistiller &&
                                                 !o.shuffle),
                       "fsp: form = \"repdistiller\" is RepDistiller's exact FSP (reduction \"mean\", pairing "
                       "\"repdistiller\", no shuffle); remove the conflicting key");
          std::vector<std::string> taps = given_taps(*c.args, "taps"), st = given_taps(*c.args, "student_taps"),
                                   tt = given_taps(*c.args, "teacher_taps");
          if (!taps.empty()) {
            RETORT_CHECK(st.empty() && tt.empty(),
                         "fsp: give either `taps` (the same names in both networks) or `student_taps` and "
                         "`teacher_taps`, not both");
            st = tt = taps;
          }
          RETORT_CHECK(st.empty() == tt.empty(),
                       "fsp: `student_taps` and `teacher_taps` go together (pair k: student_taps[k] with "
                       "teacher_taps[k])");
          return make_fsp_loss(student, teacher, c.args->string("teacher"), st, tt, c.input_shape, o, c.device,
                               c.seed);
        });
      },
      kFspDefaultWeight);
}

}  // namespace retort::transfer
