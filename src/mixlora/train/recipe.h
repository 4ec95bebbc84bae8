// The loop every training job runs, in torchtune's recipe shape. A recipe is set up by its
// constructor; run_recipe() then resumes it and repeats one (fused) step and what follows it
// (optimizer steps, progress, held-out scoring, saves) until no batch is left, checking at
// every step boundary whether a signal or a fault asked it to stop; finish() writes the results.
// The adapter trainer (trainer.cpp) and full-parameter pretraining (pretrain.cpp) are the two
// recipes.
#pragma once

namespace mixlora::train {

// Recipe: resume(); next_batch() -> a container, empty when done; step(batch);
// after_step(batch); stop_if_requested(); finish() -> the result.
template <typename Recipe>
auto run_recipe(Recipe& recipe) {
  recipe.resume();
  for (auto batch = recipe.next_batch(); !batch.empty(); batch = recipe.next_batch()) {
    recipe.step(batch);
    recipe.after_step(batch);
    recipe.stop_if_requested();
  }
  return recipe.finish();
}

}  // namespace mixlora::train
