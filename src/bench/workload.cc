#include "bench/workload.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "bench/json_schema.h"

namespace tinyserve::bench {
namespace {

using nlohmann::json;

StatusOr<std::string> ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError("cannot open {}", path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Sample files live beside the workload file: relative, and never above it.
StatusOr<std::string> ResolveRelative(const std::string& base_dir, const std::string& name) {
  std::filesystem::path p(name);
  if (name.empty() || p.is_absolute()) {
    return InvalidArgumentError("file \"{}\" must be a relative path", name);
  }
  for (const auto& part : p) {
    if (part == "..") return InvalidArgumentError("file \"{}\" may not contain ..", name);
  }
  return (std::filesystem::path(base_dir) / p).string();
}

void ReplaceAll(std::string* s, const std::string& from, const std::string& to) {
  for (size_t pos = 0; (pos = s->find(from, pos)) != std::string::npos; pos += to.size()) {
    s->replace(pos, from.size(), to);
  }
}

StatusOr<Sample> ParseSample(const json& j, const TaskType& task, const std::string& base_dir) {
  if (!j.is_object()) return InvalidArgumentError("a sample must be an object");
  Sample s;
  s.id = j.value("id", "");
  if (s.id.empty()) return InvalidArgumentError("a sample needs an \"id\"");
  if (j.contains("input") && j["input"].is_string()) {
    s.input = j["input"].get<std::string>();
  } else if (j.contains("input_file") && j["input_file"].is_string()) {
    TS_ASSIGN_OR_RETURN(std::string path,
                        ResolveRelative(base_dir, j["input_file"].get<std::string>()));
    TS_ASSIGN_OR_RETURN(s.input, ReadText(path));
  } else {
    return InvalidArgumentError("sample {}: needs \"input\" or \"input_file\"", s.id);
  }
  if (task.check == AnswerCheck::kJsonSchema) {
    if (!j.contains("schema")) return InvalidArgumentError("sample {}: needs a \"schema\"", s.id);
    s.schema = j["schema"];
    Status st = CheckSchemaSupported(s.schema);
    if (!st.ok()) return st.WithPrefix(fmt::format("sample {}", s.id));
  }
  s.prompt = task.prompt_template;
  ReplaceAll(&s.prompt, "{schema}", s.schema.is_null() ? "" : s.schema.dump(2));
  ReplaceAll(&s.prompt, "{input}", s.input);
  return s;
}

StatusOr<TaskType> ParseTask(const json& j, const std::string& base_dir) {
  if (!j.is_object()) return InvalidArgumentError("a task must be an object");
  TaskType t;
  t.name = j.value("name", "");
  if (t.name.empty()) return InvalidArgumentError("a task needs a \"name\"");
  auto number = [&](const char* key, double fallback) -> StatusOr<double> {
    if (!j.contains(key)) return fallback;
    if (!j[key].is_number())
      return InvalidArgumentError("task {}: {} must be a number", t.name, key);
    return j[key].get<double>();
  };
  TS_ASSIGN_OR_RETURN(t.weight, number("weight", 1.0));
  TS_ASSIGN_OR_RETURN(double max_tokens, number("max_tokens", 256));
  TS_ASSIGN_OR_RETURN(t.temperature, number("temperature", 0.7));
  t.max_tokens = static_cast<int>(max_tokens);
  if (t.weight < 0 || t.max_tokens < 1 || t.temperature < 0) {
    return InvalidArgumentError("task {}: weight, max_tokens or temperature out of range", t.name);
  }
  t.system = j.value("system", "");
  t.prompt_template = j.value("prompt", "{input}");
  std::string check = j.value("check", "none");
  if (check == "json_schema") {
    t.check = AnswerCheck::kJsonSchema;
  } else if (check != "none") {
    return InvalidArgumentError("task {}: unknown check \"{}\"", t.name, check);
  }
  std::vector<json> samples;
  if (j.contains("samples") && j["samples"].is_array()) {
    for (const json& s : j["samples"]) samples.push_back(s);
  }
  if (j.contains("samples_file") && j["samples_file"].is_string()) {
    TS_ASSIGN_OR_RETURN(std::string path,
                        ResolveRelative(base_dir, j["samples_file"].get<std::string>()));
    TS_ASSIGN_OR_RETURN(std::string text, ReadText(path));
    std::istringstream lines(text);
    std::string line;
    int line_no = 0;
    while (std::getline(lines, line)) {
      ++line_no;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      json s = json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (s.is_discarded()) {
        return InvalidArgumentError("{}:{}: not valid JSON", path, line_no);
      }
      samples.push_back(std::move(s));
    }
  }
  for (const json& s : samples) {
    StatusOr<Sample> sample = ParseSample(s, t, base_dir);
    if (!sample.ok()) return sample.status().WithPrefix(fmt::format("task {}", t.name));
    t.samples.push_back(std::move(*sample));
  }
  if (t.samples.empty()) return InvalidArgumentError("task {}: has no samples", t.name);
  return t;
}

}  // namespace

StatusOr<Workload> ParseWorkload(const std::string& text, const std::string& base_dir) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return InvalidArgumentError("workload is not a JSON object");
  }
  Workload w;
  w.name = j.value("name", "workload");
  if (!j.contains("tasks") || !j["tasks"].is_array() || j["tasks"].empty()) {
    return InvalidArgumentError("workload needs a non-empty \"tasks\" array");
  }
  for (const json& t : j["tasks"]) {
    TS_ASSIGN_OR_RETURN(TaskType task, ParseTask(t, base_dir));
    for (const TaskType& other : w.tasks) {
      if (other.name == task.name) return InvalidArgumentError("task {} appears twice", task.name);
    }
    w.tasks.push_back(std::move(task));
  }
  if (j.contains("mixes") && j["mixes"].is_object()) {
    for (auto it = j["mixes"].begin(); it != j["mixes"].end(); ++it) {
      if (!it.value().is_object()) return InvalidArgumentError("mix {}: not an object", it.key());
      for (auto w_it = it.value().begin(); w_it != it.value().end(); ++w_it) {
        if (!w_it.value().is_number() || w_it.value().get<double>() < 0) {
          return InvalidArgumentError("mix {}: weight of {} must be >= 0", it.key(), w_it.key());
        }
        w.mixes[it.key()][w_it.key()] = w_it.value().get<double>();
      }
    }
  }
  double total = 0;
  for (const TaskType& t : w.tasks) total += t.weight;
  if (total <= 0) return InvalidArgumentError("workload: every task weight is 0");
  return w;
}

