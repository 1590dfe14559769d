#!/usr/bin/env bash
# The benchmark matrix of docs/BENCHMARKS.md: Messenger beside Prosody (../shared/bench/xmpp),
# ejabberd (scripts/bench/ejabberd, the corrected copy of ../shared/bench/ejabberd) and the bare
# relay floor (../shared/bench/floor), interleaved, in one sitting, fresh server per run,
# 1 s settle before every run. Appends to docs/bench-results/results.jsonl and summary.log and
# records the machine in docs/bench-results/machine-<date>.txt.
#
#   scripts/bench/run_matrix.sh [main|peers|ratio|rate|conns|logins|relay|all] [ROUNDS]   (default: main 2)
#
# main   closed loop, W=50: messenger aes-256-gcm persist P=1/10/100, no-persist P=100,
#        rsa-oaep P=100, Prosody P=100, ejabberd P=100, floor P=100          (~5 min per 2 rounds)
# peers  closed loop, W=50, P=30 and P=100: messenger persist, Prosody, ejabberd (issue 17's cells)
# ratio  only the P=100 closed-loop cells of the targets: messenger persist / no-persist, Prosody,
#        ejabberd, floor
# rate   open loop 2,000 msg/s, P=100 (and P=10): messenger persist, no-persist, Prosody, ejabberd
# conns  10,000 idle authenticated connections: server memory per connection
# logins logins per second, with a password and with a resume token
# relay  the UDP call relay: K calls, packets per second and loss
#
# Needs: the project venv (.venv), Debian 'prosody' and 'ejabberd' (apt-get install -y prosody
# ejabberd; keep their own services stopped) with users user1..user200 registered by
# run_prosody.sh / run_ejabberd.sh register 200 (done here when missing).
# MESSAGES_SCALE (default 1) multiplies every -M: 0.05 gives a short functional pass;
# BENCH_OUT (default docs/bench-results) is where the results go.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
WHAT="${1:-main}"
ROUNDS="${2:-2}"
PY="$ROOT/.venv/bin/python"
BENCH=("$PY" -m messenger.bench.cli)
# The team's shared anchors: ../shared/bench beside the main checkout (/work/main), two levels up
# from a worktree (/work/wt/NAME); SHARED_BENCH overrides.
SHARED="${SHARED_BENCH:-}"
for d in "$ROOT/../shared/bench" "$ROOT/../../shared/bench"; do
	[[ -z "$SHARED" && -d "$d" ]] && SHARED="$(cd "$d" && pwd)"
done
[[ -n "$SHARED" ]] || { echo "no ../shared/bench found; set SHARED_BENCH" >&2; exit 2; }
XMPP="$SHARED/xmpp"
FLOOR="$SHARED/floor"
EJB="$ROOT/scripts/bench/ejabberd"
export EJB_BASE="${EJB_BASE:-/tmp/bench_ejabberd}"
OUT="${BENCH_OUT:-$ROOT/docs/bench-results}"
JSON="$OUT/results.jsonl"
LOG="$OUT/summary.log"
SRV="$ROOT/scripts/bench/server.sh"
export BENCH_PORT="${BENCH_PORT:-17777}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
FLOOR_ENV=(env PY="$PY" FLOOR_RUN=/tmp/bench_floor)
mkdir -p "$OUT"

trap '"$SRV" stop >/dev/null 2>&1 || true; "$XMPP/run_prosody.sh" stop >/dev/null 2>&1 || true; "$EJB/run_ejabberd.sh" stop >/dev/null 2>&1 || true; "${FLOOR_ENV[@]}" "$FLOOR/run_floor.sh" stop >/dev/null 2>&1 || true' EXIT

{
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  what: $WHAT rounds: $ROUNDS"
	echo "nproc: $(nproc)"
	echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
	echo "mem: $(grep MemTotal /proc/meminfo | awk '{print $2" kB"}')"
	echo "kernel: $(uname -r)"
	echo "prosody: $(dpkg-query -W -f='${Version}' prosody 2>/dev/null || echo none)"
	echo "ejabberd: $(dpkg-query -W -f='${Version}' ejabberd 2>/dev/null || echo none)"
	echo "python: $($PY -c 'import sys,twisted,cryptography; print(sys.version.split()[0], "twisted", twisted.__version__, "cryptography", cryptography.__version__)')"
	# The server code under test: HEAD plus a digest of the working tree's messenger/ sources
	# (several developers change them during a sitting; rows are comparable only within one digest).
	echo "messenger: $(git -C "$ROOT" rev-parse --short HEAD) + $(git -C "$ROOT" status --porcelain messenger | wc -l) modified files; tree digest $(cd "$ROOT" && find messenger -name '*.py' | sort | xargs cat | sha1sum | cut -c1-12)"
	echo "loadavg before: $(cat /proc/loadavg)"
} >> "$OUT/machine-$(date -u +%Y%m%d).txt"

