#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: install dependencies, build, then train MixLoRA and
# plain LoRA adapters on the two demo tasks over the embedded tiny base model (data/tiny-llama),
# all four adapters fused in one run (configs/demo.json), evaluate them on the held-out splits
# and print the comparison table.
#   spam: SpamAssassin ham/spam, sequence classification (accuracy; chance = majority class)
#   quiz: bsdgames quiz questions -> answers, instruction task (perplexity of the answers)
# BASE_MODEL, OUT_DIR and BUILD_DIR override the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
BIN=${BUILD_DIR:-build}/bin
BASE=${BASE_MODEL:-data/tiny-llama}
OUT=${OUT_DIR:-output/demo}
if [ ! -f "$BASE/model.safetensors" ]; then
  echo "demo: no base model in $BASE (rebuild the embedded one with scripts/make_tiny_llama.sh)" >&2
  exit 2
fi

start=$(date +%s)
"$BIN/mixlora-train" --config configs/demo.json --base-model "$BASE" --output-dir "$OUT" --overwrite
train_seconds=$(( $(date +%s) - start ))

"$BIN/mixlora-eval" --base-model "$BASE" --task classification --data data/demo/spam/test.jsonl \
  --cutoff-len 256 --adapter "$OUT/mixlora-spam" --adapter "$OUT/lora-spam" --output "$OUT/eval-spam.json"
"$BIN/mixlora-eval" --base-model "$BASE" --data data/demo/quiz/test.jsonl --responses-only --with-base \
  --cutoff-len 256 --adapter "$OUT/mixlora-quiz" --adapter "$OUT/lora-quiz" --output "$OUT/eval-quiz.json"

# The table (python3 comes with the python3-torch package that setup.sh installs).
python3 - "$OUT" "$train_seconds" <<'PY'
import json, struct, sys
out, seconds = sys.argv[1], int(sys.argv[2])

def metric(report, name, key):
    return next(r["metrics"][key] for r in report if r["adapter_name"] == name)

def params(name):  # trainable parameters = the tensors of the saved adapter
    with open(f"{out}/{name}/adapter_model.safetensors", "rb") as f:
        header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
    total = 0
    for key, info in header.items():
        if key != "__metadata__":
            n = 1
            for d in info["shape"]:
                n *= d
            total += n
    return total

spam = json.load(open(f"{out}/eval-spam.json"))
quiz = json.load(open(f"{out}/eval-quiz.json"))
labels = [json.loads(line)["label"] for line in open("data/demo/spam/test.jsonl")]
majority = max(labels.count(x) for x in set(labels)) / len(labels)
print(f"\ntraining: {seconds // 60} min {seconds % 60} s for the 4 adapters, fused\n")
print("| task (held-out split) | metric | base model | LoRA | MixLoRA | LoRA params | MixLoRA params |")
print("|---|---|---|---|---|---|---|")
print(f"| spam: ham/spam, 200 rows | accuracy (higher is better) | {majority:.3f} (majority class) "
      f"| {metric(spam, 'lora-spam', 'accuracy'):.3f} | {metric(spam, 'mixlora-spam', 'accuracy'):.3f} "
      f"| {params('lora-spam'):,} | {params('mixlora-spam'):,} |")
print(f"| quiz: question -> answer, 200 rows | answer perplexity (lower is better) "
      f"| {metric(quiz, 'base', 'perplexity'):.1f} (zero-shot) | {metric(quiz, 'lora-quiz', 'perplexity'):.1f} "
      f"| {metric(quiz, 'mixlora-quiz', 'perplexity'):.1f} | {params('lora-quiz'):,} | {params('mixlora-quiz'):,} |")
print(f"\nreports: {out}/eval-spam.json, {out}/eval-quiz.json; adapters and metrics.jsonl under {out}/")
PY
