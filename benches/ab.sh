#!/usr/bin/env bash
# benches/ab.sh BEFORE_BIN AFTER_BIN [MODE...] — A/B of two mesher-stress builds, interleaved.
#
# Each MODE runs both binaries N times, alternating (before, after, before, ...), against
# examples/trivial_target pinned to core 0 with the client on core 1, and prints each run's
# client CPU seconds per 100k requests (user+sys of the client process / requests sent):
#   close    connection per request, closed loop, 32 connections, 5 s
#   delayed  the same against a server that answers after 5 ms and closes (Mesher's mode)
#   open     open loop at 10 000 requests/s, keep-alive
# Build BEFORE in a worktree of the old commit (`cargo build --release` there). A virtual
# machine's neighbours move single runs by ±15 %: compare the medians.
# Environment: N (runs per binary, 4), PORT (18080).
set -uo pipefail
[ $# -ge 2 ] || { sed -n '2,12p' "$0"; exit 2; }
BEFORE=$1 AFTER=$2; shift 2
MODES=("$@"); [ ${#MODES[@]} -gt 0 ] || MODES=(close delayed open)
N=${N:-4}
PORT=${PORT:-18080}
cd "$(dirname "$0")/.."
cargo build --release --quiet --example trivial_target || exit 5
TT=${CARGO_TARGET_DIR:-target}/release/examples/trivial_target
OUT=$(mktemp -d)
SERVER=
cleanup() { [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; rm -rf "$OUT"; }
trap cleanup EXIT

one() { # label binary args...
  local label=$1 bin=$2; shift 2
  rm -rf "$OUT/run"
  /usr/bin/time -f "%U %S" -o "$OUT/time" taskset -c 1 "$bin" --quiet --out "$OUT/run" load "$@" >/dev/null 2>&1
  python3 - "$label" "$OUT/time" "$OUT/run/report.json" <<'PY'
import json, sys
label, tf, rf = sys.argv[1:]
cpu = sum(map(float, open(tf).read().split()))
r = json.load(open(rf))
p = r["phases"][0] if "phases" in r else r
n = p.get("requests_sent", 0)
print(f"{label:<16} {n:>8} requests  {cpu:5.2f} CPU-s  {cpu / max(n, 1) * 1e5:6.2f} CPU-s/100k")
PY
}

for mode in "${MODES[@]}"; do
  case $mode in
    close) extra=(); args=(-c 32 --duration 5s) ;;
    delayed) extra=(--delay-ms 5); args=(-c 32 --duration 5s) ;;
    open) extra=(); args=(-c 32 --duration 5s --rate 10000 --keep-alive) ;;
    *) echo "unknown mode $mode (close, delayed, open)"; exit 2 ;;
  esac
  taskset -c 0 "$TT" 127.0.0.1:$PORT "${extra[@]}" >/dev/null 2>&1 & SERVER=$!
  sleep 0.5
  for i in $(seq 1 "$N"); do
    one "$mode before#$i" "$BEFORE" --http http://127.0.0.1:$PORT --route-get / "${args[@]}"
    one "$mode after#$i" "$AFTER" --http http://127.0.0.1:$PORT --route-get / "${args[@]}"
  done
  kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null; SERVER=
done
