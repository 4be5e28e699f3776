// Cross-reference checks of a parsed recipe: every model a stage or loss names exists,
// teachers have weights by the time they are used, from_stage names an earlier stage that
// trains the model, and stage names are unique.
#include <algorithm>
#include <set>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include "train/recipe_internal.h"

namespace retort::recipe_detail {
namespace {

// One step of a path into the TOML tree: a key or an array index.
struct Step {
  std::string_view key;
  size_t index = 0;
  bool is_index = false;
  Step(const char* k) : key(k) {}
  Step(std::string_view k) : key(k) {}
  Step(const std::string& k) : key(k) {}
  Step(size_t i) : index(i), is_index(true) {}
};

// The TOML node for something in the tree, falling back to the nearest existing parent.
const toml::node* locate(const toml::table& root, std::initializer_list<Step> steps) {
  const toml::node* best = &root;
  for (const Step& step : steps) {
    const toml::node* next = nullptr;
    if (step.is_index) {
      if (const toml::array* a = best->as_array()) next = a->get(step.index);
    } else if (const toml::table* t = best->as_table()) {
      next = t->get(step.key);
    }
    if (!next) break;
    best = next;
  }
  return best;
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

}  // namespace

// head = "reset" | "drop" acts on a weights file's classifier; a model without one (drop) has
// num_classes 0 and is never trained (it has no logits for a label loss or an evaluation).
void validate_heads(const Recipe& recipe, const toml::table& root, ParseContext& ctx) {
  for (const auto& [name, m] : recipe.models) {
    if (m.head == models::HeadPolicy::keep) continue;
    const toml::node* node = locate(root, {"models", name, "head"});
    if (m.weights.empty())
      ctx.error(node, fmt::format("[models.{}] head = \"{}\" acts on a weights file's classifier, but the model has "
                                  "no 'weights'", name, to_string(m.head)));
    if (m.head == models::HeadPolicy::drop && m.num_classes > 0)
      ctx.error(node, fmt::format("[models.{}] head = \"drop\" builds the model without a classifier, but num_classes "
                                  "= {} asks for one: use head = \"reset\" for a new {}-class head",
                                  name, m.num_classes, m.num_classes));
    for (size_t i = 0; i < recipe.stages.size(); ++i)
      if (m.head == models::HeadPolicy::drop && recipe.stages[i].train == name)
        ctx.error(locate(root, {"stages", i, "train"}),
                  fmt::format("stage '{}' trains model '{}', which has no classifier (head = \"drop\"): use head = "
                              "\"reset\" to train it on this task", recipe.stages[i].name, name));
  }
}

void validate_references(const Recipe& recipe, const toml::table& root, ParseContext& ctx) {
  std::vector<std::string> model_names, stage_names;
  for (const auto& [name, m] : recipe.models) model_names.push_back(name);
  for (const auto& s : recipe.stages) stage_names.push_back(s.name);

  std::set<std::string> trained_so_far;
  std::map<std::string, size_t> first_stage_named;
  for (size_t i = 0; i < recipe.stages.size(); ++i) {
    const StageSpec& st = recipe.stages[i];
    auto at = [&](std::string_view key) { return locate(root, {"stages", i, key}); };
    if (auto [it, fresh] = first_stage_named.emplace(st.name, i); !fresh)
      ctx.error(at("name"), fmt::format("stage name '{}' is used twice (stages {} and {}); stage names must be "
                                        "unique",
                                        st.name, it->second, i));

    if (!st.train.empty()) {
      if (!recipe.models.count(st.train))
        ctx.error(at("train"), fmt::format("key 'train' in [stages] names an undefined model '{}'{}", st.train,
                                           suggestion_suffix(st.train, model_names, "models")));
      else if (recipe.models.at(st.train).frozen)
        ctx.error(at("train"), fmt::format("stage '{}' trains model '{}', which is frozen (frozen = true in "
                                           "[models.{}])",
                                           st.name, st.train, st.train));
    }
    for (size_t t = 0; t < st.teachers.size(); ++t) {
      const std::string& teacher = st.teachers[t];
      if (std::find(st.teachers.begin(), st.teachers.begin() + long(t), teacher) != st.teachers.begin() + long(t))
        ctx.error(at("teachers"), fmt::format("teacher '{}' is listed twice in stage '{}'", teacher, st.name));
      else if (!recipe.models.count(teacher))
        ctx.error(at("teachers"), fmt::format("key 'teachers' in [stages] names an undefined model '{}'{}", teacher,
                                              suggestion_suffix(teacher, model_names, "models")));
      else if (teacher == st.train)
        ctx.error(at("teachers"), fmt::format("model '{}' is both trained and a teacher in stage '{}'", teacher,
                                              st.name));
      else if (recipe.models.at(teacher).weights.empty() && !trained_so_far.count(teacher))
        ctx.error(at("teachers"), fmt::format("teacher '{}' of stage '{}' has no weights: give [models.{}] a "
                                              "weights file or train it in an earlier stage",
                                              teacher, st.name, teacher));
    }
    for (size_t j = 0; j < st.losses.size(); ++j) {
      const LossTerm& term = st.losses[j];
      const LossSchema* schema = find_loss_schema(term.name);
      if (!schema) continue;
      for (const ParamSpec& spec : schema->params) {
        if (spec.kind != ValueKind::model && spec.kind != ValueKind::models) continue;
        auto p = term.params.find(spec.key);
        if (p == term.params.end()) continue;
        std::vector<std::string> names = spec.kind == ValueKind::model
                                             ? std::vector<std::string>{std::get<std::string>(p->second.value)}
                                             : std::get<std::vector<std::string>>(p->second.value);
        const toml::node* node = locate(root, {"stages", i, "losses", j, spec.key});
        for (const auto& name : names) {
          if (!recipe.models.count(name))
            ctx.error(node, fmt::format("key '{}' in [stages.losses.{}] names an undefined model '{}'{}", spec.key,
                                        term.name, name, suggestion_suffix(name, model_names, "models")));
          else if (name != st.train && !contains(st.teachers, name))
            ctx.error(node, fmt::format("key '{}' in [stages.losses.{}] names model '{}', which is not a teacher "
                                        "of stage '{}': add it to the stage's teachers = [...]",
                                        spec.key, term.name, name, st.name));
        }
      }
    }
    if (st.retrieve_k > 0) {
      if (st.data != StageData::unlabelled && st.data != StageData::all)
        ctx.error(at("retrieve_k"), fmt::format("stage '{}' curates its transfer set by retrieval (retrieve_k = {}), "
                                                "which needs data = \"unlabelled\" or \"all\", not \"{}\"",
                                                st.name, st.retrieve_k, to_string(st.data)));
      const std::string& by = st.retrieve_with.empty() ? (st.teachers.empty() ? std::string() : st.teachers[0])
                                                       : st.retrieve_with;
      if (by.empty())
        ctx.error(at("retrieve_k"), fmt::format("stage '{}' sets retrieve_k but has no teacher to embed images with: "
                                                "set retrieve_with = \"<model>\"",
                                                st.name));
      else if (!recipe.models.count(by))
        ctx.error(at("retrieve_with"), fmt::format("key 'retrieve_with' in [stages] names an undefined model '{}'{}",
                                                   by, suggestion_suffix(by, model_names, "models")));
      else if (recipe.models.at(by).weights.empty() && !trained_so_far.count(by))
        ctx.error(at("retrieve_with"), fmt::format("model '{}' embeds stage '{}''s retrieval but has no weights yet: "
                                                   "give it a weights file or train it in an earlier stage",
                                                   by, st.name));
    }
    if (!st.train.empty()) trained_so_far.insert(st.train);
  }

  for (const auto& [name, m] : recipe.models) {
    if (m.init_from.empty()) continue;
    const toml::node* node = locate(root, {"models", name, "init_from"});
    auto source = recipe.models.find(m.init_from);
    if (source == recipe.models.end() || m.init_from == name) {
      ctx.error(node, fmt::format("key 'init_from' in [models.{}] must name another model of the recipe, got '{}'{}",
                                  name, m.init_from, suggestion_suffix(m.init_from, model_names, "models")));
    } else if (source->second.arch != m.arch || source->second.options != m.options ||
               source->second.num_classes != m.num_classes || source->second.in_channels != m.in_channels ||
               source->second.image_size != m.image_size) {
      ctx.error(node, fmt::format("[models.{}] starts from the initial weights of '{}' (init_from), so it needs the "
                                  "same arch and options: '{}' is {}, '{}' is {}",
                                  name, m.init_from, m.init_from, source->second.arch, name, m.arch));
    } else if (!m.weights.empty() || !source->second.weights.empty()) {
      ctx.error(node, fmt::format("[models.{}] sets 'init_from' while it or '{}' starts from a weights file: give "
                                  "both the same 'weights' instead", name, m.init_from));
    }
  }
  validate_heads(recipe, root, ctx);
  for (const auto& [name, m] : recipe.models) {
    if (m.from_stage.empty()) continue;
    const toml::node* node = locate(root, {"models", name, "from_stage"});
    auto it = first_stage_named.find(m.from_stage);
    if (it == first_stage_named.end()) {
      ctx.error(node, fmt::format("key 'from_stage' in [models.{}] names an undefined stage '{}'{}", name,
                                  m.from_stage, suggestion_suffix(m.from_stage, stage_names, "stages")));
      continue;
    }
    const StageSpec& source = recipe.stages[it->second];
    if (source.train != name)
      ctx.error(node, fmt::format("key 'from_stage' in [models.{}] names stage '{}', which trains '{}', not '{}'",
                                  name, m.from_stage, source.train, name));
    if (!m.weights.empty())
      ctx.error(node, fmt::format("[models.{}] sets both 'weights' and 'from_stage': set one", name));
    for (size_t i = 0; i < it->second; ++i) {
      const StageSpec& st = recipe.stages[i];
      if (st.train == name || contains(st.teachers, name))
        ctx.error(locate(root, {"stages", i, "name"}),
                  fmt::format("stage '{}' uses model '{}' before stage '{}' (its from_stage) trains it", st.name,
                              name, m.from_stage));
    }
  }
}

}  // namespace retort::recipe_detail
