"""The UDP call relay: K concurrent calls through the server, packets per second and loss.

    messenger-bench relay -K 200 --pps 20000 --server HOST:PORT --secret-file F --server-pid PID

Everything up to the audio is the real thing: 2K accounts log in; in each pair the caller
adds the callee as a contact and dials, the callee dials back on ``call_ring``, and both
get ``call_start`` (call id, call key, relay token, relay address, member index). Each
member then says HELLO to the relay from its own UDP socket until the HELLO_ACK says the
peer is present. So the relay holds K live calls, as signalling registered them.

Timed phase: every member sends AUDIO packets (docs/CALLS.md: a 20-byte clear header,
a 72-byte payload, the size of a 20 ms Opus frame, sealed with the call key) to the relay
at --pps / 2K packets per second each, the members spread over slots of --tick-ms (2 ms);
the relay checks each tag and forwards the packet to the peer. The receiver reads sender
and sequence number from the clear header (no need to open it) and looks up the send
time, so every packet is counted once: loss = 1 - received / sent, and a duplicate is an
error. Server CPU per forwarded packet comes from /proc as for the other figures (the
relay shares the server's reactor; the TCP side is idle meanwhile). Socket-buffer drops
of the relay's socket and of the generator's are read from /proc/net/udp (its ``drops``
column), so that a loss can be placed. Bounded by --seconds and --max-seconds.
"""

from __future__ import annotations

import argparse
import time
from array import array
from typing import Any

from messenger.bench.callmember import PAYLOAD, CallMember
from messenger.bench.conn import BenchConnection, Launcher
from messenger.bench.delivery import pct
from messenger.bench.proc import ServerSample, self_cpu_s, server_figures


def udp_drops(ports: set[int]) -> int:
    """Sum of the ``drops`` column of /proc/net/udp for sockets bound to these ports."""
    total = 0
    with open("/proc/net/udp") as f:
        next(f)
        for line in f:
            parts = line.split()
            local = parts[1]
            port = int(local.rsplit(":", 1)[1], 16)
            if port in ports:
                total += int(parts[-1])
    return total


def run(args: Any, reactor: Any, secret: bytes, client_key: Any) -> dict[str, Any]:
    """Log in, set up K calls, send audio through the relay; return the run's state."""
    return RelayRun(args, reactor, secret, client_key).run()


