// The evaluator's accuracy for classification and multiple choice against the same quantities
// computed here row by row, with two adapters fused in one pass.
#include "mixlora/adapters/adapter.h"
#include "mixlora/eval/evaluator.h"
#include "mixlora/model/base_model.h"
#include "mixlora/tasks/classification.h"

#include "catch.h"
#include "stories_model.h"
#include <nlohmann/json.hpp>
#include <torch/csrc/autograd/grad_mode.h>

using namespace mixlora;
using mixlora::test::stories;

namespace {

std::vector<data::Sample> rows_of_lengths(const std::vector<int64_t>& lengths) {
  std::vector<data::Sample> rows;
  int64_t token = 300;
  for (size_t i = 0; i < lengths.size(); ++i) {
    data::Sample s;
    s.input_ids.push_back(1);
    for (int64_t t = 1; t < lengths[i]; ++t) s.input_ids.push_back(token++ % 500 + 3);
    s.labels.assign(s.input_ids.size(), data::kIgnoreIndex);
    rows.push_back(s);
  }
  return rows;
}

}  // namespace

TEST_CASE("evaluate: classification and multiple-choice accuracy", "[eval]") {
  torch::NoGradGuard no_grad;
  config::AdapterConfig cls;
  cls.name = "cls";
  cls.task_name = "classification";
  cls.num_labels = 3;
  cls.peft_type = config::PeftType::mixlora;
  cls.num_experts = 2;
  cls.top_k = 1;
  cls.lora = {2, 4.0, 0.0};
  cls.target_modules = {"q_proj", "up_proj"};
  auto classifier = adapters::Adapter::create(cls, stories(), 5);
  classifier.classifier.normal_(0.0, 1.0);
  auto cls_rows = rows_of_lengths({5, 9, 3, 7, 6, 4, 8});
  for (size_t i = 0; i < cls_rows.size(); ++i)
    cls_rows[i].class_label = static_cast<int64_t>(i % 3);

  // Multiple choice on the bare base model: 3 choices per row, answer = row index % 3.
  auto mc_rows = rows_of_lengths({6, 6, 8, 5, 7});
  for (size_t i = 0; i < mc_rows.size(); ++i) {
    mc_rows[i].prompt_length = static_cast<int64_t>(mc_rows[i].input_ids.size());
    mc_rows[i].choice_token_ids = {10, 20, 30};
    mc_rows[i].answer_index = static_cast<int64_t>(i % 3);
  }

  const model::Decoder decoder(stories());
  const auto results = eval::evaluate(
      decoder, {{&classifier, "classification", &cls_rows}, {nullptr, "arc-e", &mc_rows}},
      /*batch_size=*/3, /*pad_id=*/0);
  REQUIRE(results.size() == 2);

  int64_t cls_correct = 0;
  for (const auto& row : cls_rows) {
    auto ids = at::tensor(row.input_ids, at::kLong).view({1, -1});
    adapters::AdapterHooks hooks({{&classifier, 0, 1}}, at::Tensor(), false);
    auto hidden = decoder.hidden_states(ids, at::Tensor(), nullptr, &hooks);
    auto logits = tasks::classification_logits(
        hidden, at::tensor(std::vector<int64_t>{ids.size(1) - 1}), classifier.classifier);
    cls_correct += logits.argmax(-1).item<int64_t>() == row.class_label;
  }
  int64_t mc_correct = 0;
  for (const auto& row : mc_rows) {
    auto ids = at::tensor(row.input_ids, at::kLong).view({1, -1});
    auto logits = decoder.logits(decoder.hidden_states(ids, at::Tensor()))[0][-1];
    std::vector<double> scores;
    for (auto c : row.choice_token_ids) scores.push_back(logits[c].item<double>());
    mc_correct +=
        std::max_element(scores.begin(), scores.end()) - scores.begin() == row.answer_index;
  }
  CHECK(results[0].adapter_name == "cls");
  CHECK(*results[0].accuracy == Approx(static_cast<double>(cls_correct) / 7));
  CHECK(results[0].samples == 7);
  CHECK(results[0].router_profile.size() == 5);
  CHECK(results[1].adapter_name == "base");
  CHECK(*results[1].accuracy == Approx(static_cast<double>(mc_correct) / 5));
  CHECK(results[1].task_name == "arc-e");
  const auto json = eval::report_json(results);
  CHECK(json[0]["metrics"]["accuracy"].get<double>() == Approx(*results[0].accuracy));
  CHECK(json[1]["metrics"].contains("aux_loss") == false);
}

TEST_CASE("evaluate: shards of the batches sum to the one-process results", "[eval][distributed]") {
  config::AdapterConfig mix;
  mix.name = "mix";
  mix.task_name = "casual";
  mix.peft_type = config::PeftType::mixlora;
  mix.num_experts = 4;
  mix.top_k = 2;
  mix.router_aux_loss_coef = 0.01;
  mix.lora = {2, 4.0, 0.0};
  mix.target_modules = {"q_proj", "up_proj"};
  auto adapter = adapters::Adapter::create(mix, stories(), 11);
  {
    torch::NoGradGuard
        no_grad;  // fresh LoRA B is zero: perturb every weight so the adapter matters
    for (auto p : adapter.parameters()) p.normal_(0.0, 0.05);
  }
  auto rows = rows_of_lengths({5, 9, 3, 7, 6, 4, 8, 5, 6, 7, 3});
  for (auto& row : rows) {
    row.labels = row.input_ids;
    row.labels[0] = data::kIgnoreIndex;
  }
  const model::Decoder decoder(stories());
  const std::vector<eval::EvalInput> inputs = {{&adapter, "casual", &rows},
                                               {nullptr, "casual", &rows}};
  const auto whole = eval::evaluate(decoder, inputs, /*batch_size=*/2, /*pad_id=*/0);  // 6 batches

  // Three shards: batches {0, 3}, {1, 4}, {2, 5}; their totals summed as the trainer's all-reduce
  // does.
  std::vector<eval::EvalTotals> sum;
  int64_t shard_batches = 0;
  for (int64_t index = 0; index < 3; ++index) {
    const auto part = eval::score(decoder, inputs, 2, 0, {index, 3});
    CHECK(part[0].batches == 2);  // a shard scores its own batches only
    shard_batches += part[0].batches;
    if (sum.empty()) {
      sum = part;
      continue;
    }
    for (size_t i = 0; i < sum.size(); ++i) {
      auto values = sum[i].flatten();
      const auto more = part[i].flatten();
      REQUIRE(values.size() == more.size());
      for (size_t v = 0; v < values.size(); ++v) values[v] += more[v];
      sum[i].assign(values);
    }
  }
  CHECK(shard_batches == 6);
  const auto sharded = eval::results_of(inputs, sum);
  REQUIRE(sharded.size() == 2);
  for (size_t i = 0; i < 2; ++i) {
    INFO("input " << i);
    CHECK(sharded[i].tokens == whole[i].tokens);
    CHECK(sharded[i].samples == whole[i].samples);
    CHECK(sharded[i].loss == Approx(whole[i].loss).epsilon(1e-12));
    CHECK(sharded[i].aux_loss.has_value() == whole[i].aux_loss.has_value());
    CHECK(sharded[i].router_profile == whole[i].router_profile);  // exact: whole counts
  }
  CHECK(whole[0].loss != Approx(whole[1].loss).epsilon(1e-9));  // the adapter changes the scores
  CHECK(*sharded[0].aux_loss == Approx(*whole[0].aux_loss).epsilon(1e-12));
  CHECK(whole[0].router_profile.size() == 5);  // every layer of stories260K routes
}
