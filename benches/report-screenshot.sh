#!/usr/bin/env bash
# Manual check of the HTML report in a real browser: renders RUN_DIR/report.html in headless
# Chromium, saves a full-page screenshot to OUT.png, and fails when the page did not render or
# the browser reported a JavaScript error, a failed load or a blocked request (the report must be
# self-contained: no script, no network).
#
#   benches/report-screenshot.sh runs/smoke-20260101T000000 /tmp/report.png
#   HEIGHT=6000 benches/report-screenshot.sh RUN_DIR OUT.png    # a taller page (default 3000 px)
#
# Needs Debian's chromium (apt-get install -y chromium); not part of CI (too heavy).
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 RUN_DIR OUT.png" >&2
  exit 2
fi
run_dir=$(cd "$1" && pwd)
out=$2
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
html="$run_dir/report.html"
[ -f "$html" ] || { echo "error: $html does not exist (render it with: mesher-stress report $run_dir)" >&2; exit 1; }
command -v chromium >/dev/null || { echo "error: chromium not found (apt-get install -y chromium)" >&2; exit 1; }

profile=$(mktemp -d)
logs=$(mktemp -d)
trap 'rm -rf "$profile" "$logs"' EXIT
flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking
  --disable-component-update --disable-sync --user-data-dir="$profile" --enable-logging=stderr --v=0
  --window-size=1400,${HEIGHT:-3000})

# 1. The screenshot (OUT.png).
rm -f "$out"
chromium "${flags[@]}" --screenshot="$out" "file://$html" >"$logs/shot.out" 2>"$logs/shot.err" || {
  echo "error: chromium failed" >&2; cat "$logs/shot.err" >&2; exit 1; }
[ -s "$out" ] || { echo "error: no screenshot written" >&2; cat "$logs/shot.err" >&2; exit 1; }

# 2. The DOM after rendering: the page must have its title, sections and charts.
chromium "${flags[@]}" --dump-dom "file://$html" >"$logs/dom.html" 2>"$logs/dom.err" || {
  echo "error: chromium --dump-dom failed" >&2; cat "$logs/dom.err" >&2; exit 1; }
fail=0
grep -q '<h1>mesher-stress' "$logs/dom.html" || { echo "error: no report heading in the rendered DOM" >&2; fail=1; }
sections=$(grep -o '<h2>' "$logs/dom.html" | wc -l || true)
charts=$(grep -o '<svg' "$logs/dom.html" | wc -l || true)
[ "$sections" -gt 0 ] || { echo "error: no sections rendered" >&2; fail=1; }

# 3. Anything loaded from elsewhere would be a failed load on an offline machine (and breaks the
#    "self-contained" promise): no src/href/url() other than data: URLs and in-page anchors.
if grep -oE '(src|href)="[^"#][^"]*"|url\([^)d][^)]*\)' "$logs/dom.html" | grep -v '"data:' >"$logs/external"; then
  echo "error: the report loads external resources:" >&2
  cat "$logs/external" >&2
  fail=1
fi

# 4. Console output (the report has no script: any is a problem), JavaScript errors, failed or
#    blocked loads, as Chromium logs them to stderr.
if grep -hE 'CONSOLE|Uncaught|net::ERR_|Failed to load|Refused to|Not allowed to load' "$logs/shot.err" "$logs/dom.err" \
  >"$logs/problems"; then
  echo "error: the browser reported problems:" >&2
  cat "$logs/problems" >&2
  fail=1
fi
[ $fail -eq 0 ] || exit 1
echo "ok: $out ($(stat -c %s "$out") bytes); $sections sections, $charts charts; no console errors or failed loads"
