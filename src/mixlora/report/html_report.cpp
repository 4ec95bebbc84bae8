#include "mixlora/report/html_report.h"

#include "mixlora/io/atomic_file.h"
#include "mixlora/report/svg.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

namespace mixlora::report {

namespace {

const char* kStyle = R"(<style>
body { font-family: "DejaVu Sans", Arial, sans-serif; margin: 16px 20px; color: #222; background: #f4f5f7; }
h1 { font-size: 20px; margin: 0 0 4px 0; }
h2 { font-size: 16px; margin: 18px 0 8px 0; }
h3 { font-size: 14px; margin: 0 0 6px 0; }
.meta { color: #555; font-size: 12px; margin-bottom: 8px; }
.row { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
.card { background: #fff; border: 1px solid #d8dadf; border-radius: 6px; padding: 10px; }
.card .sub { color: #555; font-size: 12px; margin-bottom: 6px; }
.adapter { width: 392px; }
svg text { font-family: "DejaVu Sans", Arial, sans-serif; }
svg .title { font-size: 12px; font-weight: bold; fill: #333; }
svg .tick { font-size: 10px; fill: #555; }
table.alarms { border-collapse: collapse; font-size: 12px; margin-top: 4px; }
table.alarms td, table.alarms th { border: 1px solid #ddd; padding: 2px 6px; text-align: right; }
table.alarms th { background: #f0f0f0; }
.ok { color: #2a7a2a; font-size: 12px; }
.bad { color: #b42020; font-size: 12px; font-weight: bold; }
.snapshots { display: flex; flex-wrap: wrap; gap: 4px; }
</style>
)";

LineChartOptions no_legend() {
  LineChartOptions o;
  o.legend = false;
  return o;
}

std::string label_of(const AdapterMetrics& a, bool several_runs) {
  return several_runs ? a.run + " / " + a.name : a.name;
}

// One number per logged router record: `field` of every layer, as one series per layer.
std::vector<Series> per_layer(const AdapterMetrics& a, const char* field) {
  std::vector<Series> layers;
  for (const auto& [step, router] : a.router) {
    const auto& list = router.value("layers", nlohmann::json::array());
    if (layers.size() < list.size()) layers.resize(list.size());
    for (size_t l = 0; l < list.size(); ++l) {
      const auto it = list[l].find(field);
      layers[l].add(static_cast<double>(step),
                    it != list[l].end() && it->is_number() ? it->get<double>() : NAN);
    }
  }
  return layers;
}

std::vector<std::vector<double>> shares_of(const nlohmann::json& router) {
  std::vector<std::vector<double>> rows;
  for (const auto& layer : router.value("layers", nlohmann::json::array())) {
    rows.push_back(layer.value("expert_share", std::vector<double>{}));
  }
  return rows;
}

std::string layer_chart(const std::string& title, const std::vector<Series>& layers,
                        LineChartOptions options) {
  if (layers.empty()) return "";
  std::vector<LineSeries> lines;
  for (size_t l = 0; l < layers.size(); ++l) {
    lines.push_back({fmt::format("layer {}", l),
                     ramp(layers.size() > 1 ? 0.9 * static_cast<double>(l) /
                                                  static_cast<double>(layers.size() - 1)
                                            : 0.0),
                     &layers[l]});
  }
  options.legend = false;
  options.legend_note =
      fmt::format("one line per layer: layer 0 (dark) .. layer {} (light)", layers.size() - 1);
  return line_chart(title, lines, options);
}

std::string alarms_html(const AdapterMetrics& a) {
  if (!a.is_mixlora()) return "";
  if (a.alarms.empty()) return "<div class=\"ok\">no router alarms</div>\n";
  std::string html = fmt::format(
      "<div class=\"bad\">{} router alarm{}</div>\n<table class=\"alarms\">"
      "<tr><th>step</th><th>alarm</th><th>layer</th><th>expert</th><th>value</th>"
      "<th>threshold</th></tr>\n",
      a.alarms.size(), a.alarms.size() == 1 ? "" : "s");
  const size_t shown = std::min<size_t>(a.alarms.size(), 40);
  for (size_t i = 0; i < shown; ++i) {
    const auto& al = a.alarms[i];
    html += fmt::format(
        "<tr><td>{}</td><td style=\"text-align:left\">{}</td><td>{}</td><td>{}</td><td>{:.3g}</td>"
        "<td>{:.3g}</td></tr>\n",
        al.value("step", 0), escape(al.value("kind", std::string("?"))), al.value("layer", 0),
        al.contains("expert") ? std::to_string(al.value("expert", 0)) : std::string("-"),
        al.value("value", 0.0), al.value("threshold", 0.0));
  }
  html += "</table>\n";
  if (shown < a.alarms.size())
    html += fmt::format("<div class=\"sub\">... and {} more</div>\n", a.alarms.size() - shown);
  return html;
}

std::string eval_chart(const AdapterMetrics& a) {
  std::vector<LineSeries> lines;
  size_t i = 0;
  const bool any_accuracy = std::any_of(a.eval.begin(), a.eval.end(), [](const auto& e) {
    return e.first.find(" accuracy") != std::string::npos;
  });
  for (const auto& [name, series] : a.eval) {
    if (any_accuracy && name.find(" accuracy") == std::string::npos) continue;
    lines.push_back({name, palette(i++), &series});
  }
  return line_chart(any_accuracy ? "eval accuracy" : "eval loss", lines);
}

std::string adapter_card(const AdapterMetrics& a, bool several_runs) {
  std::string html =
      fmt::format("<div class=\"card adapter\">\n<h3>{}</h3>\n", escape(label_of(a, several_runs)));
  std::string kind = "LoRA";
  if (a.is_mixlora()) {
    const auto& last = a.router.back().second;
    kind = fmt::format("MixLoRA {}, {} experts", last.value("strategy", std::string("?")),
                       last.value("num_experts", 0));
  }
  double final_loss = NAN;
  for (size_t i = a.loss.values.size(); i-- > 0;) {
    if (std::isfinite(a.loss.values[i])) {
      final_loss = a.loss.values[i];
      break;
    }
  }
  html += fmt::format("<div class=\"sub\">{} | {} logged steps of {} | final loss {:.4f}</div>\n",
                      escape(kind), a.loss.steps.size(), a.total_steps, final_loss);
  html += alarms_html(a);
  html += line_chart("training loss", {{"loss", palette(0), &a.loss}}, no_legend());
  if (!a.eval.empty()) html += eval_chart(a);
  html += line_chart("learning rate", {{"lr", palette(2), &a.lr}}, no_legend());
  html += line_chart("gradient norm (before clipping)", {{"grad norm", palette(3), &a.grad_norm}},
                     no_legend());
  if (a.is_mixlora()) {
    std::vector<LineSeries> router_losses = {{"aux loss", palette(4), &a.aux_loss}};
    if (std::any_of(a.z_loss.values.begin(), a.z_loss.values.end(),
                    [](double v) { return std::isfinite(v) && v != 0.0; })) {
      router_losses.push_back({"z loss", palette(5), &a.z_loss});
    }
    html += line_chart("router losses (coefficients applied)", router_losses);

    const auto& final_router = a.router.back().second;
    const auto final_shares = shares_of(final_router);
    const int experts = final_shares.empty() ? 0 : static_cast<int>(final_shares.front().size());
    double max_share = 0.0;
    for (const auto& [step, router] : a.router) {
      for (const auto& row : shares_of(router))
        for (double v : row) max_share = std::max(max_share, v);
    }
    HeatmapOptions big;
    big.cell_width = std::max(10, std::min(64, 280 / std::max(1, experts)));
    big.cell_height =
        std::max(6, std::min(24, 320 / std::max<int>(1, static_cast<int>(final_shares.size()))));
    html += heatmap(fmt::format("token share per layer x expert, step {}", a.router.back().first),
                    final_shares, max_share, big);
    // Over time: up to six snapshots at evenly spaced logged steps, on the same colour scale.
    const size_t n = a.router.size(), count = std::min<size_t>(n, 6);
    if (count > 1) {
      html +=
          "<div class=\"sub\">token share over time (same colours)</div>\n<div "
          "class=\"snapshots\">\n";
      HeatmapOptions small;
      small.labels = false;
      small.cell_width = std::max(3, std::min(10, 56 / std::max(1, experts)));
      small.cell_height =
          std::max(2, std::min(6, 120 / std::max<int>(1, static_cast<int>(final_shares.size()))));
      for (size_t i = 0; i < count; ++i) {
        const size_t k = count == 1 ? n - 1 : i * (n - 1) / (count - 1);
        html += heatmap(fmt::format("step {}", a.router[k].first), shares_of(a.router[k].second),
                        max_share, small);
      }
      html += "</div>\n";
    }
    const double max_entropy = final_router.value("max_entropy", 0.0);
    LineChartOptions entropy_options;
    entropy_options.threshold = 0.1 * max_entropy;
    entropy_options.threshold_label = "alarm: 10% of log E";
    entropy_options.y_min = 0.0;
    entropy_options.y_max = max_entropy > 0 ? max_entropy * 1.02 : 1.0;
    html += layer_chart(fmt::format("router entropy per layer (nats; log E = {:.2f})", max_entropy),
                        per_layer(a, "entropy"), entropy_options);
    LineChartOptions imbalance_options;
    imbalance_options.y_min = 0.0;
    html += layer_chart("load imbalance per layer (max share / mean share)",
                        per_layer(a, "load_imbalance"), imbalance_options);
    const auto strategy = final_router.value("strategy", std::string());
    if (strategy == "mixlora-dynamic") {
      html += layer_chart("experts per token per layer", per_layer(a, "experts_per_token"), {});
    } else if (strategy == "mixlora-switch") {
      LineChartOptions drop;
      drop.threshold = 0.1;
      drop.threshold_label = "alarm: 10%";
      drop.y_min = 0.0;
      html += layer_chart("dropped-token rate per layer", per_layer(a, "drop_rate"), drop);
    }
  }
  return html + "</div>\n";
}

std::string overview(const std::vector<const AdapterMetrics*>& all, bool several_runs) {
  std::vector<LineSeries> loss, lr, grad, aux, eval;
  for (size_t i = 0; i < all.size(); ++i) {
    const auto label = label_of(*all[i], several_runs);
    loss.push_back({label, palette(i), &all[i]->loss});
    lr.push_back({label, palette(i), &all[i]->lr});
    grad.push_back({label, palette(i), &all[i]->grad_norm});
    if (all[i]->is_mixlora()) aux.push_back({label, palette(i), &all[i]->aux_loss});
    for (const auto& [name, series] : all[i]->eval) {
      if (name.find(" accuracy") != std::string::npos || all[i]->eval.size() == 1) {
        eval.push_back({label + ": " + name, palette(i), &series});
      }
    }
  }
  std::string html = "<h2>All adapters</h2>\n<div class=\"row\">\n";
  for (const auto& chart : {line_chart("training loss", loss), line_chart("eval", eval),
                            line_chart("learning rate", lr), line_chart("gradient norm", grad),
                            line_chart("aux loss", aux)}) {
    if (!chart.empty()) html += "<div class=\"card\">" + chart + "</div>\n";
  }
  return html + "</div>\n";
}

}  // namespace

std::string render_report(const std::vector<RunMetrics>& runs) {
  const bool several_runs = runs.size() > 1;
  std::vector<const AdapterMetrics*> all;
  for (const auto& run : runs)
    for (const auto& a : run.adapters) all.push_back(&a);
  std::string html =
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>MixLoRA run "
      "report";
  std::vector<std::string> names;
  for (const auto& run : runs) names.push_back(run.name);
  html += escape(": " + fmt::format("{}", fmt::join(names, " vs ")));
  html += "</title>\n";
  html += kStyle;
  html += "</head>\n<body>\n";
  html += fmt::format("<h1>MixLoRA run report: {}</h1>\n",
                      escape(fmt::format("{}", fmt::join(names, " vs "))));
  for (const auto& run : runs) {
    size_t alarms = 0;
    for (const auto& a : run.adapters) alarms += a.alarms.size();
    html += fmt::format("<div class=\"meta\">{}: {} adapter{}, {} router alarm{}</div>\n",
                        escape(run.dir), run.adapters.size(), run.adapters.size() == 1 ? "" : "s",
                        alarms, alarms == 1 ? "" : "s");
  }
  if (all.size() > 1) html += overview(all, several_runs);
  // Per adapter: the same adapter of each run next to each other, then the next adapter.
  std::vector<std::string> order;
  for (const auto* a : all)
    if (std::find(order.begin(), order.end(), a->name) == order.end()) order.push_back(a->name);
  html += "<h2>Per adapter</h2>\n<div class=\"row\">\n";
  for (const auto& name : order) {
    for (const auto* a : all)
      if (a->name == name) html += adapter_card(*a, several_runs);
  }
  html += "</div>\n</body>\n</html>\n";
  return html;
}

std::string write_report(const std::vector<std::string>& run_dirs, const std::string& output) {
  std::vector<RunMetrics> runs;
  for (const auto& dir : run_dirs) runs.push_back(read_run(dir));
  io::write_file_atomically(output, render_report(runs));
  return output;
}

}  // namespace mixlora::report
