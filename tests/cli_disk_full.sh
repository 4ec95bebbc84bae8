# A save that runs out of space (RLIMIT_FSIZE, as a full disk: writes fail with EFBIG) stops the
# run with one clear line and exit 1, leaves the previous checkpoint intact and no partial one,
# and a later --resume with space again ends with an uninterrupted run's bytes.
set -euo pipefail
BIN=$1 SRC=$2
source "$SRC/tests/train_run.sh"
train_run_setup 24 4

train "$WORK/ref" >/dev/null 2>"$WORK/ref.log" || fail "reference run: $(tail -n 2 "$WORK/ref.log")"
ref=$WORK/ref/mixlora
# An interrupted run: only checkpoint-4 survived.
cp -r "$WORK/ref" "$WORK/run"
run=$WORK/run/mixlora
rm -rf "$run/checkpoint-8" "$run/adapter_model.safetensors" "$run/adapter_config.json"
before=$(cd "$run/checkpoint-4" && sha256sum ./*)
# Room for the adapter file of checkpoint-8 but not for its larger optimizer state.
adapter=$(stat -c %s "$ref/checkpoint-4/adapter_model.safetensors")
optimizer=$(stat -c %s "$ref/checkpoint-4/optimizer.safetensors")
limit_kib=$(((adapter + optimizer) / 2 / 1024))
rc=0
(ulimit -f "$limit_kib" && train "$WORK/run" --resume >/dev/null 2>"$WORK/full.log") || rc=$?
[ "$rc" = 1 ] || fail "disk full: exit $rc, expected 1; $(tail -n 2 "$WORK/full.log")"
tail -n 1 "$WORK/full.log" | grep -q "optimizer.safetensors.*File too large" || fail "message: $(tail -n 1 "$WORK/full.log")"
grep -c "error" "$WORK/full.log" | grep -qx 1 || fail "more than one error line"
[ "$(cd "$run/checkpoint-4" && sha256sum ./*)" = "$before" ] || fail "checkpoint-4 changed"
[ ! -e "$run/checkpoint-8" ] && [ ! -e "$run/.checkpoint-8.tmp" ] || fail "partial checkpoint left: $(ls -a "$run")"
! compgen -G "$run/*.tmp.*" >/dev/null || fail "temporary file left: $(ls -a "$run")"
echo "disk full at ${limit_kib} KiB: exit 1, '$(tail -n 1 "$WORK/full.log" | cut -c1-160)'"
train "$WORK/run" --resume >/dev/null 2>>"$WORK/full.log" || fail "resume with space: $(tail -n 2 "$WORK/full.log")"
cmp "$ref/adapter_model.safetensors" "$run/adapter_model.safetensors" || fail "resumed adapter differs"
echo "resumed with space: identical bytes"
