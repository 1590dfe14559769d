"""Group fan-out: G groups of N members, a share of them online, one sender per group.

    messenger-bench groups --members 100 --groups 10 --online 0.5 -M 200 -W 5 ...
    messenger-bench groups --members 1000 --groups 1 --rate 10 -M 200   (latency, idle)

Every member's account is made first (register, or authenticate when it exists); the
offline ones log out again, the online ones stay. Each group's first member creates the
group (``group_create`` with the other N - 1 names) and is its sender: it keeps at most
W messages in flight, a message being in flight until *every other online member* has
received it. The body carries ``group seq t_send_ns``; every receiver checks that it gets
each message of its group once and in order, and the sender that every 200 comes back in
order. Reported: deliveries per second (one message to one member), server CPU per
delivery and per message, latency of each delivery and of the last delivery of each
message (``all_ms_*``: the time until every online member has it), and the generator's
own CPU per delivery.

The same connection code as the one-to-one figure (`messenger.bench.conn`), and its
accounting (`messenger.bench.proc`). Bounded by count and by --max-seconds.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import time
from array import array
from typing import Any

from messenger.bench.conn import LEN, BenchConnection, Launcher
from messenger.bench.delivery import _ms, pct
from messenger.bench.proc import ServerSample, self_cpu_s, server_figures
from messenger.wire import jim
from messenger.wire.suites import ChannelError

MSG_RE = re.compile(rb'"group":(\d+),"message":"(\d+) (\d+) (\d+) ')
ACK_OK = b'{"response":200,'
ID_KEY = b'"id":"'


class Run:
    """The state of one run, shared by its connections."""

    def __init__(self, args: Any, reactor: Any) -> None:
        self.args = args
        self.reactor = reactor
        self.phase = "accounts"
        self.fail: str | None = None
        self.errors: list[str] = []
        self.error_count = 0
        self.lat = array("q")        # ns, every timed delivery
        self.all_lat = array("q")    # ns, the last delivery of each timed message
        self.ack_lat = array("q")    # ns, the server's 200 of each timed message
        self.deliveries = 0          # timed phase
        self.samples: dict[str, Any] = {}
        # Set by `run`: a sender's group was created; a sender's messages all arrived.
        self.on_created: Any = None
        self.on_done: Any = None

    def error(self, what: str) -> None:
        self.error_count += 1
        if len(self.errors) < 5:
            self.errors.append(what)

    def stop(self, why: str | None = None) -> None:
        if why is not None and self.fail is None:
            self.fail = why
        self.phase = "closing"   # the reactor's shutdown closes every connection
        if self.reactor.running:
            self.reactor.stop()


class Member(BenchConnection):
    """An online member; the group's first member is its sender."""

    def __init__(self, run: Run, user: str, group: int, sender: bool, secret: bytes,
                 key: Any, on_ready: Any) -> None:
        super().__init__(user, secret, key, run.args.cipher, on_ready=on_ready,
                         on_fail=self._failed, login=run.args.login,
                         quickack=bool(run.args.quickack))
        self.run, self.group, self.is_sender = run, group, sender
        self.expect = 0                 # receiver: next sequence number of its group
        self.sender: Member | None = None
        # sender state
        self.names: list[str] = []      # the other members, for group_create
        self.group_id = 0
        self.create_id = ""
        self.recipients = 0             # other online members
        self.next_seq = self.completed = self.limit = self.target = 0
        self.timed_from = 1 << 62
        self.sent_t = array("q")
        self.remaining = array("i")
        self.ack_expect = 0
        self.tag = os.urandom(2).hex() + f"{group % 65536:04x}"

    def _failed(self, conn: BenchConnection, why: str) -> None:
        if self.run.phase != "closing":
            self.run.error(why)
            self.run.stop(why)

    def create(self) -> None:
        self.create_id = os.urandom(16).hex()
        self.send_jim({"action": "group_create", "id": self.create_id, "time": time.time(),
                       "name": f"bench {self.group}", "members": self.names})

    def pump(self) -> None:
        """Write as many messages as the window allows, in one write."""
        window = self.run.args.window
        n = min(self.limit - self.next_seq, window - (self.next_seq - self.completed))
        if n <= 0:
            return
        seq, seal, pad = self.next_seq, self.seal, self.run.args.body_bytes
        t = time.monotonic_ns()
        wall = int(time.time())
        out = []
        for s in range(seq, seq + n):
            body = f"{self.group} {s} {t} "
            payload = (f'{{"action":"msg","id":"{self.tag}{s:024x}","time":{wall},'
                       f'"group":{self.group_id},'
                       f'"message":"{body}{"x" * (pad - len(body))}"}}').encode()
            sealed = seal(payload)
            out.append(LEN(len(sealed)))
            out.append(sealed)
        self.next_seq = seq + n
        self.sent_t.extend(array("q", [t]) * n)
        self.remaining.extend(array("i", [self.recipients]) * n)
        self.transport.write(b"".join(out))

    def on_frames(self, frames: list[bytes]) -> None:
        run = self.run
        t = time.monotonic_ns()
        for frame in frames:
            try:
                plaintext = self.open(frame)
            except ChannelError as error:
                self.fail(f"frame failed to open: {error}")
                return
            if plaintext.startswith(ACK_OK) and self.is_sender and self.group_id:
                self._ack(plaintext, t)
            elif b'"action":"msg"' in plaintext:
                self._delivery(plaintext, t)
            elif self.is_sender and not self.group_id and self.create_id.encode() in plaintext:
                self._created(plaintext)
            elif not self.maybe_probe(plaintext) and b'"response":' in plaintext:
                run.error(f"{self.user}: unexpected reply {plaintext[:200]!r}")
                run.stop(f"{self.user} received an unexpected reply")

    def _created(self, plaintext: bytes) -> None:
        reply = jim.decode(plaintext)
        if reply.get("response") != 201:
            self.run.stop(f"{self.user}: group_create refused: {reply.get('error')}")
            return
        self.group_id = reply["group"]["group_id"]
        self.run.on_created(self)

    def _ack(self, plaintext: bytes, t: int) -> None:
        i = plaintext.rfind(ID_KEY)
        try:
            seq = int(plaintext[i + 14:i + 38], 16) if i >= 0 else -1
        except ValueError:
            seq = -1
        if seq != self.ack_expect or seq >= len(self.sent_t):
            self.run.error(f"{self.user}: ack for seq {seq}, expected {self.ack_expect}")
        self.ack_expect = seq + 1
        if seq >= self.timed_from:
            self.run.ack_lat.append(t - self.sent_t[seq])

    def _delivery(self, plaintext: bytes, t: int) -> None:
        run, sender = self.run, self.sender
        match = MSG_RE.search(plaintext)
        if match is None or sender is None or int(match.group(1)) != sender.group_id:
            run.error(f"{self.user}: unexpected message {plaintext[:200]!r}")
            return
        seq = int(match.group(3))
        if seq != self.expect or int(match.group(2)) != self.group:
            run.error(f"{self.user}: got seq {seq} of group {match.group(2).decode()},"
                      f" expected {self.expect}: lost, duplicated, reordered or misrouted")
            if seq < self.expect:
                return
        self.expect = seq + 1
        timed = seq >= sender.timed_from
        if timed:
            run.lat.append(t - int(match.group(4)))
            if run.phase == "timed":
                run.deliveries += 1
        left = sender.remaining[seq] - 1
        sender.remaining[seq] = left
        if left == 0:
            sender.completed += 1
            if timed:
                run.all_lat.append(t - sender.sent_t[seq])
            sender.pump()
            if sender.completed >= sender.target:
                run.on_done(sender)


