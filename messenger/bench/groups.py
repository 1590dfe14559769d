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
import time
from typing import Any

from messenger.bench.conn import BenchConnection, Launcher
from messenger.bench.delivery import _ms, pct
from messenger.bench.groupmember import Member, Run
from messenger.bench.proc import ServerSample, self_cpu_s, server_figures


def run(args: Any, reactor: Any, secret: bytes, key: Any) -> tuple[Run, list[Member]]:
    """Make the accounts and groups, warm up, run the timed phase; the run and senders."""
    group_run = GroupRun(args, reactor, secret, key)
    return group_run, group_run.run()


class GroupRun(Run):
    """One run's phases: accounts, login, create, warmup, timed, draining, closing."""

    def __init__(self, args: Any, reactor: Any, secret: bytes, key: Any) -> None:
        super().__init__(args, reactor)
        self.deadline = time.monotonic() + args.max_seconds
        self.members: list[Member] = []
        self.senders: list[Member] = []
        self.counts = {"accounts": 0, "online": 0, "created": 0}
        self.finished: set[Member] = set()
        self.on_created, self.on_done = self.created, self.done
        online = max(2, math.ceil(args.members * args.online))
        self.offline: list[BenchConnection] = []
        for g in range(args.groups):
            names = [f"{args.user_prefix}{args.user_offset + g * args.members + k + 1}"
                     for k in range(args.members)]
            self.add_group(g, names, online, secret, key)
        self.accounts = Launcher(reactor, args.host, args.port, self.offline,
                                 args.connect_concurrency)
        self.launcher = Launcher(reactor, args.host, args.port, self.members,
                                 args.connect_concurrency)

    def add_group(self, g: int, names: list[str], online: int, secret: bytes,
                  key: Any) -> None:
        """Group ``g``: its first ``online`` members connect, the rest only get accounts."""
        args = self.args
        group_members = []
        for k, name in enumerate(names):
            if k >= online:
                self.offline.append(BenchConnection(name, secret, key, args.cipher,
                                                    on_ready=self.account_ready,
                                                    on_fail=lambda c, why: self.stop(why),
                                                    login=args.login, quickack=False))
                continue
            group_members.append(Member(self, name, g, k == 0, secret, key,
                                        self.member_ready))
        sender = group_members[0]
        sender.names = names[1:]
        sender.recipients = len(group_members) - 1
        for member in group_members:
            member.sender = sender
        self.senders.append(sender)
        self.members.extend(group_members)

    def run(self) -> list[Member]:
        if self.offline:
            self.accounts.start()
        else:
            self.phase = "login"
            self.launcher.start()
        self.reactor.callLater(0.5, self.watchdog)
        self.reactor.run()
        if self.fail is None:
            for member in self.members:
                if not member.is_sender and member.expect != member.sender.next_seq:
                    self.error(f"{member.user}: {member.expect} of"
                               f" {member.sender.next_seq} arrived")
        self.phase = "closing"
        for member in self.members:
            member.close()
        return self.senders

    def watchdog(self) -> None:
        if time.monotonic() > self.deadline:
            self.stop(f"deadline of {self.args.max_seconds}s reached in phase {self.phase}"
                      f" ({self.counts['online']}/{len(self.members)} online,"
                      f" {self.counts['created']}/{len(self.senders)} groups)")
        else:
            self.reactor.callLater(0.5, self.watchdog)

    # -- phases ------------------------------------------------------------------------

    def account_ready(self, conn: BenchConnection) -> None:
        conn.close()
        self.accounts.done()
        self.counts["accounts"] += 1
        if self.counts["accounts"] == len(self.offline):
            self.phase = "login"
            self.launcher.start()

    def member_ready(self, conn: BenchConnection) -> None:
        self.launcher.done()
        self.counts["online"] += 1
        if self.counts["online"] == len(self.members):
            self.phase = "create"
            for sender in self.senders:
                sender.create()

    def created(self, sender: Member) -> None:
        self.counts["created"] += 1
        if self.counts["created"] == len(self.senders):
            self.begin("warmup", self.args.warmup)

    def begin(self, phase: str, count: int) -> None:
        args = self.args
        self.phase = phase
        self.finished.clear()
        open_loop = args.rate > 0 and phase == "timed"
        if phase == "timed":
            self.samples["before"] = ServerSample(args.server_pid)
            self.samples["gen0"] = self_cpu_s()
            self.samples["t0"] = time.monotonic_ns()
        for sender in self.senders:
            if phase == "timed":
                sender.timed_from = sender.next_seq
            sender.target = sender.next_seq + count
            sender.limit = sender.next_seq if open_loop else sender.target
        if count <= 0:
            for sender in self.senders:
                self.done(sender)
        elif open_loop:
            self.release_open_loop(count)
        else:
            for sender in self.senders:
                sender.pump()

    def release_open_loop(self, count: int) -> None:
        senders, reactor = self.senders, self.reactor
        interval = len(senders) / self.args.rate
        t0 = time.monotonic()

        def release(sender: Member, n: int) -> None:
            if self.phase != "timed":
                return
            sender.limit = sender.timed_from + n + 1
            sender.pump()
            if n + 1 < count:
                due = t0 + (sender.group / len(senders) + n + 1) * interval
                reactor.callLater(max(0.0, due - time.monotonic()), release, sender, n + 1)

        for sender in senders:
            reactor.callLater(sender.group / len(senders) * interval, release, sender, 0)

    def done(self, sender: Member) -> None:
        self.finished.add(sender)
        if len(self.finished) < len(self.senders):
            return
        if self.phase == "warmup":
            self.begin("timed", self.args.messages)
        elif self.phase == "timed":
            self.samples["t1"] = time.monotonic_ns()
            self.samples["after"] = ServerSample(self.args.server_pid)
            self.samples["gen1"] = self_cpu_s()
            self.phase = "draining"
            self.reactor.callLater(0.2, self.drained)

    def drained(self) -> None:
        missing = sum(s.next_seq - s.ack_expect for s in self.senders)
        if missing:
            self.error(f"{missing} server ack(s) missing after the last delivery")
        self.phase = "closing"
        self.stop()


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
