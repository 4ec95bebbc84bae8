# mixlora-report as a person sees it: the HTML of a real run (tests/fixtures/report-run, the
# metrics.jsonl of a short demo run), compared with a second run, rendered by headless Chromium:
# the DOM holds the SVG charts and heatmaps, and the screenshot is not blank (many colours, much
# ink), unlike the screenshot of an empty page taken the same way. Skips without Chromium
# (scripts/setup.sh installs Debian's `chromium` for the tests).
set -euo pipefail
BIN=$1 SRC=$2
fail() { echo "FAIL: $*" >&2; exit 1; }

CHROMIUM=""
for c in chromium chromium-browser google-chrome; do
  if command -v "$c" >/dev/null 2>&1; then CHROMIUM=$c; break; fi
done
[ -n "$CHROMIUM" ] || { echo "skipped: needs chromium (scripts/setup.sh installs it)"; exit 0; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cp -r "$SRC/tests/fixtures/report-run" "$WORK/run-a"
cp -r "$SRC/tests/fixtures/report-run" "$WORK/run-b"
"$BIN/mixlora-report" "$WORK/run-a" "$WORK/run-b" --output "$WORK/report.html" >/dev/null 2>"$WORK/report.log" ||
  fail "mixlora-report: $(cat "$WORK/report.log")"
html="$WORK/report.html"
# Self-contained: no script, no stylesheet or image from elsewhere (SVG's xmlns is a name, not a fetch).
! grep -qi "<script" "$html" || fail "the report holds a script"
! grep -v 'xmlns="http://www.w3.org/2000/svg"' "$html" | grep -qiE '(src|href)=' || fail "the report links elsewhere"

chrome() { timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run \
                   --user-data-dir="$WORK/profile" "$@" 2>>"$WORK/chromium.log"; }
chrome --dump-dom "file://$html" > "$WORK/dom.html" || fail "chromium --dump-dom: $(tail -n 3 "$WORK/chromium.log")"
count() { grep -o "$1" "$WORK/dom.html" | wc -l; }
adapters=$(ls "$WORK/run-a" | wc -l)
[ "$(count '<svg')" -ge $((4 * adapters)) ] || fail "$(count '<svg') SVG elements for $adapters adapters x 2 runs"
[ "$(count 'class="heatmap"')" -ge 2 ] || fail "no layer x expert heatmaps in the DOM"
[ "$(count 'class="cell"')" -ge 16 ] || fail "heatmaps without cells"
[ "$(count '<polyline')" -ge $((4 * adapters)) ] || fail "only $(count '<polyline') lines"
grep -q "router entropy per layer" "$WORK/dom.html" || fail "no entropy chart"
grep -q "run-a / " "$WORK/dom.html" && grep -q "run-b / " "$WORK/dom.html" || fail "the two runs are not labelled"

chrome --screenshot="$WORK/report.png" --window-size=1000,1400 "file://$html" >/dev/null ||
  fail "chromium --screenshot: $(tail -n 3 "$WORK/chromium.log")"
echo '<!DOCTYPE html><html><body></body></html>' > "$WORK/blank.html"
chrome --screenshot="$WORK/blank.png" --window-size=1000,1400 "file://$WORK/blank.html" >/dev/null ||
  fail "chromium --screenshot (blank page)"
read -r w h colours ink < <(python3 "$SRC/tests/tools/png_stats.py" "$WORK/report.png")
read -r _ _ blank_colours blank_ink < <(python3 "$SRC/tests/tools/png_stats.py" "$WORK/blank.png")
[ "$w" = 1000 ] && [ "$h" = 1400 ] || fail "screenshot is ${w}x${h}"
[ "$blank_colours" -le 2 ] || fail "the blank page's screenshot has $blank_colours colours: the check cannot tell"
[ "$colours" -ge 50 ] || fail "screenshot has only $colours colours (blank page: $blank_colours)"
awk -v ink="$ink" 'BEGIN { exit !(ink > 0.10) }' || fail "screenshot is mostly background (ink $ink, blank page $blank_ink)"
echo "report renders: $(count '<svg') SVGs, $(count 'class="cell"') heatmap cells; screenshot $colours colours, ink $ink (blank page: $blank_colours colours, ink $blank_ink)"