def run(args: Any, reactor: Any, secret: bytes, key: Any) -> tuple[Run, list[Member]]:
    """Make the accounts and groups, warm up, run the timed phase; the run and senders."""
    state = Run(args, reactor)
    deadline = time.monotonic() + args.max_seconds
    online = max(2, math.ceil(args.members * args.online))
    names = [[f"{args.user_prefix}{args.user_offset + g * args.members + k + 1}"
              for k in range(args.members)] for g in range(args.groups)]
    members: list[Member] = []
    senders: list[Member] = []
    counts = {"accounts": 0, "online": 0, "created": 0}
    finished: set[Member] = set()

    def account_ready(conn: BenchConnection) -> None:
        conn.close()
        accounts.done()
        counts["accounts"] += 1
        if counts["accounts"] == len(offline):
            state.phase = "login"
            launcher.start()

    def member_ready(conn: BenchConnection) -> None:
        launcher.done()
        counts["online"] += 1
        if counts["online"] == len(members):
            state.phase = "create"
            for sender in senders:
                sender.create()

    def created(sender: Member) -> None:
        counts["created"] += 1
        if counts["created"] == len(senders):
            begin("warmup", args.warmup)

    def begin(phase: str, count: int) -> None:
        state.phase = phase
        finished.clear()
        if phase == "timed":
            state.samples["before"] = ServerSample(args.server_pid)
            state.samples["gen0"] = self_cpu_s()
            state.samples["t0"] = time.monotonic_ns()
        for sender in senders:
            if phase == "timed":
                sender.timed_from = sender.next_seq
            sender.target = sender.next_seq + count
            open_loop = args.rate > 0 and phase == "timed"
            sender.limit = sender.next_seq if open_loop else sender.target
        if count <= 0:
            for sender in senders:
                done(sender)
        elif args.rate > 0 and phase == "timed":
            release_open_loop(count)
        else:
            for sender in senders:
                sender.pump()

    def release_open_loop(count: int) -> None:
        interval = len(senders) / args.rate
        t0 = time.monotonic()

        def release(sender: Member, n: int) -> None:
            if state.phase != "timed":
                return
            sender.limit = sender.timed_from + n + 1
            sender.pump()
            if n + 1 < count:
                due = t0 + (sender.group / len(senders) + n + 1) * interval
                reactor.callLater(max(0.0, due - time.monotonic()), release, sender, n + 1)
        for sender in senders:
            reactor.callLater(sender.group / len(senders) * interval, release, sender, 0)

    def done(sender: Member) -> None:
        finished.add(sender)
        if len(finished) < len(senders):
            return
        if state.phase == "warmup":
            begin("timed", args.messages)
        elif state.phase == "timed":
            state.samples["t1"] = time.monotonic_ns()
            state.samples["after"] = ServerSample(args.server_pid)
            state.samples["gen1"] = self_cpu_s()
            state.phase = "draining"
            reactor.callLater(0.2, drained)

    def drained() -> None:
        missing = sum(s.next_seq - s.ack_expect for s in senders)
        if missing:
            state.error(f"{missing} server ack(s) missing after the last delivery")
        state.phase = "closing"
        state.stop()

    def watchdog() -> None:
        if time.monotonic() > deadline:
            state.stop(f"deadline of {args.max_seconds}s reached in phase {state.phase}"
                       f" ({counts['online']}/{len(members)} online,"
                       f" {counts['created']}/{len(senders)} groups)")
        else:
            reactor.callLater(0.5, watchdog)

    state.on_created, state.on_done = created, done
    offline = []
    for g, group_names in enumerate(names):
        group_members = []
        for k, name in enumerate(group_names):
            if k >= online:
                offline.append(BenchConnection(name, secret, key, args.cipher,
                                               on_ready=account_ready,
                                               on_fail=lambda c, why: state.stop(why),
                                               login=args.login, quickack=False))
                continue
            member = Member(state, name, g, k == 0, secret, key, member_ready)
            group_members.append(member)
        sender = group_members[0]
        sender.names = group_names[1:]
        sender.recipients = len(group_members) - 1
        for member in group_members:
            member.sender = sender
        senders.append(sender)
        members.extend(group_members)
    accounts = Launcher(reactor, args.host, args.port, offline, args.connect_concurrency)
    launcher = Launcher(reactor, args.host, args.port, members, args.connect_concurrency)
    if offline:
        accounts.start()
    else:
        state.phase = "login"
        launcher.start()
    reactor.callLater(0.5, watchdog)
    reactor.run()
    if state.fail is None:
        for member in members:
            if not member.is_sender and member.expect != member.sender.next_seq:
                state.error(f"{member.user}: {member.expect} of"
                            f" {member.sender.next_seq} arrived")
    state.phase = "closing"
    for member in members:
        member.close()
    return state, senders


