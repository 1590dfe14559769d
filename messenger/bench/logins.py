"""Logins per second: with a password, with a resume token, or the handshake alone.

    messenger-bench logins --how password|resume|handshake --server ... --server-pid PID

First (untimed) --accounts accounts are created (register with ``remember``, so each
gets a resume token) and their connections closed. Then --logins new connections are
made, --concurrency at a time, round-robin over the accounts; each does the real
handshake and logs in (``authenticate`` with the password, or ``resume`` with the token;
``handshake`` stops after phase 2), and is closed as soon as the server's 200 arrives.
A login is timed from the connect call to that 200. The server's per-address login and
connection limits must be off for this (one address makes every login).

Reported: logins per second over the timed window, login latency p50/p99, the server's
CPU per login and its utilisation. Bounded by --logins and --max-seconds.
"""

from __future__ import annotations

import argparse
import time
from array import array
from typing import Any

from messenger.bench.conn import BenchConnection, Launcher
from messenger.bench.delivery import pct
from messenger.bench.proc import ServerSample, proc_cmdline, self_cpu_s, server_figures


class HandshakeOnly(BenchConnection):
    """Stops after phase 2: counts as ready once the channel is established."""

    def _send_login(self, how: str) -> None:
        self.phase = "ready"
        self.t_ready = time.monotonic_ns()
        self.on_ready(self)


def run(args: Any, reactor: Any, secret: bytes, client_key: Any) -> dict[str, Any]:
    state: dict[str, Any] = {"fail": None, "phase": "setup", "done": 0, "tokens": {}}
    deadline = time.monotonic() + args.max_seconds
    lat = array("q")
    names = [f"{args.user_prefix}{args.user_offset + i + 1}" for i in range(args.accounts)]

    def fail(conn: BenchConnection, why: str) -> None:
        if state["fail"] is None:
            state["fail"] = why
        if reactor.running:
            reactor.stop()

    # -- setup: create the accounts (and their tokens), untimed -----------------------------
    def set_up(conn: BenchConnection) -> None:
        setup_launcher.done()
        state["tokens"][conn.user] = conn.token
        conn.close()
        state["done"] += 1
        if state["done"] == len(names):
            reactor.callLater(args.settle, start_timed)

    setup = [BenchConnection(name, secret, client_key, args.cipher, on_ready=set_up,
                             on_fail=fail, login=args.login, remember=True, quickack=False)
             for name in names]
    setup_launcher = Launcher(reactor, args.host, args.port, setup, args.connect_concurrency)

    # -- timed: one login per connection ------------------------------------------------------
    def logged_in(conn: BenchConnection) -> None:
        lat.append(conn.t_ready - conn.t_start)
        conn.close()
        timed_launcher.done()
        state["done"] += 1
        if state["done"] == args.logins:
            state["t1"] = time.monotonic_ns()
            state["sample1"] = ServerSample(args.server_pid)
            state["gen1"] = self_cpu_s()
            state["phase"] = "closing"
            reactor.callLater(0.2, reactor.stop)

    timed_launcher: Launcher | None = None

    def start_timed() -> None:
        nonlocal timed_launcher
        state["phase"] = "timed"
        state["done"] = 0
        cls = HandshakeOnly if args.how == "handshake" else BenchConnection
        how = {"password": "authenticate", "resume": "resume"}.get(args.how, "authenticate")
        conns = []
        for i in range(args.logins):
            name = names[i % len(names)]
            conns.append(cls(name, secret, client_key, args.cipher, on_ready=logged_in,
                             on_fail=fail, login=how, token=state["tokens"].get(name),
                             quickack=False))
        state["sample0"] = ServerSample(args.server_pid)
        state["gen0"] = self_cpu_s()
        state["t0"] = time.monotonic_ns()
        timed_launcher = Launcher(reactor, args.host, args.port, conns, args.concurrency)
        timed_launcher.start()

    def watchdog() -> None:
        if time.monotonic() > deadline:
            fail(None, f"deadline of {args.max_seconds}s reached in phase {state['phase']}"
                       f" ({state['done']} done)")  # type: ignore[arg-type]
        else:
            reactor.callLater(0.5, watchdog)

    setup_launcher.start()
    reactor.callLater(0.5, watchdog)
    reactor.run()
    state["lat"] = lat
    return state


