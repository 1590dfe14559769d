#!/usr/bin/env bash
# The files figures of docs/BENCHMARKS.md ("Files"): messenger-bench files against a fresh
# server per run, after waiting for a quiet machine, appended to docs/bench-results/files.jsonl.
#
#   scripts/bench/run_files.sh [ROUNDS] [messenger-bench files options...]   (default: 3 rounds)
#
# Environment: BENCH_PORT (default 17787), BENCH_RUN (default /tmp/bench_files), QUIET_WAIT
# (seconds to wait for a >= 90 % idle machine before each run, default 120), SERVER_OPTS
# (extra twistd messenger options, e.g. "--db-sync normal").
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
ROUNDS="${1:-3}"
shift || true
export BENCH_PORT="${BENCH_PORT:-17787}" BENCH_RUN="${BENCH_RUN:-/tmp/bench_files}"
SRV="$ROOT/scripts/bench/server.sh"
OUT="$ROOT/docs/bench-results"
JSON="$OUT/files.jsonl"
QUIET_WAIT="${QUIET_WAIT:-120}"
mkdir -p "$OUT"
trap '"$SRV" stop >/dev/null 2>&1 || true' EXIT

busy_pct() {
	local a b
	a=($(head -1 /proc/stat)); sleep 1; b=($(head -1 /proc/stat))
	local idle=$(( (b[4]+b[5]) - (a[4]+a[5]) )) total=0 i
	for i in 1 2 3 4 5 6 7 8; do total=$(( total + b[i] - a[i] )); done
	echo $(( total > 0 ? 100 * (total - idle) / total : 0 ))
}

echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) files, $(git rev-parse --short HEAD), loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq 1 "$ROUNDS"); do
	"$SRV" stop >/dev/null 2>&1 || true
	# shellcheck disable=SC2086
	"$SRV" start ${SERVER_OPTS:-} >/dev/null
	sleep 1
	waited=0
	while busy="$(busy_pct)"; (( busy > 10 && waited < QUIET_WAIT )); do waited=$((waited + 1)); done
	"$ROOT/.venv/bin/messenger-bench" files --server "127.0.0.1:$BENCH_PORT" \
		--secret-file "$("$SRV" secret)" --server-pid "$("$SRV" pid)" \
		--label "round $round, busy ${busy}% before${SERVER_OPTS:+, $SERVER_OPTS}" \
		--json-out "$JSON" "$@" 2>&1 >/dev/null || echo "run failed (round $round)"
	"$SRV" stop >/dev/null
done