StatusOr<Workload> LoadWorkload(const std::string& path) {
  TS_ASSIGN_OR_RETURN(std::string text, ReadText(path));
  std::string dir = std::filesystem::path(path).parent_path().string();
  StatusOr<Workload> w = ParseWorkload(text, dir.empty() ? "." : dir);
  if (!w.ok()) return w.status().WithPrefix(path);
  return w;
}

Status ApplyMix(const std::string& mix, Workload* workload) {
  std::map<std::string, double> weights;
  if (auto it = workload->mixes.find(mix); it != workload->mixes.end()) {
    weights = it->second;
  } else {
    std::istringstream in(mix);
    std::string item;
    while (std::getline(in, item, ',')) {
      size_t eq = item.find('=');
      if (eq == std::string::npos) {
        return InvalidArgumentError("mix \"{}\": expected a mix name or task=weight,...", mix);
      }
      char* end = nullptr;
      std::string value = item.substr(eq + 1);
      double weight = std::strtod(value.c_str(), &end);
      if (value.empty() || *end != '\0' || weight < 0) {
        return InvalidArgumentError("mix \"{}\": bad weight \"{}\"", mix, value);
      }
      weights[item.substr(0, eq)] = weight;
    }
  }
  for (const auto& [name, weight] : weights) {
    bool known = false;
    for (const TaskType& t : workload->tasks) known = known || t.name == name;
    if (!known) return InvalidArgumentError("mix \"{}\": no task named {}", mix, name);
  }
  double total = 0;
  for (TaskType& t : workload->tasks) {
    auto it = weights.find(t.name);
    t.weight = it == weights.end() ? 0.0 : it->second;
    total += t.weight;
  }
  if (total <= 0) return InvalidArgumentError("mix \"{}\": every weight is 0", mix);
  return OkStatus();
}

void CapMaxTokens(int cap, Workload* workload) {
  for (TaskType& t : workload->tasks) t.max_tokens = std::min(t.max_tokens, cap);
}

WorkloadSampler::WorkloadSampler(const Workload& workload, uint64_t seed)
    : workload_(workload), rng_(seed) {
  double sum = 0;
  for (const TaskType& t : workload_.tasks) {
    sum += t.weight;
    cumulative_.push_back(sum);
  }
}

SampleRef WorkloadSampler::Next() {
  SampleRef ref;
  double u = rng_.Uniform() * cumulative_.back();
  ref.task_idx = static_cast<int>(cumulative_.size()) - 1;
  for (size_t i = 0; i < cumulative_.size(); ++i) {
    if (u < cumulative_[i]) {
      ref.task_idx = static_cast<int>(i);
      break;
    }
  }
  // Rounding can leave u at the very top; fall back to the last task with weight.
  while (ref.task_idx > 0 && workload_.tasks[ref.task_idx].weight <= 0) --ref.task_idx;
  size_t n = workload_.tasks[ref.task_idx].samples.size();
  ref.sample_idx =
      static_cast<int>(std::min<size_t>(n - 1, static_cast<size_t>(rng_.Uniform() * n)));
  return ref;
}

}  // namespace tinyserve::bench
