#include "mixlora/report/svg.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>

namespace mixlora::report {

namespace {

// Round tick steps (1, 2, 5 x 10^k) covering [lo, hi] with about `count` ticks.
std::vector<double> nice_ticks(double lo, double hi, int count) {
  if (!(hi > lo)) return {lo};
  const double raw = (hi - lo) / count;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = magnitude;
  for (double f : {1.0, 2.0, 5.0, 10.0}) {
    step = f * magnitude;
    if (step >= raw) break;
  }
  std::vector<double> ticks;
  for (double t = std::ceil(lo / step) * step; t <= hi + step * 1e-9; t += step)
    ticks.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
  return ticks;
}

std::string tick_text(double v) {
  if (v == 0.0) return "0";
  const double a = std::abs(v);
  if (a >= 1e5 || a < 1e-3) return fmt::format("{:.1e}", v);
  return fmt::format("{:.4g}", v);
}

}  // namespace

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string palette(size_t i) {
  static const std::array<const char*, 10> colours = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                                      "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                                                      "#bcbd22", "#17becf"};
  return colours[i % colours.size()];
}

std::string ramp(double t) {
  // Viridis, five stops, linearly interpolated.
  static const std::array<std::array<double, 3>, 5> stops = {
      {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}}};
  if (!std::isfinite(t)) t = 0.0;
  t = std::clamp(t, 0.0, 1.0) * (stops.size() - 1);
  const auto i = std::min<size_t>(static_cast<size_t>(t), stops.size() - 2);
  const double f = t - static_cast<double>(i);
  auto channel = [&](int c) {
    return static_cast<int>(std::lround(stops[i][c] + f * (stops[i + 1][c] - stops[i][c])));
  };
  return fmt::format("#{:02x}{:02x}{:02x}", channel(0), channel(1), channel(2));
}

std::string line_chart(const std::string& title, const std::vector<LineSeries>& series,
                       const LineChartOptions& o) {
  double x_lo = INFINITY, x_hi = -INFINITY, y_lo = INFINITY, y_hi = -INFINITY;
  for (const auto& s : series) {
    for (size_t i = 0; i < s.series->steps.size(); ++i) {
      const double y = s.series->values[i];
      if (!std::isfinite(y)) continue;
      x_lo = std::min(x_lo, s.series->steps[i]);
      x_hi = std::max(x_hi, s.series->steps[i]);
      y_lo = std::min(y_lo, y);
      y_hi = std::max(y_hi, y);
    }
  }
  if (!std::isfinite(x_lo)) return "";
  if (o.threshold) {
    y_lo = std::min(y_lo, *o.threshold);
    y_hi = std::max(y_hi, *o.threshold);
  }
  if (o.y_min) y_lo = *o.y_min;
  if (o.y_max) y_hi = *o.y_max;
  if (!(y_hi > y_lo)) {
    const double pad = y_lo == 0.0 ? 1.0 : std::abs(y_lo) * 0.1;
    y_lo -= pad;
    y_hi += pad;
  } else if (!o.y_min && !o.y_max) {
    const double pad = (y_hi - y_lo) * 0.05;
    y_lo -= pad;
    y_hi += pad;
  }
  if (!(x_hi > x_lo)) {
    x_lo -= 1.0;
    x_hi += 1.0;
  }
  const int legend_lines =
      o.legend ? static_cast<int>(series.size()) : (o.legend_note.empty() ? 0 : 1);
  const int left = 56, right = 12, top = 24;
  const int plot_w = o.width - left - right, plot_h = o.height - top - 34;
  const int height = o.height + 14 * legend_lines;
  auto px = [&](double x) { return left + (x - x_lo) / (x_hi - x_lo) * plot_w; };
  auto py = [&](double y) { return top + (1.0 - (y - y_lo) / (y_hi - y_lo)) * plot_h; };
  std::string svg = fmt::format(
      "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
      "viewBox=\"0 0 {} {}\">\n"
      "<rect x=\"0\" y=\"0\" width=\"{}\" height=\"{}\" fill=\"#ffffff\"/>\n"
      "<text x=\"6\" y=\"15\" class=\"title\">{}</text>\n",
      o.width, height, o.width, height, o.width, height, escape(title));
  svg += fmt::format(
      "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#fafafa\" stroke=\"#cccccc\"/>\n",
      left, top, plot_w, plot_h);
  for (double t : nice_ticks(y_lo, y_hi, 4)) {
    if (t < y_lo || t > y_hi) continue;
    svg += fmt::format(
        "<line x1=\"{}\" x2=\"{}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#e4e4e4\"/>"
        "<text x=\"{}\" y=\"{:.1f}\" class=\"tick\" text-anchor=\"end\">{}</text>\n",
        left, left + plot_w, py(t), py(t), left - 4, py(t) + 3, tick_text(t));
  }
  for (double t : nice_ticks(x_lo, x_hi, 5)) {
    if (t < x_lo || t > x_hi) continue;
    svg += fmt::format(
        "<line x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{}\" y2=\"{}\" stroke=\"#e4e4e4\"/>"
        "<text x=\"{:.1f}\" y=\"{}\" class=\"tick\" text-anchor=\"middle\">{}</text>\n",
        px(t), px(t), top, top + plot_h, px(t), top + plot_h + 13, tick_text(t));
  }
  svg += fmt::format("<text x=\"{}\" y=\"{}\" class=\"tick\" text-anchor=\"middle\">step</text>\n",
                     left + plot_w / 2, top + plot_h + 26);
  if (o.threshold) {
    svg += fmt::format(
        "<line x1=\"{}\" x2=\"{}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#d62728\" "
        "stroke-dasharray=\"5,3\"/>"
        "<text x=\"{}\" y=\"{:.1f}\" class=\"tick\" fill=\"#d62728\" "
        "text-anchor=\"end\">{}</text>\n",
        left, left + plot_w, py(*o.threshold), py(*o.threshold), left + plot_w - 3,
        py(*o.threshold) - 3, escape(o.threshold_label));
  }
  for (const auto& s : series) {
    std::string points;
    size_t finite = 0;
    double last_x = 0, last_y = 0;
    for (size_t i = 0; i < s.series->steps.size(); ++i) {
      const double y = s.series->values[i];
      if (!std::isfinite(y)) continue;
      last_x = px(s.series->steps[i]);
      last_y = py(std::clamp(y, y_lo, y_hi));
      points += fmt::format("{:.1f},{:.1f} ", last_x, last_y);
      ++finite;
    }
    if (finite == 1) {
      svg += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"2.5\" fill=\"{}\"/>\n", last_x,
                         last_y, s.colour);
    } else if (finite > 1) {
      svg += fmt::format(
          "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" "
          "points=\"{}\"><title>{}</title></polyline>\n",
          s.colour, points, escape(s.label));
    }
  }
  int y = o.height + 2;
  if (o.legend) {
    for (const auto& s : series) {
      svg += fmt::format(
          "<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"3\" fill=\"{}\"/>"
          "<text x=\"{}\" y=\"{}\" class=\"tick\">{}</text>\n",
          left, y - 4, s.colour, left + 16, y, escape(s.label));
      y += 14;
    }
  } else if (!o.legend_note.empty()) {
    svg += fmt::format("<text x=\"{}\" y=\"{}\" class=\"tick\">{}</text>\n", left, y,
                       escape(o.legend_note));
  }
  return svg + "</svg>\n";
}

