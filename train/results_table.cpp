// End-of-run results table and a small file reader.
#include "train/results_table.h"
#include <fstream>
#include <sstream>
#include "engine/error.h"

namespace retort {

std::string results_table(const std::vector<ModelResult>& results, const Recipe& recipe, Device device, double total_s) {
  std::string out = fmt::format("\n{:<18} {:<14} {:<12} {:>10} {:>9} {:>9} {:>9}\n", "stage", "model", "arch",
                                "params", "top1 %", "top5 %", "wall s");
  for (const auto& r : results)
    out += fmt::format("{:<18} {:<14} {:<12} {:>10} {:>9.2f} {:>9.2f} {:>9.1f}\n", r.stage, r.model,
                       recipe.models.count(r.model) ? recipe.models.at(r.model).arch : "?", r.parameters, r.test_top1,
                       r.test_top5, r.wall_s);
  out += fmt::format("run '{}' on {}: {:.1f} s in all\n", recipe.run.name, device.str(), total_s);
  return out;
}

std::string read_text_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  RETORT_CHECK(in, "cannot read {}", path.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace retort