log_result() { tee -a "$LOG" || true; }

# M COUNT: COUNT scaled by MESSAGES_SCALE (at least 1), for short functional passes.
MESSAGES_SCALE="${MESSAGES_SCALE:-1}"
M() { awk -v m="$1" -v s="$MESSAGES_SCALE" 'BEGIN { n = int(m * s); print (n < 1 ? 1 : n) }'; }

# Other developers share this 2-core machine: before each run wait (up to $QUIET_WAIT s,
# default 120) until the whole machine was at least 90 % idle over one second, so that a
# run does not start in the middle of someone's test suite. Runs that still overlap show
# it in their machine_busy_2cores figure.
QUIET_WAIT="${QUIET_WAIT:-120}"
busy_pct() {
	local a b
	a=($(head -1 /proc/stat)); sleep 1; b=($(head -1 /proc/stat))
	local idle=$(( (b[4]+b[5]) - (a[4]+a[5]) )) total=0 i
	for i in 1 2 3 4 5 6 7 8; do total=$(( total + b[i] - a[i] )); done
	echo $(( total > 0 ? 100 * (total - idle) / total : 0 ))
}
wait_quiet() {
	local waited=0 busy
	while busy="$(busy_pct)"; (( busy > 10 && waited < QUIET_WAIT )); do
		waited=$((waited + 1))
	done
	(( waited > 0 )) && echo "# waited ${waited} s for a quiet machine (last second ${busy} % busy)" | log_result
	return 0
}

# messenger LABEL "SERVER OPTIONS" -- messenger-bench delivery args...
messenger() {
	local label="$1" sopts="$2"; shift 2
	"$SRV" stop >/dev/null
	"$SRV" start $sopts >/dev/null
	sleep 1
	wait_quiet
	"${BENCH[@]}" delivery --label "$label" --server "127.0.0.1:$BENCH_PORT" --secret-file "$("$SRV" secret)" \
		--server-pid "$("$SRV" pid)" --max-seconds 150 --json-out "$JSON" "$@" 2>&1 >/dev/null | log_result \
		|| echo "run failed: $label $*" | log_result
	"$SRV" stop >/dev/null
}

prosody() {
	local label="$1"; shift
	[[ -f "${BENCH_DATA:-/tmp/xmpp-bench/data}/localhost/accounts/user200.dat" ]] || "$XMPP/run_prosody.sh" register 200 >/dev/null
	"$XMPP/run_prosody.sh" stop >/dev/null
	"$XMPP/run_prosody.sh" start >/dev/null
	sleep 1
	wait_quiet
	"$PY" "$XMPP/xmpp_load.py" --label "$label" --server-pid "$("$XMPP/run_prosody.sh" pid)" --max-seconds 90 \
		--json-out "$JSON" "$@" 2>&1 >/dev/null | log_result || echo "run failed: $label $*" | log_result
	"$XMPP/run_prosody.sh" stop >/dev/null
}

# ejabberd LABEL xmpp_load.py args...  (LABEL must start with "ejabberd": the report tells
# ejabberd's lines from Prosody's by it)
ejabberd() {
	local label="$1"; shift
	if [[ ! -f "$EJB_BASE/registered-200" ]]; then
		"$EJB/run_ejabberd.sh" register 200 >/dev/null && touch "$EJB_BASE/registered-200"
	fi
	"$EJB/run_ejabberd.sh" stop >/dev/null
	"$EJB/run_ejabberd.sh" start >/dev/null
	sleep 1
	wait_quiet
	"$PY" "$XMPP/xmpp_load.py" --port 15223 --label "$label" --server-pid "$("$EJB/run_ejabberd.sh" pid)" \
		--max-seconds 90 --json-out "$JSON" "$@" 2>&1 >/dev/null | log_result || echo "run failed: $label $*" | log_result
	"$EJB/run_ejabberd.sh" stop >/dev/null
}

floor() {
	local label="$1"; shift
	"${FLOOR_ENV[@]}" "$FLOOR/run_floor.sh" stop >/dev/null
	"${FLOOR_ENV[@]}" "$FLOOR/run_floor.sh" start >/dev/null
	sleep 1
	wait_quiet
	"$PY" "$FLOOR/relay_load.py" --label "$label" --server-pid "$("${FLOOR_ENV[@]}" "$FLOOR/run_floor.sh" pid)" \
		--max-seconds 90 --json-out "$JSON" "$@" 2>&1 >/dev/null | log_result || echo "run failed: $label $*" | log_result
	"${FLOOR_ENV[@]}" "$FLOOR/run_floor.sh" stop >/dev/null
}

