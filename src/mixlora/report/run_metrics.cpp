#include "mixlora/report/run_metrics.h"

#include "mixlora/common/error.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace mixlora::report {

namespace fs = std::filesystem;

namespace {

double number_or_nan(const nlohmann::json& record, const char* key) {
  const auto it = record.find(key);
  return it != record.end() && it->is_number() ? it->get<double>() : NAN;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  if (!in) fail_input("{}: cannot read", path.string());
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

AdapterMetrics parse_metrics(const std::string& text, const std::string& source) {
  AdapterMetrics m;
  std::istringstream lines(text);
  std::string line;
  for (int64_t number = 1; std::getline(lines, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const auto record = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!record.is_object())
      fail_input("{}:{}: not a JSON object (is this a metrics.jsonl?)", source, number);
    if (m.name.empty()) m.name = record.value("adapter", std::string());
    const double step = number_or_nan(record, "step");
    if (!std::isfinite(step)) continue;
    if (const auto it = record.find("eval"); it != record.end() && it->is_array()) {
      for (const auto& entry : *it) {
        const auto task = entry.value("task_name", std::string("eval"));
        const auto metrics = entry.value("metrics", nlohmann::json::object());
        if (metrics.contains("accuracy"))
          m.eval[task + " accuracy"].add(step, number_or_nan(metrics, "accuracy"));
        m.eval[task + " loss"].add(step, number_or_nan(metrics, "loss"));
      }
      continue;
    }
    m.total_steps = std::max<int64_t>(m.total_steps, record.value("total_steps", int64_t{0}));
    m.loss.add(step, number_or_nan(record, "loss"));
    m.aux_loss.add(step, number_or_nan(record, "aux_loss"));
    m.z_loss.add(step, number_or_nan(record, "z_loss"));
    m.lr.add(step, number_or_nan(record, "lr"));
    m.grad_norm.add(step, number_or_nan(record, "grad_norm"));
    m.tokens_per_s.add(step, number_or_nan(record, "tokens_per_s"));
    if (const auto it = record.find("router"); it != record.end() && it->is_object()) {
      m.router.emplace_back(static_cast<int64_t>(step), *it);
      if (const auto alarms = it->find("alarms"); alarms != it->end() && alarms->is_array()) {
        for (const auto& a : *alarms) m.alarms.push_back(a);
      }
    }
  }
  return m;
}

RunMetrics read_run(const std::string& run_dir) {
  RunMetrics run;
  const fs::path dir(run_dir);
  run.dir = run_dir;
  run.name = fs::absolute(dir).lexically_normal().filename().string();
  if (run.name.empty())
    run.name = fs::absolute(dir).lexically_normal().parent_path().filename().string();
  if (!fs::is_directory(dir))
    fail_input("{}: not a directory (give a training output_dir)", run_dir);
  std::vector<fs::path> files;
  if (fs::exists(dir / "metrics.jsonl")) {
    files.push_back(dir / "metrics.jsonl");
  } else {
    for (const auto& entry : fs::directory_iterator(dir)) {
      if (entry.is_directory() && fs::exists(entry.path() / "metrics.jsonl"))
        files.push_back(entry.path() / "metrics.jsonl");
    }
  }
  if (files.empty()) {
    fail_input(
        "{}: no metrics.jsonl here or in its adapter directories (give the output_dir of a "
        "training run)",
        run_dir);
  }
  std::sort(files.begin(), files.end());
  for (const auto& file : files) {
    auto m = parse_metrics(read_text(file), file.string());
    if (m.name.empty()) m.name = file.parent_path().filename().string();
    m.run = run.name;
    run.adapters.push_back(std::move(m));
  }
  return run;
}

}  // namespace mixlora::report
