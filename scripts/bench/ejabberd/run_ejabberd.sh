#!/usr/bin/env bash
# Start / stop / provision the benchmark ejabberd (Debian package 'ejabberd', 23.01).
#
#   ./run_ejabberd.sh start          start (as user 'ejabberd', 'ejabberdctl foreground' in a background job), wait until up
#   ./run_ejabberd.sh register N     create user1..userN @localhost, password 'pass' (one batch; starts/stops the node if needed)
#   ./run_ejabberd.sh pid            print the server PID: the beam.smp process (for xmpp_load.py --server-pid)
#   ./run_ejabberd.sh stop           stop the server by its own PID (SIGTERM, then SIGKILL after 20 s)
#   ./run_ejabberd.sh ctl ARGS...    run ejabberdctl against the benchmark node, e.g. 'ctl status'
#
# Environment: EJB_BASE (default /tmp/bench_ejabberd), EJB_DIST_PORT (default 15224),
# BENCH_ERL_FLAGS (extra emulator flags, side experiments only). c2s: 127.0.0.1:15223 (in the .yml).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CFG="$HERE/ejabberd-bench.yml"
CTLCFG="$HERE/ejabberdctl-bench.cfg"
export EJB_BASE="${EJB_BASE:-/tmp/bench_ejabberd}"
export EJB_DIST_PORT="${EJB_DIST_PORT:-15224}"
export BENCH_ERL_FLAGS="${BENCH_ERL_FLAGS:-}"
NODE="ejabberd-bench@localhost"
C2S_PORT="$(awk '$1 == "port:" {print $2; exit}' "$CFG")"
PIDFILE="$EJB_BASE/launcher.pid"         # our own record of the beam.smp PID we started
PARENTFILE="$EJB_BASE/launcher.ppid"     # the ejabberdctl shell (our job) that waits for it
STDOUT="$EJB_BASE/ejabberd.stdout"
# ejabberdctl with our files; --config-dir stays /etc/ejabberd (only its inetrc is used from there).
CTL_ARGS=(--config "$CFG" --ctl-config "$CTLCFG" --spool "$EJB_BASE/spool" --logs "$EJB_BASE/logs" --node "$NODE")
AS_EJABBERD=(setpriv --reuid=ejabberd --regid=ejabberd --init-groups env HOME="$EJB_BASE/home")

prepare_dirs() {
	mkdir -p "$EJB_BASE/home" "$EJB_BASE/spool" "$EJB_BASE/logs"
	chown ejabberd:ejabberd "$EJB_BASE" "$EJB_BASE/home" "$EJB_BASE/spool" "$EJB_BASE/logs"
	chmod 750 "$EJB_BASE"; chmod 700 "$EJB_BASE/home"
	# Our own Erlang cookie ($HOME/.erlang.cookie of the node and of every ctl client), so
	# that nothing is read from or written to /var/lib/ejabberd.
	if [[ ! -s "$EJB_BASE/home/.erlang.cookie" ]]; then
		(umask 077; head -c 15 /dev/urandom | base32 | tr -d '=\n' > "$EJB_BASE/home/.erlang.cookie")
		chown ejabberd:ejabberd "$EJB_BASE/home/.erlang.cookie"; chmod 400 "$EJB_BASE/home/.erlang.cookie"
	fi
}