std::string heatmap(const std::string& title, const std::vector<std::vector<double>>& values,
                    double max_value, const HeatmapOptions& o) {
  if (values.empty() || values.front().empty()) return "";
  const int rows = static_cast<int>(values.size()), cols = static_cast<int>(values.front().size());
  const int left = o.labels ? 52 : 4, top = 22, bar = o.labels ? 54 : 0;
  // Wide enough for the title (about 6.5 px per character at the title's size).
  const int title_width =
      static_cast<int>(6.5 * static_cast<double>(title.size())) + (o.labels ? 8 : 2);
  const int width = std::max(left + cols * o.cell_width + bar + 6, title_width);
  const int height = top + rows * o.cell_height + (o.labels ? 26 : 4);
  std::string svg = fmt::format(
      "<svg class=\"heatmap\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
      "viewBox=\"0 0 {} {}\">\n"
      "<text x=\"{}\" y=\"14\" class=\"title\">{}</text>\n",
      width, height, width, height, o.labels ? 6 : 1, escape(title));
  const double scale = max_value > 0.0 ? max_value : 1.0;
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < cols && c < static_cast<int>(values[r].size()); ++c) {
      svg += fmt::format(
          "<rect class=\"cell\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\">"
          "<title>layer {} expert {}: {:.3f}</title></rect>\n",
          left + c * o.cell_width, top + r * o.cell_height, o.cell_width, o.cell_height,
          ramp(values[r][c] / scale), r, c, values[r][c]);
    }
  }
  if (!o.labels) return svg + "</svg>\n";
  const int label_every = rows > 12 ? (rows + 11) / 12 : 1;
  for (int r = 0; r < rows; r += label_every) {
    svg += fmt::format("<text x=\"{}\" y=\"{}\" class=\"tick\" text-anchor=\"end\">L{}</text>\n",
                       left - 4, top + r * o.cell_height + o.cell_height - 3, r);
  }
  for (int c = 0; c < cols; ++c) {
    svg +=
        fmt::format("<text x=\"{}\" y=\"{}\" class=\"tick\" text-anchor=\"middle\">{}</text>\n",
                    left + c * o.cell_width + o.cell_width / 2, top + rows * o.cell_height + 12, c);
  }
  svg +=
      fmt::format("<text x=\"{}\" y=\"{}\" class=\"tick\" text-anchor=\"middle\">expert</text>\n",
                  left + cols * o.cell_width / 2, top + rows * o.cell_height + 24);
  // Colour bar: 0 at the bottom, max_value at the top.
  const int bar_x = left + cols * o.cell_width + 8, bar_h = rows * o.cell_height;
  for (int i = 0; i < 20; ++i) {
    svg += fmt::format("<rect x=\"{}\" y=\"{:.1f}\" width=\"10\" height=\"{:.1f}\" fill=\"{}\"/>\n",
                       bar_x, top + bar_h * (19 - i) / 20.0, bar_h / 20.0 + 0.5,
                       ramp((i + 0.5) / 20.0));
  }
  svg += fmt::format(
      "<text x=\"{}\" y=\"{}\" class=\"tick\">{:.2f}</text><text x=\"{}\" y=\"{}\" "
      "class=\"tick\">0</text>\n",
      bar_x + 13, top + 8, scale, bar_x + 13, top + bar_h);
  return svg + "</svg>\n";
}

}  // namespace mixlora::report
