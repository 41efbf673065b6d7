#!/usr/bin/env bash
# benches/anchors.sh [SECONDS] — anchor mesher-stress's driver against wrk and oha on loopback.
#
# Starts examples/trivial_target (keep-alive hyper server, 32-byte JSON) pinned to core 0, then
# runs each client pinned to core 1 with the same connections and duration, one after the other:
#   1. keep-alive closed loop:      wrk -t1 -cC, oha -cC, mesher-stress load -cC --keep-alive
#   2. connection per request:      wrk -H 'Connection: close', oha --disable-keepalive, mesher-stress (default)
#   3. open-loop accuracy:          mesher-stress --rate R (asked vs achieved), oha -q R --latency-correction
#   4. latency correction:          mesher-stress --rate against `mesher-stress target --keep-alive
#                                   --fault pause=2s/200ms` (skipped if the built-in target is not ready)
#   5. the built-in target in benchmark mode (--keep-alive) on GET …/dashboard/health beside the
#      trivial target, wrk and mesher-stress each, with the server CPU per request from /proc
#   6. connection per request against a server that answers after DELAY ms and closes every
#      connection (Mesher's mode and answer time): wrk -H 'Connection: close' and mesher-stress;
#      the rate is the server's (C / DELAY), the figure that matters is client CPU per request
# For each: req/s and client CPU seconds per 100k requests (user+sys of the client process).
# Sections 1, 2 and 5 run every tool REPEAT times, interleaved (wrk, oha, mesher-stress, wrk, ...),
# and end with each tool's median: a virtual machine's neighbours move single runs by ±30 %.
# Environment: C (connections, 32), RATE (open loop, 10000), PORT (18080), REPEAT (3), DELAY (5 ms).
set -uo pipefail
D=${1:-5}
C=${C:-32}
RATE=${RATE:-10000}
PORT=${PORT:-18080}
REPEAT=${REPEAT:-3}
DELAY=${DELAY:-5}
cd "$(dirname "$0")/.."
TD=${CARGO_TARGET_DIR:-target}
echo "== building (release)"
cargo build --release --quiet --bin mesher-stress --example trivial_target || exit 5
BIN=$TD/release/mesher-stress
TT=$TD/release/examples/trivial_target
OUT=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$OUT"; }
trap cleanup EXIT

