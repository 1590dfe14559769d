#!/usr/bin/env bash
# Connection scale (issue 17 item 4): N authenticated idle connections held, their memory and
# keepalive CPU, then one-to-one traffic at RATE msg/s (P pairs) while they are held, and the
# same traffic on the same kind of server without them (interleaved, same sitting).
#
#   scripts/bench/conns_traffic.sh [N] [ROUNDS]          (default: 17500 1)
#
# Environment: RATE (2000), PAIRS (100), MESSAGES (600 per sender: 30 s at 2,000 msg/s),
# PROBE (keepalive --probe-interval and --probe-timeout of the server, 10 s, so that several
# sweeps and a probe of every idle connection fall inside the traffic; shipped: 30 / 15),
# IDLE (seconds held idle before the memory/CPU reading, 25: at least two sweeps and one probe
# of everyone), BENCH_OUT (docs/bench-results). Accounts are seeded into the database
# (scripts/bench/seed_accounts.py) instead of registered: see its docstring.
#
# File descriptors: one process may hold at most its hard RLIMIT_NOFILE (20,000 in this
# sandbox, not raisable without CAP_SYS_RESOURCE), and the server keeps a reserve
# (it accepts 18,000 with 20,000 files): N up to ~17,500 here. 50,000 needs a hard limit above
# 50,000 for the server (and several generator processes or a higher limit for the generator).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
N="${1:-17500}"
ROUNDS="${2:-1}"
RATE="${RATE:-2000}"; PAIRS="${PAIRS:-100}"; MESSAGES="${MESSAGES:-600}"
PROBE="${PROBE:-10}"; IDLE="${IDLE:-25}"
PY="$ROOT/.venv/bin/python"
BENCH=("$PY" -m messenger.bench.cli)
OUT="${BENCH_OUT:-$ROOT/docs/bench-results}"
JSON="$OUT/results.jsonl"
SRV="$ROOT/scripts/bench/server.sh"
export BENCH_PORT="${BENCH_PORT:-17777}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
READY="$(mktemp -u /tmp/conns_traffic.ready.XXXXXX)"
mkdir -p "$OUT"
IDLE_PID=""
cleanup() {
	[[ -n "$IDLE_PID" ]] && kill "$IDLE_PID" 2>/dev/null || true
	"$SRV" stop >/dev/null 2>&1 || true
	rm -f "$READY"
}
trap cleanup EXIT

start() {   # a fresh server with PROBE-second keepalive and N + 2 PAIRS accounts
	"$SRV" stop >/dev/null
	"$SRV" start --probe-interval "$PROBE" --probe-timeout "$PROBE" >/dev/null
	"$PY" "$ROOT/scripts/bench/seed_accounts.py" "$("$SRV" datadir)/messenger.sqlite" idle "$N" >/dev/null
	"$PY" "$ROOT/scripts/bench/seed_accounts.py" "$("$SRV" datadir)/messenger.sqlite" bench $((2 * PAIRS)) >/dev/null
}

traffic() {   # LABEL: the one-to-one run at RATE
	"${BENCH[@]}" delivery --label "$1" --login authenticate --server "127.0.0.1:$BENCH_PORT" \
		--secret-file "$("$SRV" secret)" --server-pid "$("$SRV" pid)" -P "$PAIRS" -M "$MESSAGES" \
		--rate "$RATE" --max-seconds 150 --json-out "$JSON" 2>&1 >/dev/null | tail -1
}

for _ in $(seq 1 "$ROUNDS"); do
	echo "# $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg): traffic alone"
	start
	traffic "traffic-rate$RATE-alone"
	echo "# $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg): $N idle, then traffic"
	start
	rm -f "$READY"
	"${BENCH[@]}" connections --label "idle-$N" -N "$N" --login authenticate --user-prefix idle \
		--server "127.0.0.1:$BENCH_PORT" --secret-file "$("$SRV" secret)" --server-pid "$("$SRV" pid)" \
		--hold "$IDLE" --then-hold $(( MESSAGES * PAIRS / RATE + 40 )) --ready-file "$READY" \
		--connect-concurrency 200 --source-addresses $(( N / 25000 + 1 )) --max-seconds 900 \
		--json-out "$JSON" 2>&1 >/dev/null | tail -1 &
	IDLE_PID=$!
	for _ in $(seq 1 9000); do   # wait (bounded) for the idle reading
		[[ -s "$READY" ]] && break
		kill -0 "$IDLE_PID" 2>/dev/null || break
		sleep 0.1
	done
	if [[ -s "$READY" ]]; then
		traffic "traffic-rate$RATE-with-$N-idle"
	else
		echo "idle connections never got ready"
	fi
	wait "$IDLE_PID" || true
	IDLE_PID=""
	"$SRV" stop >/dev/null
done
