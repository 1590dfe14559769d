#!/usr/bin/env bash
# Start / stop one benchmark Messenger server (twistd -n, so $! is the server itself).
#
#   scripts/bench/server.sh start [twistd messenger options...]   fresh data dir, waits for the port
#   scripts/bench/server.sh pid | secret | datadir
#   scripts/bench/server.sh stop                                   SIGTERM to its own PID (SIGKILL after 10 s)
#
# Every start makes a fresh data dir under $BENCH_RUN (default /tmp/bench_messenger) and copies
# in one pre-made 3072-bit server key (made once; a key does not change the hot path, it only
# saves the key generation at every start). Rate limits and per-host/per-network connection caps
# are off: all load comes from one loopback address and network (the network login rate alone,
# 60 a minute, made a P = 100 run register one account a second after the first ~64, past the
# 60 s login timeout); everything else is as shipped unless given. RLIMIT_NOFILE is raised to
# $BENCH_NOFILE (default 65536) with ulimit before exec, for the connection figures.
#
# Environment: BENCH_RUN, BENCH_PORT (default 17777), BENCH_NOFILE, BENCH_PROFILE (a file:
# run under twistd --profile with cProfile, written at stop).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUN="${BENCH_RUN:-/tmp/bench_messenger}"
PORT="${BENCH_PORT:-17777}"
NOFILE="${BENCH_NOFILE:-65536}"
PIDFILE="$RUN/server.pid"
DATA="$RUN/data"
KEY="$RUN/server_key.3072.pem"
TWISTD="${BENCH_TWISTD:-$ROOT/.venv/bin/twistd}"   # an experiments/ wrapper may stand in

running_pid() {
	[[ -f "$PIDFILE" ]] || return 1
	local pid; pid="$(cat "$PIDFILE")"
	[[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
	tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "$DATA" || return 1   # guard against PID reuse
	echo "$pid"
}

cmd_start() {
	if pid="$(running_pid)"; then echo "already running: pid $pid" >&2; return 1; fi
	mkdir -p "$RUN"
	if [[ ! -f "$KEY" ]]; then
		"$ROOT/.venv/bin/python" -c "import sys; from pathlib import Path; from messenger.wire import keys; keys.write_private_key(Path(sys.argv[1]), keys.generate(3072))" "$KEY"
	fi
	rm -rf "$DATA"; mkdir -p "$DATA"; chmod 700 "$DATA"
	cp "$KEY" "$DATA/server_key.pem"; chmod 600 "$DATA/server_key.pem"
	local profile=()
	[[ -n "${BENCH_PROFILE:-}" ]] && profile=(--profile "$BENCH_PROFILE" --profiler cprofile --savestats)
	cd "$ROOT"
	# ulimit in a subshell that execs twistd: $! is the twistd (server) process itself.
	( ulimit -n "$NOFILE" 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$TWISTD" -n --pidfile= "${profile[@]}" \
		--logfile "$RUN/server.log" messenger --data-dir "$DATA" --port "$PORT" --interface 127.0.0.1 \
		--requests-per-second 0 --connections-per-minute 0 --logins-per-minute 0 \
		--connections-per-minute-network 0 --logins-per-minute-network 0 --max-connections-per-host 0 \
		--max-connections-per-network 0 "$@" ) \
		> "$RUN/server.stdout" 2>&1 < /dev/null &
	echo $! > "$PIDFILE"
	local pid; pid="$(cat "$PIDFILE")"
	for _ in $(seq 1 150); do        # wait up to 15 s for the port
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "server exited during start-up:" >&2; cat "$RUN/server.stdout" "$RUN/server.log" >&2; exit 1
		fi
		if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
			echo "messenger started: pid $pid, 127.0.0.1:$PORT, data $DATA, options: $*"
			return 0
		fi
		sleep 0.1
	done
	echo "server did not open 127.0.0.1:$PORT within 15 s" >&2; kill "$pid"; exit 1
}

cmd_stop() {
	local pid
	if ! pid="$(running_pid)"; then rm -f "$PIDFILE"; return 0; fi
	kill -TERM "$pid"
	for _ in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || { rm -f "$PIDFILE"; return 0; }
		sleep 0.1
	done
	echo "server pid $pid did not stop in 10 s, sending SIGKILL" >&2; kill -KILL "$pid"; rm -f "$PIDFILE"
}

case "${1:-}" in
	start) shift; cmd_start "$@" ;;
	stop) cmd_stop ;;
	pid) running_pid || { echo "not running" >&2; exit 1; } ;;
	secret) echo "$DATA/secret" ;;
	datadir) echo "$DATA" ;;
	*) sed -n '2,16p' "$0"; exit 2 ;;
esac
