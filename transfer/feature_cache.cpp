// Teacher-feature cache: one forward pass over a view, per-batch gathers, keyed files.
#include "transfer/feature_cache.h"
#include <cstring>
#include <filesystem>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include "engine/autograd.h"
#include "engine/content_hash.h"
#include "engine/data/batch.h"
#include "engine/error.h"
#include "engine/io/safetensors.h"
#include "engine/random.h"

namespace retort::transfer {
namespace {

int64_t row_numel(const Tensor& t) { return t.size(0) == 0 ? 0 : t.numel() / t.size(0); }

}  // namespace

namespace {

// Rows [first, last) of the view: the batches [b0, b1) of `batch_size` rows that one of
// `ranks` ranks runs (contiguous shares of the batches, as even as they come).
std::pair<int64_t, int64_t> rank_rows(int64_t n, int64_t batch_size, int rank, int ranks) {
  const int64_t batches = (n + batch_size - 1) / batch_size;
  const int64_t b0 = batches * rank / ranks, b1 = batches * (rank + 1) / ranks;
  return {std::min(n, b0 * batch_size), std::min(n, b1 * batch_size)};
}

// Every rank's rows of `all` ([n, ...] f32, this rank's share filled) onto every rank.
void gather_rows(Tensor& all, int64_t batch_size, dist::Communicator& group) {
  const int64_t n = all.size(0), row = row_numel(all), ranks = group.size();
  int64_t most = 0;
  for (int r = 0; r < ranks; ++r) {
    auto [lo, hi] = rank_rows(n, batch_size, r, int(ranks));
    most = std::max(most, hi - lo);
  }
  const auto [mine_lo, mine_hi] = rank_rows(n, batch_size, group.rank(), int(ranks));
  std::vector<float> send(size_t(most * row), 0.0f), recv(size_t(most * row * ranks));
  std::memcpy(send.data(), all.data<float>() + mine_lo * row, size_t((mine_hi - mine_lo) * row) * sizeof(float));
  group.allgather_bytes(send.data(), recv.data(), send.size() * sizeof(float));
  for (int r = 0; r < ranks; ++r) {
    auto [lo, hi] = rank_rows(n, batch_size, r, int(ranks));
    std::memcpy(all.data<float>() + lo * row, recv.data() + size_t(r * most * row), size_t((hi - lo) * row) * sizeof(float));
  }
}

}  // namespace

models::Taps compute_view_taps(models::Model& model, const std::set<std::string>& taps, const data::DatasetView& view,
                               const std::vector<data::BatchTransform>& transforms, Device device,
                               int64_t batch_size, dist::Communicator* group) {
  RETORT_CHECK(batch_size > 0, "compute_view_taps: batch_size must be positive");
  NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  models::Taps out;
  Generator unused(0);
  const int64_t n = view.size();
  const bool shared = group && group->size() > 1;
  RETORT_CHECK(!shared || (n + batch_size - 1) / batch_size >= group->size(),
               "teacher feature cache: {} images are too few to share over {} ranks (each needs a batch of {})", n,
               group->size(), batch_size);
  const auto [lo, hi] = shared ? rank_rows(n, batch_size, group->rank(), group->size()) : std::pair<int64_t, int64_t>{0, n};
  for (int64_t first = lo; first < hi; first += batch_size) {
    std::vector<int64_t> positions;
    for (int64_t p = first; p < std::min(n, first + batch_size); ++p) positions.push_back(p);
    data::Batch batch = data::make_batch(view, positions);
    for (const auto& t : transforms) t.apply(batch, unused);
    models::Taps got;
    Tensor logits = model.forward(batch.images_tensor(device), &got);
    got["logits"] = logits;
    for (const auto& name : taps) {
      auto it = got.find(name);
      RETORT_CHECK(it != got.end(), "teacher feature cache: model has no tap '{}' (it has: {})", name,
                   fmt::join(model.tap_names(batch.shape()), ", "));
      Tensor host = it->second.to(Device::cpu()).to(DType::f32).contiguous();
      Tensor& all = out[name];
      if (!all.defined()) {
        Shape shape = host.shape();
        shape[0] = n;
        all = Tensor::empty(shape, DType::f32);
      }
      const int64_t row = row_numel(host);
      std::memcpy(all.data<float>() + first * row, host.data<float>(), size_t(host.numel()) * sizeof(float));
    }
  }
  if (shared) {
    for (const auto& name : taps) gather_rows(out.at(name), batch_size, *group);
  }
  model.train(was_training);
  return out;
}

std::string feature_cache_key(const models::Model& teacher, const std::string& data_key, const data::DatasetView& view,
                              const std::string& tap) {
  ContentHash h;
  h.text("retort-feature-cache-v1");
  for (const auto& [name, t] : teacher.state_dict()) {
    h.text(name);
    Tensor host = t.to(Device::cpu()).contiguous();
    h.bytes(host.shape().data(), host.shape().size() * sizeof(int64_t));
    h.text(dtype_name(host.dtype()));
    h.bytes(host.raw_data(), host.nbytes());
  }
  h.text(data_key);
  h.text(view.dataset().name);
  h.bytes(view.indices().data(), view.indices().size() * sizeof(int64_t));
  std::vector<uint8_t> pixels(size_t(view.dataset().image_numel()));
  for (int64_t i = 0; i < view.size(); ++i) {  // the pixels themselves (an edited image folder is new data)
    view.copy_image(i, pixels.data());
    h.bytes(pixels.data(), pixels.size());
  }
  h.text(tap);
  return h.hex();
}

TeacherFeatureCache::TeacherFeatureCache(models::Model& teacher, const std::string& teacher_name,
                                         const std::set<std::string>& taps, const data::DatasetView& view,
                                         const std::vector<data::BatchTransform>& transforms, Device device,
                                         const std::string& data_key, const std::string& file_dir,
                                         const std::function<void(const std::string&)>& log,
                                         dist::Communicator* group) {
  rows_ = view.size();
  std::set<std::string> to_compute;
  std::map<std::string, std::string> files;
  for (const auto& tap : taps) {
    if (file_dir.empty()) {
      to_compute.insert(tap);
      continue;
    }
    const std::string key = feature_cache_key(teacher, data_key, view, tap);
    const std::string path = (std::filesystem::path(file_dir) / fmt::format("{}.{}.{}.safetensors", teacher_name, tap, key)).string();
    files[tap] = path;
    if (std::filesystem::exists(path)) {
      auto contents = read_safetensors(path);
      Tensor t = contents.at("features");
      RETORT_CHECK(t.dim() >= 1 && t.size(0) == rows_, "{}: holds {} rows, the view has {} images", path,
                   t.dim() ? t.size(0) : 0, rows_);
      all_[tap] = t.to(DType::f32).contiguous();
      if (log) log(fmt::format("teacher '{}' tap '{}': {} cached features read from {}", teacher_name, tap, rows_, path));
    } else {
      to_compute.insert(tap);
    }
  }
  if (!to_compute.empty()) {
    models::Taps computed = compute_view_taps(teacher, to_compute, view, transforms, device, 256, group);
    const bool writes = !group || group->is_root();
    for (auto& [tap, t] : computed) {
      if (files.count(tap) && writes) {
        std::filesystem::create_directories(file_dir);
        write_safetensors(files[tap], {{"features", t}}, {{"teacher", teacher_name}, {"tap", tap}});
      }
      if (log)
        log(fmt::format("teacher '{}' tap '{}': computed once for {} images ({:.1f} MB{})", teacher_name, tap, rows_,
                        double(t.nbytes()) / 1e6, files.count(tap) ? ", saved to " + files[tap] : std::string(", in memory")));
      all_[tap] = std::move(t);
    }
  }
}

models::Taps TeacherFeatureCache::gather(const std::vector<int64_t>& positions, Device device) const {
  models::Taps out;
  const int64_t b = int64_t(positions.size());
  for (const auto& [name, all] : all_) {
    Shape shape = all.shape();
    shape[0] = b;
    Tensor batch = Tensor::empty(shape, DType::f32);
    const int64_t row = row_numel(all);
    const float* src = all.data<float>();
    float* dst = batch.data<float>();
    for (int64_t i = 0; i < b; ++i) {
      const int64_t p = positions[size_t(i)];
      RETORT_CHECK(p >= 0 && p < rows_, "teacher feature cache: position {} out of range [0, {})", p, rows_);
      std::memcpy(dst + i * row, src + p * row, size_t(row) * sizeof(float));
    }
    out[name] = device.is_cpu() ? batch : batch.to(device);
  }
  return out;
}

int64_t TeacherFeatureCache::bytes() const {
  int64_t total = 0;
  for (const auto& [n, t] : all_) total += int64_t(t.nbytes());
  return total;
}

int64_t estimated_cache_bytes(const models::Model& model, const std::set<std::string>& taps, const Shape& input,
                              int64_t images) {
  int64_t per_image = 0;
  for (const auto& info : model.tap_info(input))
    if (taps.count(info.name)) {
      int64_t numel = 1;
      for (size_t d = 1; d < info.shape.size(); ++d) numel *= info.shape[d];
      per_image += numel * int64_t(sizeof(float));
    }
  return per_image * images;
}

}  // namespace retort::transfer