def summarize(args: Any, state: dict[str, Any]) -> dict[str, Any]:
    lat = sorted(state["lat"])
    ok = state["fail"] is None and "t1" in state and len(lat) == args.logins
    out: dict[str, Any] = {
        "kind": "logins", "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "label": args.label,
        "how": args.how, "cipher": args.cipher, "accounts": args.accounts,
        "logins": len(lat), "concurrency": args.concurrency, "ok": ok, "fail": state["fail"],
        "login_ms_p50": round(pct(lat, 0.5), 3) if lat else None,
        "login_ms_p99": round(pct(lat, 0.99), 3) if lat else None,
    }
    if args.server_pid:
        cmdline = proc_cmdline(args.server_pid)
        if "--scrypt-n" in cmdline:
            out["scrypt_n"] = int(cmdline[cmdline.index("--scrypt-n") + 1])
        else:
            out["scrypt_n"] = "default"
    if "t1" in state:
        dur = (state["t1"] - state["t0"]) / 1e9
        out["duration_s"] = round(dur, 3)
        out["logins_per_s"] = round(len(lat) / dur, 1)
        out["gen_cpu_ms_per_login"] = round((state["gen1"] - state["gen0"]) * 1e3 / len(lat), 3)
        figures = server_figures(state["sample0"], state["sample1"], len(lat), dur)
        if "server_cpu_s" in figures:
            out["server_cpu_ms_per_login"] = round(figures["server_cpu_s"] * 1e3 / len(lat), 3)
            for key in ("server_cpu_s", "server_user_s", "server_sys_s", "server_cpu_util",
                        "server_main_thread_s", "server_other_threads_s", "server_hwm_kib"):
                out[key] = figures[key]
        out["machine_busy_2cores"] = figures["machine_busy_2cores"]
    return out


def main(argv: list[str]) -> int:
    from messenger.bench.cli import add_common, client_key, emit, install_reactor, read_secret
    ap = argparse.ArgumentParser(prog="messenger-bench logins",
                                 description="Logins per second (new connection each).")
    add_common(ap)
    ap.add_argument("--how", choices=("password", "resume", "handshake"), default="password")
    ap.add_argument("--accounts", type=int, default=100)
    ap.add_argument("--logins", type=int, default=0,
                    help="timed logins (default: 300 with a password, 2000 otherwise)")
    ap.add_argument("--concurrency", type=int, default=16, help="logins in progress at once")
    ap.add_argument("--settle", type=float, default=1.0,
                    help="seconds between the set-up and the timed logins")
    ap.set_defaults(max_seconds=300)
    args = ap.parse_args(argv)
    if not args.logins:
        args.logins = 300 if args.how == "password" else 2000
    if args.accounts < 1 or args.logins < 1 or args.concurrency < 1:
        ap.error("--accounts, --logins and --concurrency must be >= 1")
    if args.concurrency * 2 > args.accounts and args.how != "handshake":
        ap.error("--accounts must be at least twice --concurrency (one session per account)")
    args.host, args.port = args.server
    secret = read_secret(args.secret_file)
    reactor = install_reactor()
    state = run(args, reactor, secret, client_key())
    out = summarize(args, state)
    emit(out, args.json_out,
         f"# {args.label} logins ({args.how}, {args.cipher}): {out['logins']} in"
         f" {out.get('duration_s')} s = {out.get('logins_per_s')}/s; latency ms p50"
         f" {out['login_ms_p50']} p99 {out['login_ms_p99']}; server"
         f" {out.get('server_cpu_ms_per_login')} ms CPU/login (util"
         f" {out.get('server_cpu_util')}); ok={out['ok']}"
         + (f" FAIL: {out['fail']}" if out["fail"] else ""))
    return 0 if out["ok"] else 1
