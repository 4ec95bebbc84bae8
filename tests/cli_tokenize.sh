# mixlora-tokenize: JSON lines in and out against the PyPI tokenizers fixtures of the tiny
# tokenizer.json (tests/fixtures/tokenizer), its round trip, SentencePiece directories, and
# exit code 2 with <stdin>:LINE for bad input.
set -euo pipefail
BIN=$1 SRC=$2
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
TOK="$BIN/mixlora-tokenize"
DIR="$SRC/data/tokenizers/tiny-bytelevel"
FIXTURE="$SRC/tests/fixtures/tokenizer/tiny-bytelevel.jsonl"

# Inputs and expected outputs from the fixture (python3: the system's, standard library only).
python3 - "$FIXTURE" "$WORK" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8")]
out = sys.argv[2]
def write(name, items):
    with open(f"{out}/{name}", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(item, separators=(",", ":"), ensure_ascii=False) + "\n" for item in items)
write("texts.jsonl", [{"text": r["text"]} for r in rows])
write("ids.expected", [{"ids": r["ids"]} for r in rows])
write("ids_special.expected", [{"ids": r["ids_special"]} for r in rows])
write("decoded.expected", [{"text": r["decoded_skip"]} for r in rows])
PY
normalize() { python3 -c 'import json,sys; [print(json.dumps(json.loads(l), separators=(",", ":"), ensure_ascii=False)) for l in sys.stdin]'; }

"$TOK" --base-model "$DIR" < "$WORK/texts.jsonl" | normalize > "$WORK/ids.out"
cmp "$WORK/ids.out" "$WORK/ids.expected" || fail "ids differ from PyPI tokenizers: $(diff "$WORK/ids.out" "$WORK/ids.expected" | head -n 4)"
"$TOK" --base-model "$DIR" --add-special-tokens < "$WORK/texts.jsonl" | normalize > "$WORK/ids_special.out"
cmp "$WORK/ids_special.out" "$WORK/ids_special.expected" || fail "--add-special-tokens ids differ"
"$TOK" --base-model "$DIR" --decode < "$WORK/ids.expected" | normalize > "$WORK/decoded.out"
cmp "$WORK/decoded.out" "$WORK/decoded.expected" || fail "decoded text differs: $(diff "$WORK/decoded.out" "$WORK/decoded.expected" | head -n 4)"
echo "tokenize, --add-special-tokens and --decode match PyPI tokenizers on $(wc -l < "$WORK/texts.jsonl") lines"

# A SentencePiece directory (no tokenizer.json) goes through the same program.
out=$(printf '{"text": "Hello world"}\n' | "$TOK" --base-model "$SRC/data/tiny-llama")
back=$(echo "$out" | "$TOK" --base-model "$SRC/data/tiny-llama" --decode)
[ "$back" = '{"text":"Hello world"}' ] || fail "SentencePiece round trip: $out -> $back"

# Bad input: exit code 2, one line naming <stdin>:LINE.
expect_input_error() {  # expect_input_error WHAT PATTERN ARGS... < input
  local what=$1 pattern=$2 rc=0
  shift 2
  "$TOK" "$@" > /dev/null 2> "$WORK/err" || rc=$?
  [ "$rc" = 2 ] || fail "$what: exit $rc, expected 2 ($(cat "$WORK/err"))"
  grep -q -- "$pattern" "$WORK/err" || fail "$what: message '$(cat "$WORK/err")' lacks '$pattern'"
}
printf '{"text": "ok"}\n\n{"text": broken\n' | expect_input_error "not JSON" "<stdin>:3: not valid JSON" --base-model "$DIR"
printf '{"txt": "a"}\n' | expect_input_error "no text" '<stdin>:1: missing "text"' --base-model "$DIR"
printf '{"text": 5}\n' | expect_input_error "text type" '<stdin>:1: "text" must be a string' --base-model "$DIR"
printf '{"ids": [1, 99999]}\n' | expect_input_error "bad id" "<stdin>:1: token id 99999 is outside" --base-model "$DIR" --decode
printf '{"text": "a"}\n' | expect_input_error "no tokenizer" "no tokenizer.json and no tokenizer.model" --base-model "$SRC/data/stories260K"
echo "bad input: exit code 2 with <stdin>:LINE"
