"""Connections held: N authenticated idle clients, and what each costs the server in memory.

    messenger-bench connections -N 10000 --server 127.0.0.1:PORT --secret-file F --server-pid PID

Each client does the real handshake and logs in (register, or authenticate when the name
is taken), at most --connect-concurrency at a time. Once all N are logged in the clients
stay silent for --hold seconds (answering the server's keepalive probes if any come), then
the server's RSS is read again. With --then-hold they stay connected that much longer after
the reading, and --ready-file is written at the reading: scripts/bench/conns_traffic.sh
starts active one-to-one traffic then, to see what the held connections cost it.
Reported: server RSS before the first connection and with all N held, KiB per connection
(the difference over N), the server CPU spent connecting and its utilisation while the
connections sit idle, the keepalive probes answered, and the file-descriptor limits in
force. RLIMIT_NOFILE is raised for this process; the server's must be raised by whoever
starts it (scripts/bench/server.sh does). Bounded by N and by --max-seconds.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from messenger.bench.conn import BenchConnection, Launcher
from messenger.bench.proc import (
    CLK_TCK,
    proc_cpu_ticks,
    proc_mem_kib,
    proc_nofile,
    raise_nofile,
    self_cpu_s,
)


def run(args: Any, reactor: Any, secret: bytes, client_key: Any) -> dict[str, Any]:
    state: dict[str, Any] = {"ready": 0, "fail": None, "phase": "connecting"}
    deadline = time.monotonic() + args.max_seconds
    pid = args.server_pid

    def fail(conn: BenchConnection, why: str) -> None:
        if state["phase"] == "closing":
            return
        if state["fail"] is None:
            state["fail"] = why
        if reactor.running:
            reactor.stop()

    def ready(conn: BenchConnection) -> None:
        launcher.done()
        state["ready"] += 1
        if state["ready"] == args.connections:
            state["t_connected"] = time.monotonic()
            state["cpu_connected"] = proc_cpu_ticks(pid) if pid else None
            state["phase"] = "holding"
            reactor.callLater(args.hold, held)

    def held() -> None:
        state["mem_held"] = proc_mem_kib(pid) if pid else {}
        state["cpu_held"] = proc_cpu_ticks(pid) if pid else None
        state["t_held"] = time.monotonic()
        state["probes_idle"] = sum(conn.probes for conn in conns)
        if args.ready_file:
            # Tell a script that the reading is taken: active traffic may start now.
            with open(args.ready_file, "w") as fh:
                fh.write(f"{state['ready']}\n")
        if args.then_hold > 0:
            state["phase"] = "holding-more"
            reactor.callLater(args.then_hold, done)
        else:
            done()

    def done() -> None:
        state["probes"] = sum(conn.probes for conn in conns)
        state["phase"] = "closing"
        reactor.stop()

    def watchdog() -> None:
        if time.monotonic() > deadline:
            fail(None, f"deadline of {args.max_seconds}s reached with {state['ready']}"
                       f" of {args.connections} logged in")  # type: ignore[arg-type]
        else:
            reactor.callLater(0.5, watchdog)

    conns = [BenchConnection(f"{args.user_prefix}{args.user_offset + i + 1}", secret,
                             client_key, args.cipher, on_ready=ready, on_fail=fail,
                             login=args.login, quickack=False)
             for i in range(args.connections)]
    sources = [f"127.0.0.{k}" for k in range(1, args.source_addresses + 1)]
    launcher = Launcher(reactor, args.host, args.port, conns, args.connect_concurrency,
                        sources if args.source_addresses > 1 else None)
    state["mem0"] = proc_mem_kib(pid) if pid else {}
    state["cpu0"] = proc_cpu_ticks(pid) if pid else None
    state["t0"] = time.monotonic()
    gen0 = self_cpu_s()
    launcher.start()
    reactor.callLater(0.5, watchdog)
    reactor.run()
    state["gen_cpu_s"] = self_cpu_s() - gen0
    state["phase"] = "closing"
    for conn in conns:
        try:
            conn.close()
        except Exception:  # noqa: S110 - closing after the run; nothing left to report
            pass
    return state


def summarize(args: Any, state: dict[str, Any]) -> dict[str, Any]:
    ok = state["fail"] is None and state["ready"] == args.connections and "mem_held" in state
    out: dict[str, Any] = {
        "kind": "connections", "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "label": args.label, "connections": args.connections, "held": state["ready"],
        "cipher": args.cipher, "hold_s": args.hold, "then_hold_s": args.then_hold,
        "source_addresses": args.source_addresses,
        "probes_answered_idle": state.get("probes_idle"),
        "probes_answered": state.get("probes"), "ok": ok, "fail": state["fail"],
        "gen_cpu_s": round(state["gen_cpu_s"], 3), "gen_rss_kib": proc_mem_kib_self(),
        "nofile_generator": raise_nofile(0),
    }
    if "t_connected" in state:
        out["connect_s"] = round(state["t_connected"] - state["t0"], 3)
    pid = args.server_pid
    if pid and ok:
        before, after = state["mem0"], state["mem_held"]
        out["server_rss_kib_before"] = before.get("VmRSS")
        out["server_rss_kib_after"] = after.get("VmRSS")
        out["server_hwm_kib"] = after.get("VmHWM")
        out["server_kib_per_conn"] = round(
            (after["VmRSS"] - before["VmRSS"]) / args.connections, 2)
        c0, c1, c2 = state["cpu0"], state["cpu_connected"], state["cpu_held"]
        out["server_cpu_s_connect"] = round((sum(c1) - sum(c0)) / CLK_TCK, 3)
        out["server_cpu_ms_per_conn"] = round(
            (sum(c1) - sum(c0)) / CLK_TCK * 1e3 / args.connections, 3)
        idle_s = state["t_held"] - state["t_connected"]
        out["server_cpu_util_idle"] = round((sum(c2) - sum(c1)) / CLK_TCK / idle_s, 4)
        out["nofile_server"] = proc_nofile(pid)
    return out


def proc_mem_kib_self() -> int | None:
    import os
    return proc_mem_kib(os.getpid()).get("VmRSS")


def main(argv: list[str]) -> int:
    from messenger.bench.cli import add_common, client_key, emit, install_reactor, read_secret
    ap = argparse.ArgumentParser(prog="messenger-bench connections",
                                 description="N authenticated idle connections held.")
    add_common(ap)
    ap.add_argument("--connections", "-N", type=int, default=10000)
    ap.add_argument("--hold", type=float, default=5.0,
                    help="seconds all N stay connected and idle before the reading")
    ap.add_argument("--then-hold", type=float, default=0.0,
                    help="seconds all N stay connected after the reading (for traffic)")
    ap.add_argument("--source-addresses", type=int, default=1,
                    help="connect from 127.0.0.1 .. 127.0.0.K in turn (past ~28,000"
                         " connections one source address runs out of ephemeral ports)")
    ap.add_argument("--ready-file",
                    help="written once the reading is taken (a script starts traffic then)")
    ap.set_defaults(max_seconds=600)
    args = ap.parse_args(argv)
    if args.connections < 1:
        ap.error("--connections must be >= 1")
    if not 1 <= args.source_addresses <= 254:
        ap.error("--source-addresses must be 1..254")
    args.host, args.port = args.server
    limit = raise_nofile(args.connections + 256)
    if limit < args.connections + 64:
        ap.error(f"RLIMIT_NOFILE is {limit}: too low for {args.connections} connections")
    secret = read_secret(args.secret_file)
    reactor = install_reactor()
    state = run(args, reactor, secret, client_key())
    out = summarize(args, state)
    emit(out, args.json_out,
         f"# {args.label} connections: {out['held']}/{args.connections} held"
         f" (connected in {out.get('connect_s')} s); server RSS"
         f" {out.get('server_rss_kib_before')} -> {out.get('server_rss_kib_after')} KiB ="
         f" {out.get('server_kib_per_conn')} KiB per connection; server CPU"
         f" {out.get('server_cpu_ms_per_conn')} ms per connection, idle util"
         f" {out.get('server_cpu_util_idle')}; ok={out['ok']}"
         + (f" FAIL: {out['fail']}" if out["fail"] else ""))
    return 0 if out["ok"] else 1