wait_port() { # port seconds [pid: give up early when it exits]
  for _ in $(seq 1 $(( $2 * 10 ))); do
    (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0
    [ -n "${3:-}" ] && ! kill -0 "$3" 2>/dev/null && return 1
    sleep 0.1
  done
  return 1
}

taskset -c 0 "$TT" 127.0.0.1:$PORT 2>/dev/null & PIDS+=($!)
wait_port $PORT 5 || { echo "trivial target did not start"; exit 5; }
URL=http://127.0.0.1:$PORT

# run NAME -- command...: time the client (pinned to core 1); prints its CPU seconds to $OUT/NAME.cpu
run() {
  local name=$1; shift; shift
  local TIMEFORMAT='%U %S'
  { time taskset -c 1 "$@" > "$OUT/$name.out" 2> "$OUT/$name.err"; } 2> "$OUT/$name.time"
  awk '{print $1+$2}' "$OUT/$name.time" > "$OUT/$name.cpu"
}

row() { # name req_total req_per_s
  local cpu; cpu=$(cat "$OUT/$1.cpu")
  awk -v n="$1" -v t="$2" -v r="$3" -v c="$cpu" 'BEGIN { printf "  %-34s %10.0f req/s  %9d requests  %5.2f CPU-s  %5.2f CPU-s/100k\n", n, r, t, c, (t>0? c/t*100000 : 0) }'
  awk -v n="${1%#*}" -v t="$2" -v r="$3" -v c="$cpu" 'BEGIN { printf "%s\t%f\t%f\n", n, r, (t>0? c/t*100000 : 0) }' >> "$OUT/rows.tsv"
}

# medians NAME...: each tool's median req/s and CPU-s/100k over its REPEAT runs.
medians() {
  for n in "$@"; do
    awk -F'\t' -v n="$n" '$1 == n { r[++k] = $2; c[k] = $3 }
      function med(a, k,   i, j, t) { for (i = 2; i <= k; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
        return k % 2 ? a[(k+1)/2] : (a[k/2] + a[k/2+1]) / 2 }
      END { if (k) printf "  median %-27s %10.0f req/s  (%d runs)          %5.2f CPU-s/100k\n", n, med(r, k), k, med(c, k) }' "$OUT/rows.tsv"
  done
}

wrk_row() {
  local total rps
  total=$(grep -Eo '^ *[0-9]+ requests in' "$OUT/$1.out" | grep -Eo '[0-9]+' | head -1)
  rps=$(grep -E '^Requests/sec' "$OUT/$1.out" | awk '{print $2}')
  row "$1" "${total:-0}" "${rps:-0}"
}
oha_row() {
  local rps total
  rps=$(grep -E 'Requests/sec' "$OUT/$1.out" | awk '{print $2}' | head -1)
  total=$(awk -v r="${rps:-0}" -v d="$D" 'BEGIN{printf "%d", r*d}')
  row "$1" "$total" "${rps:-0}"
}
ms_row() {
  python3 - "$OUT/$1/report.json" "$OUT/$1.cpu" "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); cpu = float(open(sys.argv[2]).read())
n = r["requests_sent"]; rate = r["achieved_rate"]
with open(sys.argv[2].rsplit("/", 1)[0] + "/rows.tsv", "a") as f:
    f.write(f"{sys.argv[3].split('#')[0]}\t{rate}\t{cpu/max(n,1)*1e5}\n")
asked = r["planned"].get("asked_rate")
extra = f"  asked {asked:.0f}/s, achieved {rate:.1f}/s ({(rate/asked-1)*100:+.2f}%)" if asked else ""
print(f"  {sys.argv[3]:<34} {rate:10.0f} req/s  {n:9d} requests  {cpu:5.2f} CPU-s  {cpu/max(n,1)*1e5:5.2f} CPU-s/100k{extra}")
print(f"  {'':<34} p50 {r['latency']['p50']}µs p99 {r['latency']['p99']}µs (uncorrected p99 {r['latency_uncorrected']['p99']}µs), errors {r['errors']}, consistent {r['consistent']}")
PY
}

HAVE_OHA=0; command -v oha >/dev/null && HAVE_OHA=1
HAVE_WRK=0; command -v wrk >/dev/null && HAVE_WRK=1
[ $HAVE_WRK = 1 ] || echo "(wrk not installed: apt-get install wrk — skipping its rows)"
[ $HAVE_OHA = 1 ] || echo "(oha not installed: cargo install oha takes ~6 min — skipping its rows)"

echo "== 1. keep-alive, closed loop, $C connections, ${D}s (target on core 0, client on core 1), $REPEAT runs each"
for i in $(seq 1 "$REPEAT"); do
  if [ $HAVE_WRK = 1 ]; then run "wrk-keepalive#$i" -- wrk -t1 -c$C -d${D}s $URL/; wrk_row "wrk-keepalive#$i"; fi
  if [ $HAVE_OHA = 1 ]; then run "oha-keepalive#$i" -- oha --no-tui -c $C -z ${D}s $URL/; oha_row "oha-keepalive#$i"; fi
  run "ms-keepalive#$i" -- "$BIN" --quiet --out "$OUT/ms-keepalive#$i" load --http $URL --route-get / -c $C --duration ${D}s --keep-alive
  ms_row "ms-keepalive#$i"
done
medians wrk-keepalive oha-keepalive ms-keepalive

echo "== 2. connection per request, closed loop, $C connections, ${D}s, $REPEAT runs each"
# per_request TAG URL: every tool, connection per request against URL, REPEAT runs interleaved.
per_request() {
  local tag=$1 u=$2 i
  for i in $(seq 1 "$REPEAT"); do
    if [ $HAVE_WRK = 1 ]; then run "wrk-$tag#$i" -- wrk -t1 -c$C -d${D}s -H 'Connection: close' $u/; wrk_row "wrk-$tag#$i"; fi
    if [ $HAVE_OHA = 1 ]; then run "oha-$tag#$i" -- oha --no-tui -c $C -z ${D}s --disable-keepalive $u/; oha_row "oha-$tag#$i"; fi
    run "ms-$tag#$i" -- "$BIN" --quiet --out "$OUT/ms-$tag#$i" load --http $u --route-get / -c $C --duration ${D}s
    ms_row "ms-$tag#$i"
  done
  medians wrk-$tag oha-$tag ms-$tag
}
per_request close $URL

echo "== 3. open loop at $RATE req/s, $C connections, ${D}s"
run ms-open -- "$BIN" --quiet --out "$OUT/ms-open" load --http $URL --route-get / -c $C --rate $RATE --duration ${D}s --keep-alive
ms_row ms-open
if [ $HAVE_OHA = 1 ]; then run oha-open -- oha --no-tui -c $C -z ${D}s -q $RATE --latency-correction $URL/; oha_row oha-open; fi

echo "== 4. latency correction against the built-in target's pause fault (pause=2s/200ms)"
TP=$((PORT + 10))
"$BIN" --quiet target --keep-alive --http-port $TP --ws-port $((TP + 1)) --fault pause=2s/200ms > "$OUT/target.log" 2>&1 & TPID=$!
PIDS+=($TPID)
if wait_port $TP 60 $TPID; then
  run ms-pause -- "$BIN" --quiet --out "$OUT/ms-pause" load --http http://127.0.0.1:$TP -c 8 --rate 1000 --duration ${D}s --keep-alive
  ms_row ms-pause
  python3 - "$OUT/ms-pause/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"  corrected p99 {r['latency']['p99']/1000:.1f} ms vs uncorrected p99 {r['latency_uncorrected']['p99']/1000:.1f} ms (max {r['latency']['max']/1000:.1f} ms)")
PY
else
  echo "  skipped: the built-in target is not ready (no listener on :$TP: $(tail -1 "$OUT/target.log"))"
fi

echo "== 5. the built-in target in benchmark mode (--keep-alive: read cache) on GET …/dashboard/health, $C connections, ${D}s"
# The target pinned to core 0 like the trivial one; is it, or the client, the limit? The server's
# own CPU per request (from /proc) is printed beside the trivial target's.
server_cpu() { awk '{print $14+$15}' /proc/$1/stat; }
TB=$((PORT + 20))
taskset -c 0 "$BIN" --quiet target --keep-alive --http-port $TB --ws-port $((TB + 1)) > "$OUT/target-bench.log" 2>&1 & BPID=$!
PIDS+=($BPID)
TTPID=${PIDS[0]}
HEALTH=/api/v1/projects/default/dashboard/health
if wait_port $TB 60 $BPID; then
  for i in $(seq 1 "$REPEAT"); do
  for who in trivial builtin; do
    if [ $who = trivial ]; then U=$URL/; SP=$TTPID; else U=http://127.0.0.1:$TB$HEALTH; SP=$BPID; fi
    if [ $HAVE_WRK = 1 ]; then
      s0=$(server_cpu $SP); run "wrk-$who#$i" -- wrk -t1 -c$C -d${D}s $U; s1=$(server_cpu $SP); wrk_row "wrk-$who#$i"
      total=$(grep -Eo '^ *[0-9]+ requests in' "$OUT/wrk-$who#$i.out" | grep -Eo '[0-9]+' | head -1)
      awk -v a=$s0 -v b=$s1 -v n=${total:-0} -v t=$(getconf CLK_TCK) -v w=$who 'BEGIN { if (n > 0) printf "  %-34s server CPU %.2f µs/request\n", "", (b-a)/t*1e6/n }'
    fi
    if [ $who = trivial ]; then P=/; else P=$HEALTH; fi
    s0=$(server_cpu $SP)
    run "ms-$who#$i" -- "$BIN" --quiet --out "$OUT/ms-$who#$i" load --http ${U%$P} --route-get $P -c $C --duration ${D}s --keep-alive
    s1=$(server_cpu $SP)
    ms_row "ms-$who#$i"
    n=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['requests_sent'])" "$OUT/ms-$who#$i/report.json")
    awk -v a=$s0 -v b=$s1 -v n=$n -v t=$(getconf CLK_TCK) 'BEGIN { if (n > 0) printf "  %-34s server CPU %.2f µs/request\n", "", (b-a)/t*1e6/n }'
  done
  done
  medians wrk-trivial wrk-builtin ms-trivial ms-builtin
else
  echo "  skipped: the built-in target is not ready (no listener on :$TB: $(tail -1 "$OUT/target-bench.log"))"
fi

echo "== 6. connection per request against a server that answers after ${DELAY} ms and closes (like Mesher), $C connections, ${D}s, $REPEAT runs each"
TC=$((PORT + 30))
taskset -c 0 "$TT" 127.0.0.1:$TC --close --delay-ms "$DELAY" 2>/dev/null & PIDS+=($!)
if wait_port $TC 5; then
  per_request delayed http://127.0.0.1:$TC
else
  echo "  skipped: the delayed-close trivial target did not start on :$TC"
fi
