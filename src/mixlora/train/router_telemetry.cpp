#include "mixlora/train/router_telemetry.h"

#include "mixlora/train/adapter_run.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>

namespace mixlora::train {

AlarmThresholds AlarmThresholds::of(const config::TrainConfig& c) {
  return {c.router_alarm_dead_share_factor, c.router_alarm_dead_steps,
          c.router_alarm_collapse_share, c.router_alarm_entropy_ratio, c.router_alarm_drop_rate};
}

std::vector<RouterAlarm> RouterAlarms::check(int64_t step, const moe::RouterSummary& summary) {
  std::vector<RouterAlarm> raised;
  auto raise = [&](RouterAlarm alarm) {
    if (raised_.insert({alarm.kind, alarm.layer, alarm.expert}).second)
      raised.push_back(std::move(alarm));
  };
  const auto experts = static_cast<double>(std::max<int64_t>(1, summary.num_experts));
  for (size_t i = 0; i < summary.layers.size(); ++i) {
    const auto& layer = summary.layers[i];
    const auto l = static_cast<int64_t>(i);
    const double dead_below = thresholds_.dead_share_factor / experts;
    for (size_t e = 0; e < layer.expert_share.size(); ++e) {
      auto& streak = dead_streak_[{l, static_cast<int64_t>(e)}];
      streak = layer.expert_share[e] < dead_below ? streak + 1 : 0;
      if (streak >= thresholds_.dead_steps) {
        raise({"dead_expert", step, l, static_cast<int64_t>(e), layer.expert_share[e], dead_below});
      }
    }
    if (!layer.prob_share.empty()) {
      const auto top = std::max_element(layer.prob_share.begin(), layer.prob_share.end());
      if (*top > thresholds_.collapse_share) {
        raise({"collapse", step, l, static_cast<int64_t>(top - layer.prob_share.begin()), *top,
               thresholds_.collapse_share});
      }
    }
    const double entropy_floor = thresholds_.entropy_ratio * std::log(experts);
    if (layer.entropy < entropy_floor)
      raise({"low_entropy", step, l, -1, layer.entropy, entropy_floor});
    if (layer.drop_rate && *layer.drop_rate > thresholds_.drop_rate) {
      raise({"switch_drop", step, l, -1, *layer.drop_rate, thresholds_.drop_rate});
    }
  }
  return raised;
}

nlohmann::json alarm_json(const RouterAlarm& a) {
  nlohmann::json j = {{"kind", a.kind},
                      {"step", a.step},
                      {"layer", a.layer},
                      {"value", a.value},
                      {"threshold", a.threshold}};
  if (a.expert >= 0) j["expert"] = a.expert;
  return j;
}

std::string alarm_line(const std::string& adapter, const std::vector<RouterAlarm>& alarms) {
  if (alarms.empty()) return {};
  const auto& first = alarms.front();
  std::vector<std::string> where;
  for (const auto& a : alarms) {
    where.push_back(a.expert >= 0
                        ? fmt::format("layer {} expert {} ({:.3g})", a.layer, a.expert, a.value)
                        : fmt::format("layer {} ({:.3g})", a.layer, a.value));
  }
  std::string what;
  if (first.kind == "dead_expert") {
    what = fmt::format("dead expert: share of routed tokens below {:.3g} for the last logged steps",
                       first.threshold);
  } else if (first.kind == "collapse") {
    what = fmt::format(
        "router collapse: one expert holds more than {:.0f}% of the router probability of the "
        "tokens",
        100.0 * first.threshold);
  } else if (first.kind == "low_entropy") {
    what = fmt::format("router entropy below {:.3g} nats", first.threshold);
  } else {
    what = fmt::format(
        "switch drops more than {:.0f}% of tokens (raise capacity_factor or expert_capacity)",
        100.0 * first.threshold);
  }
  return fmt::format("{} | step {} | router alarm: {}: {}", adapter, first.step, what,
                     fmt::join(where, ", "));
}

RouterTelemetry::RouterTelemetry(const config::TrainConfig& config, size_t adapters)
    : config_(config),
      pending_(adapters),
      alarms_(adapters, RouterAlarms(AlarmThresholds::of(config))) {}

bool RouterTelemetry::due(const AdapterRun& run) const {
  if (!config_.router_telemetry || !run.adapter().is_mixlora() || run.done()) return false;
  const int64_t next = run.step() + 1;
  return next % std::max<int64_t>(1, config_.log_every) == 0 || next >= run.total_steps();
}

void RouterTelemetry::add(size_t adapter, const moe::RouterBatchStats& stats) {
  pending_[adapter].add(stats);
}

nlohmann::json RouterTelemetry::take(size_t adapter, const AdapterRun& run) {
  if (pending_[adapter].empty()) return nullptr;
  const auto summary = moe::summarize(pending_[adapter].read(), run.adapter().config.moe_options());
  auto record = moe::router_json(summary);
  const auto alarms = alarms_[adapter].check(run.step(), summary);
  if (alarms.empty()) return record;
  auto list = nlohmann::json::array();
  for (const auto& a : alarms) list.push_back(alarm_json(a));
  record["alarms"] = std::move(list);
  // One line per kind, in a fixed order.
  for (const char* kind : {"collapse", "dead_expert", "low_entropy", "switch_drop"}) {
    std::vector<RouterAlarm> same;
    std::copy_if(alarms.begin(), alarms.end(), std::back_inserter(same),
                 [&](const auto& a) { return a.kind == kind; });
    if (!same.empty()) spdlog::warn("{}", alarm_line(run.name(), same));
  }
  return record;
}

}  // namespace mixlora::train