if [[ "$WHAT" == main || "$WHAT" == all ]]; then
	for _ in $(seq 1 "$ROUNDS"); do
		messenger messenger-aes-persist "" -P 100 -M "$(M 1600)"
		messenger messenger-aes-nopersist "--no-persist" -P 100 -M "$(M 1600)"
		prosody prosody -P 100 -M "$(M 1600)"
		ejabberd ejabberd -P 100 -M "$(M 1600)"
		floor floor -P 100 -M "$(M 1600)"
		messenger messenger-rsa-persist "" -P 100 -M "$(M 30)" --cipher rsa-oaep
		messenger messenger-aes-persist "" -P 1 -M "$(M 20000)"
		messenger messenger-aes-persist "" -P 10 -M "$(M 5000)"
	done
fi

if [[ "$WHAT" == peers ]]; then
	# Issue 17's cells: the three servers at P = 30 and P = 100, interleaved.
	for _ in $(seq 1 "$ROUNDS"); do
		for p in 30 100; do
			m=$(( 160000 / p ))
			messenger messenger-aes-persist "" -P "$p" -M "$(M "$m")"
			prosody prosody -P "$p" -M "$(M "$m")"
			ejabberd ejabberd -P "$p" -M "$(M "$m")"
		done
	done
fi

if [[ "$WHAT" == ratio ]]; then
	# Only the P = 100 cells of the targets, interleaved, for more runs of the same ratio.
	for _ in $(seq 1 "$ROUNDS"); do
		messenger messenger-aes-persist "" -P 100 -M "$(M 1600)"
		prosody prosody -P 100 -M "$(M 1600)"
		ejabberd ejabberd -P 100 -M "$(M 1600)"
		floor floor -P 100 -M "$(M 1600)"
		messenger messenger-aes-nopersist "--no-persist" -P 100 -M "$(M 1600)"
	done
fi

if [[ "$WHAT" == rate || "$WHAT" == all ]]; then
	for _ in $(seq 1 "$ROUNDS"); do
		messenger messenger-aes-persist-rate2000 "" -P 100 -M "$(M 300)" --rate 2000
		messenger messenger-aes-nopersist-rate2000 "--no-persist" -P 100 -M "$(M 300)" --rate 2000
		prosody prosody-rate2000 -P 100 -M "$(M 300)" --rate 2000
		ejabberd ejabberd-rate2000 -P 100 -M "$(M 300)" --rate 2000
		messenger messenger-aes-persist-rate2000 "" -P 10 -M "$(M 3000)" --rate 2000
	done
fi

if [[ "$WHAT" == conns || "$WHAT" == all ]]; then
	for _ in $(seq 1 "$ROUNDS"); do
		# Cheap password hashing only to register 10,000 accounts in reasonable time; the
		# figure (memory per held connection) does not depend on the hash cost.
		"$SRV" stop >/dev/null; "$SRV" start --scrypt-n 1024 >/dev/null; sleep 1; wait_quiet
		"${BENCH[@]}" connections --label conns-aes -N 10000 --server "127.0.0.1:$BENCH_PORT" \
			--secret-file "$("$SRV" secret)" --server-pid "$("$SRV" pid)" --json-out "$JSON" 2>&1 >/dev/null | log_result \
			|| echo "run failed: connections" | log_result
		"$SRV" stop >/dev/null
	done
fi

if [[ "$WHAT" == logins || "$WHAT" == all ]]; then
	for _ in $(seq 1 "$ROUNDS"); do
		for how in password resume handshake; do
			"$SRV" stop >/dev/null; "$SRV" start >/dev/null; sleep 1; wait_quiet
			"${BENCH[@]}" logins --label "logins-$how" --how "$how" --server "127.0.0.1:$BENCH_PORT" \
				--secret-file "$("$SRV" secret)" --server-pid "$("$SRV" pid)" --json-out "$JSON" 2>&1 >/dev/null | log_result \
				|| echo "run failed: logins $how" | log_result
			"$SRV" stop >/dev/null
		done
	done
fi

if [[ "$WHAT" == relay || "$WHAT" == all ]]; then
	for _ in $(seq 1 "$ROUNDS"); do
		for k in 200 400; do   # 20,000 and 40,000 packets/s offered (50 per member)
			"$SRV" stop >/dev/null; "$SRV" start --scrypt-n 1024 >/dev/null; sleep 1; wait_quiet
			"${BENCH[@]}" relay --label "relay-k$k" -K "$k" --server "127.0.0.1:$BENCH_PORT" \
				--secret-file "$("$SRV" secret)" --server-pid "$("$SRV" pid)" --json-out "$JSON" 2>&1 >/dev/null | log_result \
				|| echo "run failed: relay K=$k" | log_result
			"$SRV" stop >/dev/null
		done
	done
fi

"${BENCH[@]}" report "$JSON" --since "$(date -u +%Y-%m-%d)"
