// CRD: the embeddings, the NCE and InfoNCE losses, the loss term and its registration as "crd".
// The memories (bank and queue) are transfer/crd_memory.cpp.
#include "transfer/crd.h"
#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/ops.h"
#include "transfer/adapters.h"

namespace retort::transfer {

Tensor crd_normalize(const Tensor& x) {
  RETORT_CHECK(x.dim() == 2, "crd: embeddings must be [B, dim], got {}", x.str());
  return div(x, sqrt(sum(mul(x, x), {1}, true)));
}

Tensor crd_embed(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  RETORT_CHECK(x.dim() >= 2, "crd: features must have a batch dimension, got {}", x.str());
  Tensor flat = x.reshape({x.size(0), -1});
  RETORT_CHECK(weight.dim() == 2 && weight.size(1) == flat.size(1),
               "crd: an embedding of input size {} cannot take features {} ({} values per example)",
               weight.dim() == 2 ? weight.size(1) : -1, x.str(), flat.size(1));
  return crd_normalize(linear(flat, weight, bias));
}

Tensor crd_nce_loss(const Tensor& p, int64_t n_data, double eps) {
  RETORT_CHECK(p.dim() == 2 && p.size(1) >= 2, "crd: NCE scores must be [B, 1 + K] with K >= 1, got {}", p.str());
  RETORT_CHECK(n_data > 0, "crd: the NCE noise prior needs N > 0, got {}", n_data);
  const int64_t b = p.size(0), k = p.size(1) - 1;
  const double c = double(k) * (1.0 / double(n_data));  // K * P_n (RD: m * Pn)
  Tensor pos = p.slice(1, 0, 1), neg = p.slice(1, 1, k + 1);
  Tensor log_d1 = log(div(pos, add(pos, c + eps)));  // log(P / (P + K P_n + eps))
  Tensor log_d0 = log(rdiv(c, add(neg, c + eps)));   // log(K P_n / (P + K P_n + eps))
  return mul(add(sum(log_d1), sum(log_d0)), -1.0 / double(b));
}

Tensor crd_info_nce(const Tensor& anchor, const Tensor& positive, const Tensor& negatives, double temperature) {
  RETORT_CHECK(anchor.dim() == 2 && anchor.shape() == positive.shape(),
               "crd: InfoNCE anchors {} and positives {} must be [B, d] of one shape", anchor.str(), positive.str());
  RETORT_CHECK(negatives.dim() == 2 && negatives.size(1) == anchor.size(1),
               "crd: InfoNCE negatives {} must be [Q, {}]", negatives.str(), anchor.size(1));
  RETORT_CHECK(temperature > 0, "crd: temperature must be positive, got {}", temperature);
  Tensor logits = sum(mul(anchor, positive), {1}, true);  // [B, 1]: the positive first
  if (negatives.size(0) > 0) logits = concat({logits, matmul(anchor, negatives.detach().transpose(0, 1))}, 1);
  Tensor target = Tensor::zeros({anchor.size(0)}, DType::i64, anchor.device());
  return cross_entropy(mul(logits, 1.0 / temperature), target);
}

CrdLoss::CrdLoss(std::string teacher, std::string student_tap, std::string teacher_tap, int64_t student_dim,
                 int64_t teacher_dim, const CrdOptions& o, int64_t dataset_size, uint64_t seed, Device device,
                 DType dtype)
    : teacher_(std::move(teacher)), student_tap_(std::move(student_tap)), teacher_tap_(std::move(teacher_tap)),
      options_(o) {
  RETORT_CHECK(student_dim > 0 && teacher_dim > 0 && o.dim > 0, "crd: sizes must be positive, got d_s={} d_t={} dim={}",
               student_dim, teacher_dim, o.dim);
  Generator gen(seed ^ 0xC3D0E3B5ull);
  embed_s = std::make_shared<nn::Linear>(student_dim, o.dim, gen);
  embed_t = std::make_shared<nn::Linear>(teacher_dim, o.dim, gen);
  for (auto* m : {embed_s.get(), embed_t.get()}) {
    m->to(dtype);
    m->to(device);
  }
  if (o.memory == CrdMemory::bank)
    bank = std::make_unique<CrdBank>(dataset_size, o.dim, o.negatives, o.temperature, o.momentum, seed, device, dtype);
  else
    queue = std::make_unique<CrdQueue>(o.queue_size, o.dim, o.temperature, device, dtype);
}

Tensor CrdLoss::embed_student(const Tensor& f_s) const { return crd_embed(f_s, embed_s->weight, embed_s->bias); }
Tensor CrdLoss::embed_teacher(const Tensor& f_t) const {
  return crd_embed(f_t.detach(), embed_t->weight, embed_t->bias);
}

Tensor CrdLoss::value(const Tensor& f_s, const Tensor& f_t, const std::vector<int64_t>& ids,
                      const std::vector<int64_t>& labels) {
  RETORT_CHECK(bank, "crd: sample ids and labels are for memory = \"bank\"; this term has a queue");
  return bank->loss(embed_student(f_s), embed_teacher(f_t), ids, labels);
}

Tensor CrdLoss::value_with_indices(const Tensor& f_s, const Tensor& f_t, const std::vector<int64_t>& ids,
                                   const Tensor& contrast_idx) {
  RETORT_CHECK(bank, "crd: contrast indices are for memory = \"bank\"; this term has a queue");
  return bank->loss_with_indices(embed_student(f_s), embed_teacher(f_t), ids, contrast_idx);
}

Tensor CrdLoss::value(const Tensor& f_s, const Tensor& f_t) {
  RETORT_CHECK(queue, "crd: memory = \"bank\" needs each example's sample id and label");
  return queue->loss(embed_student(f_s), embed_teacher(f_t));
}

Tensor CrdLoss::compute(const StepInputs& in) {
  const Tensor& f_s = in.student_tap(student_tap_);
  const Tensor& f_t = in.teacher_tap(teacher_, teacher_tap_);
  if (queue) return value(f_s, f_t);
  RETORT_CHECK(in.sample_ids, "crd: memory = \"bank\" needs each example's position in the training set, and this "
               "step has none (use memory = \"queue\", which needs none)");
  RETORT_CHECK(in.dataset_size == 0 || in.dataset_size == bank->size(),
               "crd: the memory bank was built for {} examples, but this step's training set has {}", bank->size(),
               in.dataset_size);
  RETORT_CHECK(in.labels.defined(), "crd: memory = \"bank\" draws negatives from other classes and needs labels");
  return value(f_s, f_t, *in.sample_ids, in.labels.to_i64_vector());
}

nn::NamedTensors CrdLoss::parameters() const {
  nn::NamedTensors out;
  for (auto& [n, p] : embed_s->named_parameters()) out.push_back({"embed_student." + n, p});
  for (auto& [n, p] : embed_t->named_parameters()) out.push_back({"embed_teacher." + n, p});
  return out;
}

nn::NamedTensors CrdLoss::buffers() const {
  nn::NamedTensors out;
  if (bank)
    for (auto& [n, t] : bank->buffers()) out.push_back({"memory." + n, t});
  if (queue)
    for (auto& [n, t] : queue->buffers()) out.push_back({"queue." + n, t});
  return out;
}

void register_crd_loss() {
  register_loss(
      "crd",
      {ParamSpec("teacher", ValueKind::model, kRequired, "the teacher whose embedding the student's must pick out"),
       ParamSpec("student_tap", ValueKind::string, "pooled", "the student's tap (flattened per example)"),
       ParamSpec("teacher_tap", ValueKind::string, "pooled", "the teacher's tap (flattened per example)"),
       ParamSpec("memory", ValueKind::string, "bank",
                 "bank: a memory row per training example (the reference); queue: the last queue_size embeddings")
           .one_of({"bank", "queue"}),
       ParamSpec("dim", ValueKind::integer, int64_t{kCrdDefaultDim}, "embedding size").positive(),
       ParamSpec("temperature", ValueKind::number, kCrdDefaultTemperature, "tau of exp(score / tau)").positive(),
       ParamSpec("negatives", ValueKind::integer, int64_t{kCrdDefaultNegatives},
                 "K, negatives per example (bank)").positive(),
       ParamSpec("momentum", ValueKind::number, kCrdDefaultMomentum, "memory update momentum (bank)").within(0, 1),
       ParamSpec("queue_size", ValueKind::integer, int64_t{kCrdDefaultQueueSize},
                 "Q, past embeddings kept as negatives (queue)").positive()},
      "CRD (Tian et al. 2020): NCE over a per-example memory bank of both sides' embeddings (or InfoNCE over a "
      "queue); weight 0.8",
      [](const BuildContext& c) -> std::unique_ptr<Loss> {
        return with_recipe_line(c, [&] {
          const std::string& teacher = c.args->string("teacher");
          const models::Model& teacher_model = stage_teacher(c);
          const models::Model& student = stage_student(c);
          CrdOptions o;
          o.memory = c.args->string("memory") == "queue" ? CrdMemory::queue : CrdMemory::bank;
          o.dim = c.args->integer("dim");
          o.temperature = c.args->number("temperature");
          o.negatives = c.args->integer("negatives");
          o.momentum = c.args->number("momentum");
          o.queue_size = c.args->integer("queue_size");
          RETORT_CHECK(o.memory == CrdMemory::queue || c.dataset_size > 0,
                       "loss 'crd' with memory = \"bank\" keeps a row per training example, but the training set's "
                       "size is unknown here; use memory = \"queue\" (a fixed-size memory that needs no example "
                       "index)");
          auto s = find_tap(student, c.args->string("student_tap"), c.input_shape, "crd", "student");
          auto t = find_tap(teacher_model, c.args->string("teacher_tap"), c.input_shape, "crd",
                            "teacher '" + teacher + "'");
          auto flat = [](const models::TapInfo& info) {
            RETORT_CHECK(info.shape.size() >= 2, "crd: tap '{}' is {}, with no per-example values", info.name,
                         shape_str(info.shape));
            return shape_numel(info.shape) / info.shape[0];
          };
          return std::make_unique<CrdLoss>(teacher, s.name, t.name, flat(s), flat(t), o, c.dataset_size, c.seed,
                                           c.device, student_dtype(c));
        });
      },
      kCrdDefaultWeight);
}

}  // namespace retort::transfer