def summarize(args: Any, state: Run, senders: list[Member]) -> dict[str, Any]:
    s = state.samples
    duration = (s["t1"] - s["t0"]) / 1e9 if "t1" in s else float("nan")
    recipients = sum(sender.recipients for sender in senders)
    expected = recipients * args.messages
    messages = len(senders) * args.messages
    lat, all_lat, ack_lat = sorted(state.lat), sorted(state.all_lat), sorted(state.ack_lat)
    ok = state.fail is None and state.error_count == 0 and state.deliveries == expected
    out: dict[str, Any] = {
        "kind": "groups", "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "label": args.label,
        "members": args.members, "groups": args.groups,
        "online_per_group": senders[0].recipients + 1 if senders else 0,
        "window": args.window, "rate": args.rate, "messages_per_sender": args.messages,
        "cipher": args.cipher, "deliveries": state.deliveries, "expected": expected,
        "ok": ok, "fail": state.fail, "errors": state.error_count,
        "error_samples": state.errors,
        "duration_s": round(duration, 3) if duration == duration else None,
        "deliveries_per_s": round(state.deliveries / duration, 1) if duration > 0 else None,
        "msgs_per_s": round(messages / duration, 1) if duration > 0 else None,
        "lat_ms_p50": _ms(pct(lat, 0.50)), "lat_ms_p99": _ms(pct(lat, 0.99)),
        "all_ms_p50": _ms(pct(all_lat, 0.50)), "all_ms_p99": _ms(pct(all_lat, 0.99)),
        "all_ms_max": round(all_lat[-1] / 1e6, 3) if all_lat else None,
        "ack_ms_p50": _ms(pct(ack_lat, 0.50)), "ack_ms_p99": _ms(pct(ack_lat, 0.99)),
    }
    if "after" in s and duration == duration and state.deliveries:
        figures = server_figures(s["before"], s["after"], state.deliveries, duration)
        out["server_cpu_us_per_delivery"] = figures.pop("server_cpu_us_per_msg", None)
        if figures.get("server_cpu_s") is not None:
            out["server_cpu_us_per_msg"] = round(figures["server_cpu_s"] * 1e6 / messages, 1)
        out.update(figures)
        gen = s["gen1"] - s["gen0"]
        out["gen_cpu_us_per_delivery"] = round(gen * 1e6 / state.deliveries, 2)
    return out