running_pid() {
	[[ -f "$PIDFILE" ]] || return 1
	local pid; pid="$(cat "$PIDFILE")"
	[[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
	# Guard against PID reuse: it must be a beam.smp running our node name.
	[[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == beam.smp ]] || return 1
	tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "$NODE" || return 1
	echo "$pid"
}

ctl() { "${AS_EJABBERD[@]}" ejabberdctl "${CTL_ARGS[@]}" "$@"; }

cmd_start() {
	if pid="$(running_pid)"; then echo "already running: pid $pid"; return 0; fi
	prepare_dirs
	rm -f "$EJB_BASE/ejabberd.pid"
	# setpriv and env exec, so $! is the ejabberdctl shell. It does not exec the VM (it runs
	# erl as a child and waits): /usr/bin/erl execs erlexec, which execs beam.smp, so the
	# Erlang VM is the direct child of $!. -noinput: no shell. No epmd (ERL_DIST_PORT).
	setpriv --reuid=ejabberd --regid=ejabberd --init-groups env HOME="$EJB_BASE/home" \
		ejabberdctl "${CTL_ARGS[@]}" foreground >"$STDOUT" 2>&1 </dev/null &
	local parent=$! pid="" t
	echo "$parent" > "$PARENTFILE"
	for t in $(seq 1 300); do        # wait up to 30 s for the VM and then the c2s port
		if ! kill -0 "$parent" 2>/dev/null; then
			echo "ejabberd exited during start-up:"; cat "$STDOUT"; tail -n 30 "$EJB_BASE/logs/"*.log 2>/dev/null; exit 1
		fi
		if [[ -z "$pid" ]]; then
			local c
			for c in $(cat "/proc/$parent/task/$parent/children" 2>/dev/null); do
				[[ "$(cat "/proc/$c/comm" 2>/dev/null)" == beam.smp ]] && pid="$c"
			done
			[[ -n "$pid" ]] && echo "$pid" > "$PIDFILE"
		elif (exec 3<>"/dev/tcp/127.0.0.1/$C2S_PORT") 2>/dev/null; then
			break
		fi
		sleep 0.1
	done
	if [[ -z "$pid" ]] || ! (exec 3<>"/dev/tcp/127.0.0.1/$C2S_PORT") 2>/dev/null; then
		echo "ejabberd did not open 127.0.0.1:$C2S_PORT within 30 s"; cmd_stop; exit 1
	fi
	# The listener opens while the application is still starting; wait for 'ejabberd_ctl
	# status' to say it is fully started (exit 0). Each ctl call is a short-lived extra VM.
	for t in $(seq 1 30); do
		ctl status >/dev/null 2>&1 && break
		sleep 0.2
	done
	local own; own="$(cat "$EJB_BASE/ejabberd.pid" 2>/dev/null || true)"
	[[ "$own" == "$pid" ]] || echo "warning: ejabberd's own pid file says '$own', we found beam.smp $pid" >&2
	echo "ejabberd started: pid $pid (beam.smp; parent ejabberdctl $parent), c2s 127.0.0.1:$C2S_PORT${BENCH_ERL_FLAGS:+, erl flags: $BENCH_ERL_FLAGS}"
}

cmd_stop() {
	local pid parent=""
	[[ -f "$PARENTFILE" ]] && parent="$(cat "$PARENTFILE")"
	if pid="$(running_pid)"; then
		kill -TERM "$pid"       # the Erlang VM turns SIGTERM into init:stop() (orderly shutdown)
		local t
		for t in $(seq 1 200); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			echo "ejabberd pid $pid did not stop in 20 s, sending SIGKILL"; kill -KILL "$pid"
		fi
		echo "ejabberd stopped (pid $pid)"
	else
		echo "not running"
	fi
	# Our ejabberdctl shell returns as soon as its VM is gone; reap it by its PID too.
	if [[ -n "$parent" ]] && kill -0 "$parent" 2>/dev/null \
		&& tr '\0' ' ' < "/proc/$parent/cmdline" 2>/dev/null | grep -qF -- "$CTLCFG"; then
		local t
		for t in $(seq 1 50); do kill -0 "$parent" 2>/dev/null || break; sleep 0.1; done
		kill -0 "$parent" 2>/dev/null && kill -TERM "$parent"
	fi
	rm -f "$PIDFILE" "$PARENTFILE"
}

cmd_register() {
	local n="${1:?usage: register N}" started_here=0
	if ! running_pid >/dev/null; then cmd_start >/dev/null; started_here=1; fi
	# One short-lived hidden Erlang node connects to the server over the distribution port
	# (same cookie) and calls ejabberd_auth:try_register/3 for every user; an existing user
	# gets set_password/3 instead, so this is idempotent (like prosodyctl register).
	local code='
	Node = list_to_atom(os:getenv("EJB_NODE")),
	N = list_to_integer(os:getenv("EJB_NUSERS")),
	try
	    pong = net_adm:ping(Node),
	    Host = <<"localhost">>, Pass = <<"pass">>,
	    Reg = fun(K) ->
	        U = list_to_binary("user" ++ integer_to_list(K)),
	        case rpc:call(Node, ejabberd_auth, try_register, [U, Host, Pass]) of
	            ok -> new;
	            {error, exists} -> ok = rpc:call(Node, ejabberd_auth, set_password, [U, Host, Pass]), existed
	        end
	    end,
	    R = [Reg(K) || K <- lists:seq(1, N)],
	    io:format("~b new, ~b existing (password reset); ~b accounts on localhost~n",
	              [length([x || new <- R]), length([x || existed <- R]),
	               rpc:call(Node, ejabberd_auth, count_users, [Host])]),
	    halt(0)
	catch C:E:S ->
	    io:format(standard_error, "register failed: ~p:~p~n~p~n", [C, E, S]),
	    halt(1)
	end.'
	local t0 t1 rc=0
	t0="$(date +%s.%N)"
	timeout 120 setpriv --reuid=ejabberd --regid=ejabberd --init-groups \
		env HOME="$EJB_BASE/home" EJB_NODE="$NODE" EJB_NUSERS="$n" \
		erl -sname "bench-reg-$$@localhost" -hidden -noinput -start_epmd false \
		-erl_epmd_port "$EJB_DIST_PORT" -dist_listen false -eval "$code" || rc=$?
	t1="$(date +%s.%N)"
	[[ $started_here == 1 ]] && cmd_stop >/dev/null
	[[ $rc == 0 ]] || { echo "registration failed (rc $rc)"; exit 1; }
	printf 'registered user1..user%s @localhost (password '"'"'pass'"'"') in %s/spool in %.1f s%s\n' \
		"$n" "$EJB_BASE" "$(echo "$t1 - $t0" | bc)" "$([[ $started_here == 1 ]] && echo ' (plus node start/stop)')"
}

case "${1:-}" in
	start) shift; cmd_start "$@" ;;
	stop) cmd_stop ;;
	register) shift; cmd_register "$@" ;;
	pid) running_pid || { echo "not running" >&2; exit 1; } ;;
	ctl) shift; ctl "$@" ;;
	*) sed -n '2,11p' "$0"; exit 2 ;;
esac
