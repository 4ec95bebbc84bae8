#!/usr/bin/env bash
# Rebuilds the tiny demo base model data/tiny-llama/{config.json,model.safetensors}: a LLaMA of
# the shape in configs/tiny-llama-shape.json, initialised at random (N(0, 0.02), seed 42) and
# pretrained from scratch by our own trainer (`mixlora-train --pretrain`, every weight trained)
# on Moby-Dick with the settings of configs/pretrain-tiny-llama.json.
#
#   1. the corpus and tokenizer: scripts/fetch_corpora.sh + scripts/train_tokenizer.sh when
#      $CORPORA_DIR/tiny-llama/moby-dick.txt is missing (one paragraph per line)
#   2. the corpus as JSONL {text} rows of at most ROW_TOKENS tokens (whole sentences, paragraphs
#      joined by "\n", in book order), in $CORPORA_DIR/tiny-llama/pretrain/: every 40th row goes
#      to valid.jsonl (held out), the rest to train.jsonl
#   3. mixlora-train --pretrain into $CORPORA_DIR/tiny-llama/pretrain/model/, then config.json and
#      model.safetensors copied into data/tiny-llama/ (the tokenizer there is not touched)
#   4. the held-out loss (mixlora-eval) and a greedy sample, for the README
#
# The run uses every core unless THREADS is set; with one BLAS thread (OPENBLAS_NUM_THREADS=1)
# two runs give the same bytes; with several, sums may be ordered differently (last-bit
# differences that training can amplify).
#
# Usage: scripts/make_tiny_llama.sh [--set lora[0].num_epochs=1 ...]   (extra args go to mixlora-train)
# Env:   CORPORA_DIR (~/.cache/mixlora-corpora), BUILD_DIR (build), ROW_TOKENS (250), THREADS (0 = all)
# Needs: a build (scripts/build.sh), python3, spm_encode; for step 1 those of fetch_corpora.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

CORPORA_DIR=${CORPORA_DIR:-$HOME/.cache/mixlora-corpora}
export CORPORA_DIR
BIN=${BUILD_DIR:-build}/bin
ROW_TOKENS=${ROW_TOKENS:-250}
THREADS=${THREADS:-0}
CORPUS=$CORPORA_DIR/tiny-llama/moby-dick.txt
WORK=$CORPORA_DIR/tiny-llama/pretrain
OUT=data/tiny-llama

[ -x "$BIN/mixlora-train" ] || { echo "error: $BIN/mixlora-train not found: run scripts/build.sh first" >&2; exit 1; }
if [ ! -f "$CORPUS" ]; then
  scripts/fetch_corpora.sh
  scripts/train_tokenizer.sh
fi
mkdir -p "$WORK"

# 2. Rows of whole sentences up to ROW_TOKENS tokens (counted with spm_encode, BOS excluded), so
#    that cutoff_len 256 truncates almost nothing; a sentence longer than that is a row of its own.
python3 - "$CORPUS" "$OUT/tokenizer.model" "$WORK" "$ROW_TOKENS" <<'EOF'
import json, re, subprocess, sys
corpus, tokenizer, work, limit = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
paragraphs = [line.rstrip("\n") for line in open(corpus, encoding="utf-8") if line.strip()]
units = []  # (paragraph index, sentence)
for p, text in enumerate(paragraphs):
    for sentence in re.split(r"(?<=[.!?;])\s+(?=\S)", text):
        units.append((p, sentence))
counts = subprocess.run(["spm_encode", "--model=" + tokenizer, "--output_format=id"],
                        input="\n".join(s for _, s in units) + "\n", capture_output=True,
                        text=True, check=True).stdout.splitlines()
assert len(counts) == len(units), (len(counts), len(units))
rows, text, tokens, last_p = [], "", 0, None
for (p, sentence), ids in zip(units, counts):
    n = len(ids.split())
    sep = "" if not text else (" " if p == last_p else "\n")
    if text and tokens + n + (1 if sep else 0) > limit:
        rows.append(text)
        text, tokens, sep = "", 0, ""
    text += sep + sentence
    tokens += n + (1 if sep else 0)
    last_p = p
if text:
    rows.append(text)
with open(f"{work}/train.jsonl", "w", encoding="utf-8") as train, \
     open(f"{work}/valid.jsonl", "w", encoding="utf-8") as valid:
    for i, row in enumerate(rows):
        (valid if i % 40 == 39 else train).write(json.dumps({"text": row}, ensure_ascii=False) + "\n")
print(f"rows: {len(rows)} ({len(rows) // 40} held out) from {len(paragraphs)} paragraphs, "
      f"{len(units)} sentences, at most {limit} tokens each")
EOF

# 3. Pretrain from scratch.
"$BIN/mixlora-train" --pretrain --config configs/pretrain-tiny-llama.json \
  --init-model configs/tiny-llama-shape.json --tokenizer "$OUT" \
  --set "lora[0].data=$WORK/train.jsonl" --output-dir "$WORK/model" --overwrite \
  --threads "$THREADS" "$@" | tee "$WORK/summary.txt"
cp "$WORK/model/config.json" "$WORK/model/model.safetensors" "$OUT/"

# 4. What the README reports.
echo "model:      $OUT/model.safetensors ($(wc -c < "$OUT/model.safetensors") bytes, sha256 $(sha256sum "$OUT/model.safetensors" | cut -d' ' -f1))"
"$BIN/mixlora-eval" --base-model "$OUT" --with-base --data "$WORK/valid.jsonl" --task casual \
  --output "$WORK/valid-report.json" --log-level warn
"$BIN/mixlora-generate" --base-model "$OUT" --prompt "Call me Ishmael." --max-new-tokens 40 \
  --temperature 0 --log-level warn
echo