def summary_line(out: dict[str, Any]) -> str:
    return (f"# {out['label']} groups: {out['groups']} x {out['members']} members,"
            f" {out['online_per_group']} online each, W={out['window']} rate={out['rate']}:"
            f" {out['deliveries']}/{out['expected']} deliveries in {out['duration_s']} s ="
            f" {out['deliveries_per_s']} deliveries/s ({out['msgs_per_s']} msg/s); delivery"
            f" ms p50 {out['lat_ms_p50']} p99 {out['lat_ms_p99']}; all online ms p50"
            f" {out['all_ms_p50']} p99 {out['all_ms_p99']} max {out['all_ms_max']}; server"
            f" {out.get('server_cpu_us_per_delivery')} us CPU/delivery,"
            f" {out.get('server_cpu_us_per_msg')} us/msg (util {out.get('server_cpu_util')});"
            f" generator {out.get('gen_cpu_us_per_delivery')} us/delivery; ok={out['ok']}"
            + (f" FAIL: {out['fail']}" if out["fail"] else "")
            + (f" ERRORS: {out['error_samples']}" if out["errors"] else ""))


def main(argv: list[str]) -> int:
    from messenger.bench.cli import add_common, client_key, emit, install_reactor, read_secret
    from messenger.bench.proc import raise_nofile
    ap = argparse.ArgumentParser(prog="messenger-bench groups",
                                 description="Group fan-out: deliveries/s, CPU per delivery.")
    add_common(ap)
    ap.add_argument("--members", "-N", type=int, default=100, help="members per group")
    ap.add_argument("--groups", "-G", type=int, default=1, help="groups (one sender each)")
    ap.add_argument("--online", type=float, default=0.5,
                    help="share of each group's members online (at least 2)")
    ap.add_argument("--messages", "-M", type=int, default=200, help="timed messages per sender")
    ap.add_argument("--window", "-W", type=int, default=5,
                    help="messages per sender not yet received by every online member")
    ap.add_argument("--warmup", type=int, default=10, help="untimed messages per sender first")
    ap.add_argument("--rate", type=float, default=0,
                    help="open loop: total timed msg/s over all senders (0: closed loop)")
    ap.add_argument("--quickack", type=int, default=1)
    ap.add_argument("--body-bytes", type=int, default=64)
    args = ap.parse_args(argv)
    if min(args.members, args.groups, args.messages, args.window) < 1 or args.members < 2:
        ap.error("members (>= 2), groups, messages and window must be >= 1")
    if not 0 < args.online <= 1:
        ap.error("--online must be in (0, 1]")
    if args.body_bytes < 40:
        ap.error("--body-bytes must be at least 40")
    args.host, args.port = args.server
    raise_nofile(args.groups * args.members + 64)
    secret = read_secret(args.secret_file)
    reactor = install_reactor()
    state, senders = run(args, reactor, secret, client_key())
    out = summarize(args, state, senders)
    emit(out, args.json_out, summary_line(out))
    return 0 if out["ok"] else 1