class RelayRun:
    """One run's phases: login, dialling, settle, timed, draining, closing (in
    ``state["phase"]``; `summarize` reads ``state``)."""

    def __init__(self, args: Any, reactor: Any, secret: bytes, client_key: Any) -> None:
        self.args, self.reactor = args, reactor
        self.state: dict[str, Any] = {"phase": "login", "logged_in": 0, "started": 0,
                                      "present": 0, "fail": None, "errors": 0,
                                      "error_samples": []}
        self.deadline = time.monotonic() + args.max_seconds
        self.lat = array("q")
        self.members: list[CallMember] = []
        for i in range(args.calls):
            a = CallMember(self, f"{args.user_prefix}{args.user_offset + 2 * i + 1}", i, True,
                           secret, client_key)
            b = CallMember(self, f"{args.user_prefix}{args.user_offset + 2 * i + 2}", i,
                           False, secret, client_key)
            a.partner, b.partner = b, a
            self.members += [a, b]
        self.launcher = Launcher(reactor, args.host, args.port, self.members,
                                 args.connect_concurrency)
        self._groups: list[list[CallMember]] = []
        self._tick = 0

    def run(self) -> dict[str, Any]:
        self.launcher.start()
        self.reactor.callLater(0.5, self.watchdog)
        self.reactor.run()
        state = self.state
        state["phase"] = "closing"
        state["sent"] = sum(m.next_seq for m in self.members)
        state["received"] = sum(m.received for m in self.members)
        state["lat"] = self.lat
        for m in self.members:
            try:
                if m.udp is not None:
                    m.udp.stopListening()
                m.close()
            except Exception:  # noqa: S110 - closing after the run; nothing left to report
                pass
        return state

    def fail(self, why: str) -> None:
        if self.state["phase"] == "closing":
            return
        if self.state["fail"] is None:
            self.state["fail"] = why
        if self.reactor.running:
            self.reactor.stop()

    def error(self, what: str) -> None:
        self.state["errors"] += 1
        if len(self.state["error_samples"]) < 5:
            self.state["error_samples"].append(what)

    def watchdog(self) -> None:
        state = self.state
        if time.monotonic() > self.deadline:
            self.fail(f"deadline of {self.args.max_seconds}s reached in phase {state['phase']}"
                      f" (logged in {state['logged_in']}, calls started {state['started']},"
                      f" peers present {state['present']} of {len(self.members)})")
        else:
            self.reactor.callLater(0.5, self.watchdog)

    def logged_in(self, conn: BenchConnection) -> None:
        self.launcher.done()
        self.state["logged_in"] += 1
        if self.state["logged_in"] == len(self.members):
            self.state["phase"] = "dialling"
            for m in self.members:
                if m.caller:
                    m.request("add_contact", user_id=m.partner.name)

    def peer_present(self) -> None:
        """A member's HELLO_ACK said its peer is at the relay; when all are, settle."""
        self.state["present"] += 1
        if self.state["present"] == len(self.members):
            self.state["phase"] = "settle"
            self.reactor.callLater(self.args.settle, self.start_timed)

    def start_timed(self) -> None:
        args, state, members = self.args, self.state, self.members
        state["phase"] = "timed"
        per_member = args.pps / len(members)                # packets/s per member
        self.tick_s = args.tick_ms / 1000
        slots = max(1, round(1 / (per_member * self.tick_s)))  # ticks between one member's sends
        expected_each = int(args.seconds * per_member) + 2
        for m in members:
            m.seen = bytearray(expected_each + 16)
        self._groups = [members[k::slots] for k in range(slots)]
        state["slots"] = slots
        ports = {m.udp.getHost().port for m in members}
        state["gen_ports"] = ports
        state["drops0"] = (udp_drops({args.udp_port}), udp_drops(ports))
        state["sample0"] = ServerSample(args.server_pid)
        state["gen0"] = self_cpu_s()
        self.t0 = time.monotonic()
        state["t0"] = time.monotonic_ns()
        self.end = self.t0 + args.seconds
        self.send_tick()

    def send_tick(self) -> None:
        if self.state["phase"] != "timed":
            return
        now = time.monotonic()
        if now >= self.end:
            self.stop_sending()
            return
        # Catch up missed ticks (a late timer) so the offered rate holds.
        due = int((now - self.t0) / self.tick_s) + 1
        t = time.monotonic_ns()
        groups, slots = self._groups, len(self._groups)
        while self._tick < due:
            for m in groups[self._tick % slots]:
                m.send_audio(t)
            self._tick += 1
        self.reactor.callLater(max(0.0, self.t0 + self._tick * self.tick_s - time.monotonic()),
                               self.send_tick)

    def stop_sending(self) -> None:
        state = self.state
        state["phase"] = "draining"
        state["t1"] = time.monotonic_ns()
        state["sample1"] = ServerSample(self.args.server_pid)
        state["gen1"] = self_cpu_s()
        self.reactor.callLater(0.5, self.finish)

    def finish(self) -> None:
        state = self.state
        state["drops1"] = (udp_drops({self.args.udp_port}), udp_drops(state["gen_ports"]))
        state["phase"] = "closing"
        self.reactor.stop()




