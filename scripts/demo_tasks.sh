#!/usr/bin/env bash
# The demo tasks (work in progress, issue 5): install dependencies, build, then train MixLoRA and
# plain LoRA adapters on the two demo tasks (SpamAssassin ham/spam classification and the
# bsdgames quiz as 4-way multiple choice) over the embedded tiny base model, all four adapters
# fused in one run, evaluate them on the held-out splits and print the comparison table.
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
  --adapter "$OUT/mixlora-spam" --adapter "$OUT/lora-spam" --output "$OUT/eval-spam.json"
"$BIN/mixlora-eval" --base-model "$BASE" --task arc-e --data data/demo/quiz/test.jsonl --with-base \
  --adapter "$OUT/mixlora-quiz" --adapter "$OUT/lora-quiz" --output "$OUT/eval-quiz.json"

/usr/bin/python3 - "$OUT" "$train_seconds" <<'PY'
import json, sys
out, seconds = sys.argv[1], sys.argv[2]
def accuracy(report, name):
    for r in report:
        if r["adapter_name"] == name:
            return r["metrics"].get("accuracy")
def params(name):
    import struct
    with open(f"{out}/{name}/adapter_model.safetensors", "rb") as f:
        header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
    total = 0
    for key, info in header.items():
        if key != "__metadata__":
            n = 1
            for d in info["shape"]: n *= d
            total += n
    return total
spam = json.load(open(f"{out}/eval-spam.json"))
quiz = json.load(open(f"{out}/eval-quiz.json"))
labels = [json.loads(l)["label"] for l in open("data/demo/spam/test.jsonl")]
majority = max(labels.count(x) for x in set(labels)) / len(labels)
rows = [
    ("spam (ham/spam, 200 test)", f"{majority:.3f} (majority)", accuracy(spam, "lora-spam"), accuracy(spam, "mixlora-spam"),
     params("lora-spam"), params("mixlora-spam")),
    ("quiz (4-way MC, 200 test)", f"{accuracy(quiz, 'base'):.3f} (zero-shot)", accuracy(quiz, "lora-quiz"),
     accuracy(quiz, "mixlora-quiz"), params("lora-quiz"), params("mixlora-quiz")),
]
print(f"\ntraining: {seconds} s for 4 adapters fused\n")
print(f"| task | base model | LoRA | MixLoRA | LoRA params | MixLoRA params |")
print(f"|---|---|---|---|---|---|")
for task, base, lora, mix, lp, mp in rows:
    print(f"| {task} | {base} | {lora:.3f} | {mix:.3f} | {lp} | {mp} |")
PY
