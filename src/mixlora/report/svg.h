// Inline SVG charts for the run report: line charts over steps and layer x expert heatmaps.
// Plain markup, no script: they render in any browser offline.
#pragma once

#include "mixlora/report/run_metrics.h"

#include <optional>
#include <string>
#include <vector>

namespace mixlora::report {

struct LineSeries {
  std::string label;
  std::string colour;
  const Series* series = nullptr;
};

struct LineChartOptions {
  int width = 380, height = 210;
  bool legend = true;                  // a legend line per series (else: `legend_note`)
  std::string legend_note;             // e.g. "colour: layer 0 (dark) .. 21 (light)"
  std::optional<double> threshold;     // a dashed horizontal line ...
  std::string threshold_label;         // ... and its label
  std::optional<double> y_min, y_max;  // fixed range (else from the data)
};

// "" when no series has a finite point.
std::string line_chart(const std::string& title, const std::vector<LineSeries>& series,
                       const LineChartOptions& options = {});

// rows x columns values (layers x experts), coloured from 0 to `max_value`.
struct HeatmapOptions {
  int cell_width = 30, cell_height = 14;
  bool labels = true;  // axis labels and colour bar
};
std::string heatmap(const std::string& title, const std::vector<std::vector<double>>& values,
                    double max_value, const HeatmapOptions& options = {});

// Colours: `palette(i)` distinct for series; `ramp(t)` t in [0, 1] for heatmaps and layers.
std::string palette(size_t i);
std::string ramp(double t);

std::string escape(const std::string& text);  // for HTML and SVG text

}  // namespace mixlora::report