def summarize(args: Any, state: dict[str, Any]) -> dict[str, Any]:
    lat = sorted(state["lat"])
    sent, received = state["sent"], state["received"]
    out: dict[str, Any] = {
        "kind": "relay", "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "label": args.label,
        "calls": args.calls, "pps_offered": args.pps, "tick_ms": args.tick_ms,
        "payload_bytes": PAYLOAD,
        "packets_sent": sent, "packets_received": received,
        "loss_pct": round(100 * (sent - received) / sent, 3) if sent else None,
        "errors": state["errors"], "error_samples": state["error_samples"],
        "fail": state["fail"],
        "lat_ms_p50": round(pct(lat, 0.5), 3) if lat else None,
        "lat_ms_p99": round(pct(lat, 0.99), 3) if lat else None,
        "lat_ms_max": round(lat[-1] / 1e6, 3) if lat else None,
    }
    if "t1" in state:
        dur = (state["t1"] - state["t0"]) / 1e9
        out["duration_s"] = round(dur, 3)
        out["pps_sent"] = round(sent / dur, 1)
        out["pps_forwarded"] = round(received / dur, 1)
        out["gen_cpu_us_per_packet"] = round((state["gen1"] - state["gen0"]) * 1e6 / sent, 2)
        figures = server_figures(state["sample0"], state["sample1"], received, dur)
        if "server_cpu_s" in figures:
            out["relay_cpu_us_per_packet"] = figures["server_cpu_us_per_msg"]
            out["relay_cpu_util"] = figures["server_cpu_util"]
            out["server_user_s"] = figures["server_user_s"]
            out["server_sys_s"] = figures["server_sys_s"]
        out["machine_busy_2cores"] = figures["machine_busy_2cores"]
    if "drops1" in state:
        out["relay_socket_drops"] = state["drops1"][0] - state["drops0"][0]
        out["generator_socket_drops"] = state["drops1"][1] - state["drops0"][1]
    out["ok"] = (state["fail"] is None and state["errors"] == 0 and sent > 0
                 and out["loss_pct"] is not None and out["loss_pct"] < args.max_loss_pct)
    return out


def main(argv: list[str]) -> int:
    from messenger.bench.cli import add_common, client_key, emit, install_reactor, read_secret
    ap = argparse.ArgumentParser(prog="messenger-bench relay",
                                 description="K calls through the UDP relay: pps and loss.")
    add_common(ap)
    ap.add_argument("--calls", "-K", type=int, default=200)
    ap.add_argument("--pps", type=float, default=0,
                    help="total packets/s offered (default: 50 per member, a 20 ms frame)")
    ap.add_argument("--seconds", type=float, default=10.0, help="timed sending")
    ap.add_argument("--udp-port", type=int, default=0,
                    help="the relay's UDP port (default: the server's TCP port)")
    ap.add_argument("--tick-ms", type=float, default=2.0,
                    help="send slot: the members are spread over 1/rate in slots of this")
    ap.add_argument("--settle", type=float, default=1.0)
    ap.add_argument("--max-loss-pct", type=float, default=1.0,
                    help="the run fails above this loss (default 1 %%)")
    ap.set_defaults(max_seconds=300)
    args = ap.parse_args(argv)
    if args.calls < 1:
        ap.error("--calls must be >= 1")
    args.host, args.port = args.server
    args.udp_port = args.udp_port or args.port
    if not args.pps:
        args.pps = 2 * args.calls * 50.0
    secret = read_secret(args.secret_file)
    reactor = install_reactor()
    from messenger.bench.proc import raise_nofile
    raise_nofile(4 * args.calls + 256)
    state = run(args, reactor, secret, client_key())
    out = summarize(args, state)
    emit(out, args.json_out,
         f"# {args.label} relay: {args.calls} calls, offered {args.pps:.0f} pps: sent"
         f" {out['packets_sent']} received {out['packets_received']} (loss {out['loss_pct']} %,"
         f" socket drops relay {out.get('relay_socket_drops')} generator"
         f" {out.get('generator_socket_drops')}) = {out.get('pps_forwarded')} pps forwarded;"
         f" latency ms p50 {out['lat_ms_p50']} p99 {out['lat_ms_p99']}; relay"
         f" {out.get('relay_cpu_us_per_packet')} us CPU/packet (util {out.get('relay_cpu_util')});"
         f" generator {out.get('gen_cpu_us_per_packet')} us/packet; ok={out['ok']}"
         + (f" FAIL: {out['fail']}" if out["fail"] else "")
         + (f" ERRORS: {out['error_samples']}" if out["errors"] else ""))
    return 0 if out["ok"] else 1
