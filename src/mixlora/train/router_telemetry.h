// Router telemetry of a training run (docs/telemetry.md): the routing statistics of the
// micro-batches of each logged step, read back in one transfer when the step is logged and
// written as the record's "router" object; and the alarms a failing router raises, each
// condition logged once, in one line per kind.
#pragma once

#include "mixlora/config/train_config.h"
#include "mixlora/moe/router_stats.h"

#include <nlohmann/json.hpp>

#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

namespace mixlora::train {

class AdapterRun;

struct AlarmThresholds {
  double dead_share_factor = 0.25;  // dead: expert_share < factor / E ...
  int64_t dead_steps = 3;           // ... for this many logged steps in a row
  double collapse_share = 0.5;      // collapse: max prob_share > this
  double entropy_ratio = 0.1;       // low entropy: entropy < ratio * log(E)
  double drop_rate = 0.1;           // switch: drop_rate > this
  static AlarmThresholds of(const config::TrainConfig& config);
};

struct RouterAlarm {
  std::string kind;                          // dead_expert | collapse | low_entropy | switch_drop
  int64_t step = 0, layer = 0, expert = -1;  // expert: -1 when the condition is the layer's
  double value = 0.0, threshold = 0.0;
};

// Alarm state of one adapter: which conditions were raised, dead-expert streaks.
class RouterAlarms {
 public:
  explicit RouterAlarms(AlarmThresholds thresholds = {}) : thresholds_(thresholds) {}
  // The conditions this logged step's summary raises for the first time.
  std::vector<RouterAlarm> check(int64_t step, const moe::RouterSummary& summary);

 private:
  AlarmThresholds thresholds_;
  std::map<std::pair<int64_t, int64_t>, int64_t> dead_streak_;  // (layer, expert) -> logged steps
  std::set<std::tuple<std::string, int64_t, int64_t>> raised_;
};

nlohmann::json alarm_json(const RouterAlarm& alarm);
// One log line for the alarms of one kind raised at one step.
std::string alarm_line(const std::string& adapter, const std::vector<RouterAlarm>& alarms);

class RouterTelemetry {
 public:
  RouterTelemetry(const config::TrainConfig& config, size_t adapters);
  // Whether the micro-batches of `run`'s next step should carry routing statistics: it is a
  // MixLoRA adapter, telemetry is on and that step will be logged.
  bool due(const AdapterRun& run) const;
  void add(size_t adapter, const moe::RouterBatchStats& stats);
  // At a logged step of `run`: the "router" object (null when no statistics were gathered),
  // with "alarms" when some were raised (also logged as warnings).
  nlohmann::json take(size_t adapter, const AdapterRun& run);

 private:
  const config::TrainConfig& config_;
  std::vector<moe::RouterStatAccumulator> pending_;
  std::vector<RouterAlarms> alarms_;
};

}  // namespace mixlora::train
