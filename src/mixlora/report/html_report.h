// mixlora-report: one self-contained HTML file (inline SVG and CSS, no script, no network) that
// shows what a training run did, per adapter: loss, eval metric, learning rate, gradient norm,
// router losses; for MixLoRA adapters the layer x expert token-share heatmap (final and over
// time), entropy and load imbalance per layer over steps, and the router alarms raised.
// Several runs (directories) are compared side by side (docs/telemetry.md).
#pragma once

#include "mixlora/report/run_metrics.h"

#include <string>
#include <vector>

namespace mixlora::report {

std::string render_report(const std::vector<RunMetrics>& runs);

// Reads the run directories and writes the report to `output` atomically. Returns `output`.
std::string write_report(const std::vector<std::string>& run_dirs, const std::string& output);

}  // namespace mixlora::report
