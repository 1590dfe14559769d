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
import base64
import json
import time
from array import array
from typing import Any

from messenger.bench.conn import BenchConnection, Launcher, request_id
from messenger.bench.delivery import pct
from messenger.bench.proc import ServerSample, self_cpu_s, server_figures
from messenger.wire import media

PAYLOAD = 72          # bytes: one 20 ms Opus frame at 16 kHz (MACHINE-NOTES)


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
    from twisted.internet.protocol import DatagramProtocol

    state: dict[str, Any] = {"phase": "login", "logged_in": 0, "started": 0, "present": 0,
                             "fail": None, "errors": 0, "error_samples": []}
    deadline = time.monotonic() + args.max_seconds
    n_members = 2 * args.calls
    lat = array("q")
    now_ns = time.monotonic_ns

    def fail(why: str) -> None:
        if state["phase"] == "closing":
            return
        if state["fail"] is None:
            state["fail"] = why
        if reactor.running:
            reactor.stop()

    def error(what: str) -> None:
        state["errors"] += 1
        if len(state["error_samples"]) < 5:
            state["error_samples"].append(what)

    class Media(DatagramProtocol):
        """One member's UDP socket: HELLO until the peer is present, then AUDIO."""

        def __init__(self, member: Member) -> None:
            self.member = member

        def datagramReceived(self, data: bytes, addr: Any) -> None:  # noqa: N802
            m = self.member
            if data[0] == AUDIO_BYTE:
                seq = int.from_bytes(data[12:16], "big")
                peer = m.peer_member
                if seq >= len(peer.sent_t) or data[1] != peer.index:
                    error(f"{m.name}: packet seq {seq} from sender {data[1]} not sent")
                    return
                if m.seen[seq]:
                    error(f"{m.name}: packet seq {seq} received twice")
                    return
                m.seen[seq] = 1
                m.received += 1
                lat.append(now_ns() - peer.sent_t[seq])
            elif data[0] == HELLO_ACK_BYTE:
                m.on_hello_ack(data)

    class Member(BenchConnection):
        """A logged-in account that takes part in one call."""

        def __init__(self, name: str, pair: int, caller: bool) -> None:
            super().__init__(name, secret, client_key, args.cipher, on_ready=logged_in,
                             on_fail=lambda c, why: fail(why), login=args.login,
                             quickack=False)
            self.pair, self.caller = pair, caller
            self.partner: Member | None = None
            self.peer_member: Member | None = None   # same as partner once the call runs
            self.index = -1
            self.call_id = b""
            self.cipher: media.CallCipher | None = None
            self.relay_token = b""
            self.relay: tuple[str, int] = ("", 0)
            self.udp: Any = None
            self.hello_counter = 0
            self.peer_present = False
            self.next_seq = 0
            self.sent_t = array("q")
            self.seen = bytearray()
            self.received = 0
            self.last_action = ""

        # -- signalling (JIM) ------------------------------------------------------------
        def request(self, action: str, **fields: Any) -> None:
            self.last_action = action
            self.send_jim({"action": action, "id": request_id(), "time": time.time(),
                           **fields})

        def on_other(self, plaintext: bytes) -> None:
            message = json.loads(plaintext)
            action = message.get("action")
            code = message.get("response")
            if action == "call_ring":
                self.request("call_dial", user_id=message["from"])
            elif action == "call_start":
                self.start_media(message)
            elif action == "call_end":
                if state["phase"] not in ("closing",):
                    fail(f"{self.name}: call ended: {message.get('reason')}")
            elif code is not None:
                added = self.last_action == "add_contact" and code in (201, 409)
                if added and self.caller and self.index < 0:
                    # 409: already a contact (a reused server); either way, dial now.
                    self.request("call_dial", user_id=self.partner.name)
                elif code >= 400:
                    fail(f"{self.name}: {self.last_action} refused: {code} {message.get('error')}")

        @property
        def name(self) -> str:
            return self.user

        # -- media (UDP) -----------------------------------------------------------------
        def start_media(self, message: dict[str, Any]) -> None:
            self.index = message["member"]
            self.call_id = bytes.fromhex(message["call_id"])
            self.cipher = media.CallCipher(base64.b64decode(message["key"]))
            self.relay_token = base64.b64decode(message["token"])
            host, port = message["relay"]
            self.relay = (host, port)
            self.peer_member = self.partner
            self.udp = reactor.listenUDP(0, Media(self), interface="127.0.0.1")
            state["started"] += 1
            self.send_hello()

        def send_hello(self) -> None:
            if self.peer_present or state["phase"] in ("closing",):
                return
            packet = media.encode_hello(self.call_id, self.index, self.hello_counter,
                                        self.relay_token)
            self.hello_counter += 1
            self.udp.write(packet, self.relay)
            reactor.callLater(0.5, self.send_hello)

        def on_hello_ack(self, data: bytes) -> None:
            if not media.verify_signed(data, self.relay_token):
                error(f"{self.name}: HELLO_ACK with a bad tag")
                return
            ack = media.parse_hello_ack(data)
            if ack.peer_present and not self.peer_present:
                self.peer_present = True
                state["present"] += 1
                if state["present"] == n_members:
                    state["phase"] = "settle"
                    reactor.callLater(args.settle, start_timed)

        def send_audio(self, t: int) -> None:
            seq = self.next_seq
            self.next_seq = seq + 1
            self.sent_t.append(t)
            self.udp.write(
                self.cipher.seal(media.AUDIO, self.index, self.call_id, seq, seq * 320,
                                 FILLER, 1), self.relay)

    def logged_in(conn: BenchConnection) -> None:
        launcher.done()
        state["logged_in"] += 1
        if state["logged_in"] == n_members:
            state["phase"] = "dialling"
            for m in members:
                if m.caller:
                    m.request("add_contact", user_id=m.partner.name)

    members: list[Member] = []
    for i in range(args.calls):
        a = Member(f"{args.user_prefix}{args.user_offset + 2 * i + 1}", i, True)
        b = Member(f"{args.user_prefix}{args.user_offset + 2 * i + 2}", i, False)
        a.partner, b.partner = b, a
        members += [a, b]
    launcher = Launcher(reactor, args.host, args.port, members, args.connect_concurrency)

    def start_timed() -> None:
        state["phase"] = "timed"
        per_member = args.pps / n_members                # packets/s per member
        tick_s = args.tick_ms / 1000
        slots = max(1, round(1 / (per_member * tick_s)))   # ticks between one member's sends
        expected_each = int(args.seconds * per_member) + 2
        for m in members:
            m.seen = bytearray(expected_each + 16)
        groups = [members[k::slots] for k in range(slots)]
        state["slots"] = slots
        ports = {m.udp.getHost().port for m in members}
        state["gen_ports"] = ports
        state["drops0"] = (udp_drops({args.udp_port}), udp_drops(ports))
        state["sample0"] = ServerSample(args.server_pid)
        state["gen0"] = self_cpu_s()
        t0 = time.monotonic()
        state["t0"] = now_ns()
        end = t0 + args.seconds
        tick = {"n": 0}

        def send_tick() -> None:
            if state["phase"] != "timed":
                return
            now = time.monotonic()
            if now >= end:
                stop_sending()
                return
            # Catch up missed ticks (a late timer) so the offered rate holds.
            due = int((now - t0) / tick_s) + 1
            t = now_ns()
            while tick["n"] < due:
                for m in groups[tick["n"] % slots]:
                    m.send_audio(t)
                tick["n"] += 1
            reactor.callLater(max(0.0, t0 + tick["n"] * tick_s - time.monotonic()), send_tick)

        send_tick()

    def stop_sending() -> None:
        state["phase"] = "draining"
        state["t1"] = now_ns()
        state["sample1"] = ServerSample(args.server_pid)
        state["gen1"] = self_cpu_s()
        reactor.callLater(0.5, finish)

    def finish() -> None:
        state["drops1"] = (udp_drops({args.udp_port}), udp_drops(state["gen_ports"]))
        state["phase"] = "closing"
        reactor.stop()

    def watchdog() -> None:
        if time.monotonic() > deadline:
            fail(f"deadline of {args.max_seconds}s reached in phase {state['phase']}"
                 f" (logged in {state['logged_in']}, calls started {state['started']},"
                 f" peers present {state['present']} of {n_members})")
        else:
            reactor.callLater(0.5, watchdog)

    launcher.start()
    reactor.callLater(0.5, watchdog)
    reactor.run()
    state["phase"] = "closing"
    state["sent"] = sum(m.next_seq for m in members)
    state["received"] = sum(m.received for m in members)
    state["lat"] = lat
    for m in members:
        try:
            if m.udp is not None:
                m.udp.stopListening()
            m.close()
        except Exception:  # noqa: S110 - closing after the run; nothing left to report
            pass
    return state


AUDIO_BYTE = media.type_byte(media.AUDIO)
HELLO_ACK_BYTE = media.type_byte(media.HELLO_ACK)
FILLER = bytes(PAYLOAD)


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
