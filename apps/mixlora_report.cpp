// mixlora-report: renders a training run's metrics.jsonl files (loss, eval, lr, grad norm,
// router telemetry and alarms) into one self-contained HTML file with inline SVG; with two run
// directories, compares them side by side (docs/telemetry.md).
#include "mixlora/cli/app.h"
#include "mixlora/common/error.h"
#include "mixlora/report/html_report.h"

#include <filesystem>
#include <iostream>

int main(int argc, char** argv) {
  CLI::App app{"Render a training run's metrics into one HTML report (inline SVG, no script).",
               "mixlora-report"};
  mixlora::cli::CommonOptions common;
  mixlora::cli::add_common_options(app, common);
  std::vector<std::string> run_dirs;
  std::string output;
  app.add_option("RUN_DIR", run_dirs,
                 "training output directory (output_dir); two or more are compared")
      ->required();
  app.add_option("--output,-o", output,
                 "HTML file to write (default: RUN_DIR/report.html, the first RUN_DIR)");
  return mixlora::cli::run_main(app, argc, argv, [&] {
    mixlora::cli::apply_common_options(common);
    if (output.empty()) output = (std::filesystem::path(run_dirs.front()) / "report.html").string();
    std::cout << mixlora::report::write_report(run_dirs, output) << "\n";
    return 0;
  });
}
