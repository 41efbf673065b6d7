#!/usr/bin/env bash
# The tool's own memory stays flat during a long run: builds the release binary, runs the nightly
# soak profile (profiles/nightly-soak.toml) with its soak phase shortened to MINUTES (default 10;
# the watchdog fuzz phase left out) against the built-in target, samples the RSS of the
# mesher-stress process itself (not the target, not PostgreSQL) from /proc every 10 s, and
# prints the RSS at minute 1 and at the end of the soak phase and the growth between them.
# Each figure is the median of a minute's samples (every 5 s): a single sample can land on a
# transient (a mutated request of several MiB being built, a checkpoint being written), which
# the peak reports separately.
#
#   benches/tool-rss.sh            # 10 minutes
#   benches/tool-rss.sh 60         # an hour
#   KEEP_RUN=/tmp/soak benches/tool-rss.sh 30   # keep the run directory (report.json/html) there
#
# Exits 1 when the growth exceeds MAX_GROWTH_MIB (default 8). Why 8 MiB holds for any length:
# everything the tool keeps per second or per request is capped (see ARCHITECTURE.md, "Memory
# in long runs"): histograms are per route x layer x outcome, the timeline at 4096 entries,
# telemetry at 8192 samples, the flight recorder at 32 requests per lane, the id pool at 1024
# keys/rules, the invariants ledger at 4096 ids per kind. What remains is allocator noise and
# the caps filling up in the first hour (at most a few MiB).
set -euo pipefail

minutes=${1:-10}
max_growth_mib=${MAX_GROWTH_MIB:-8}
case "$minutes" in '' | *[!0-9]*) echo "usage: $0 [MINUTES]" >&2; exit 2 ;; esac
[ "$minutes" -ge 2 ] || { echo "error: MINUTES must be at least 2 (minute 1 is the reference)" >&2; exit 2; }
cd "$(dirname "$0")/.."

cargo build --release --quiet
bin=target/release/mesher-stress

work=$(mktemp -d)
keep=${KEEP_RUN:-}
trap 'kill "$pid" 2>/dev/null || true; if [ -n "$keep" ] && [ -d "$work/run" ]; then rm -rf "$keep"; cp -r "$work/run" "$keep"; cp "$samples" "$keep/tool-rss.tsv" 2>/dev/null || true; fi; rm -rf "$work"' EXIT
profile=$work/soak.toml
# The soak phase lasts MINUTES; max_duration leaves room for set-up and the invariants; the
# fuzz phase (fresh targets, not this process's steady state) is dropped.
awk -v m="$minutes" '
  /^\[\[phases\]\]$/ { hdr = $0; pending = 1; next }
  pending { pending = 0; if ($0 ~ /^kind = "fuzz"/) exit; print hdr }
  /^duration = "6h"$/ { print "duration = \"" m "m\""; found++; next }
  /^max_duration = / { print "max_duration = \"" m + 15 "m\""; next }
  { print }
  END { if (found != 1) exit 3 }
' profiles/nightly-soak.toml >"$profile" || {
  echo "error: profiles/nightly-soak.toml has no soak phase line 'duration = \"6h\"' to shorten" >&2
  exit 5
}

log=$work/run.log
"$bin" --out "$work/run" run "$profile" >"$work/stdout" 2>"$log" &
pid=$!
start=$(date +%s)
samples=$work/rss.tsv
echo "mesher-stress pid $pid: nightly soak, soak phase ${minutes} min; RSS every 5 s" >&2
load_started="" load_ended=""
while kill -0 "$pid" 2>/dev/null; do
  now=$(( $(date +%s) - start ))
  [ -z "$load_started" ] && grep -q '^phase 2: load' "$log" && load_started=$now
  [ -z "$load_ended" ] && grep -q '^phase 3:' "$log" && load_ended=$now
  if [ -n "$load_started" ] && [ -z "$load_ended" ]; then
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
    [ -n "$rss" ] && printf '%s\t%s\n' "$(( now - load_started ))" "$rss" >>"$samples"
  fi
  sleep 5
done
set +e
wait "$pid"
code=$?
set -e
[ -s "$samples" ] || { echo "error: no RSS sample taken; the run said:" >&2; tail -20 "$log" >&2; exit 5; }
if [ "$code" -ne 0 ]; then
  echo "warning: the soak run itself exited $code (its verdict; the memory figures stand); what failed:" >&2
  grep -E '^(FAIL|FLAGGED)|FAILED$|FLAGGED$' "$work/stdout" | head -20 >&2 || true
  tail -3 "$work/stdout" >&2
fi

# Minute 1: the median of the samples in [60 s, 120 s) of load; the end: the median of the
# samples in the last 60 s of the load.
median() { sort -n | awk '{ a[NR] = $1 } END { if (NR) print (NR % 2 ? a[(NR + 1) / 2] : int((a[NR / 2] + a[NR / 2 + 1]) / 2)) }'; }
tn=$(tail -1 "$samples" | cut -f1)
[ "$tn" -ge 120 ] || { echo "error: the load phase ended before minute 2" >&2; exit 5; }
rss1=$(awk -F'\t' '$1 >= 60 && $1 < 120 { print $2 }' "$samples" | median)
rssn=$(awk -F'\t' -v t="$tn" '$1 > t - 60 { print $2 }' "$samples" | median)
max_rss=$(awk -F'\t' 'BEGIN { m = 0 } $2 > m { m = $2 } END { print m }' "$samples")
growth_kib=$(( rssn - rss1 ))
awk -v tn="$tn" -v r1="$rss1" -v rn="$rssn" -v mx="$max_rss" -v n="$(wc -l <"$samples")" 'BEGIN {
  printf "tool RSS at minute 1 (median of 60-120 s of load): %.1f MiB\n", r1 / 1024
  printf "tool RSS at the end  (median of the last 60 s, t=%ds): %.1f MiB\n", tn, rn / 1024
  printf "growth: %+.1f MiB over %.1f min; peak %.1f MiB (transients); %d samples\n", (rn - r1) / 1024, (tn - 90) / 60, mx / 1024, n
}'
# The whole curve: per minute of load, the median and the largest sample.
for m in $(seq 1 $(( tn / 60 ))); do
  med=$(awk -F'\t' -v m="$m" 'int($1 / 60) == m { print $2 }' "$samples" | median)
  top=$(awk -F'\t' -v m="$m" 'BEGIN { x = 0 } int($1 / 60) == m && $2 > x { x = $2 } END { print x }' "$samples")
  [ -n "$med" ] && awk -v m="$m" -v a="$med" -v b="$top" 'BEGIN { printf "%s%d: %.1f (max %.1f)", (m == 1 ? "RSS by minute of load, median (MiB): " : ", "), m, a / 1024, b / 1024 }'
done
echo
if [ "$growth_kib" -gt $(( max_growth_mib * 1024 )) ]; then
  echo "FAIL: the tool's RSS grew by more than ${max_growth_mib} MiB during the load" >&2
  exit 1
fi
echo "ok: growth within ${max_growth_mib} MiB"
