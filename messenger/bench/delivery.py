"""One-to-one delivery: P pairs, W in flight per sender, M timed messages each.

Adapted from the team's harnesses ../shared/bench/xmpp/xmpp_load.py (the Prosody anchor)
and ../shared/bench/floor/relay_load.py (the bare relay floor): the window/pump logic,
the open-loop rate scheduler, the untimed warm-up, the /proc accounting, the exactly-once
and in-order checks and every key of ``summarize()`` are theirs; login, message encoding
and delivery parsing speak Messenger's protocol (docs/PROTOCOL.md).

In pair i, user(2i+1) sends ``msg`` to user(2i+2). A message is in flight from the moment
it is written to the sender's socket until the partner has *received* it (not until the
server's 200, whose latency is a second figure, ``ack_ms_*``). The body carries
``pair seq t_send_ns`` (CLOCK_MONOTONIC in this one process), padded to 64 bytes.

Lean on purpose (every generator microsecond comes off the server's 2 cores): outgoing
JSON is one f-string per message, everything one pump makes goes out in one write,
every frame is sealed and opened for real with the established channel (the counters
would fall out of step otherwise), and deliveries and acks are parsed with a regex and
a slice instead of json.loads. Every loop is bounded by count, the run by --max-seconds.
"""

from __future__ import annotations

import os
import time
from array import array
from typing import Any

from messenger.bench.conn import BenchConnection, Launcher
from messenger.bench.pairclient import PairClient, Stats
from messenger.bench.proc import ServerSample, proc_cmdline, self_cpu_s, server_figures


def run(args: Any, reactor: Any, secret: bytes, client_key: Any) -> tuple[dict, array, array]:
    """Log in the pairs, warm up, run the timed phase; return (results, latencies, acks)."""
    return DeliveryRun(args, reactor, secret, client_key).run()


class DeliveryRun:
    """One run's phases: login, settle, warm-up, timed, draining, closing.

    The pairs' clients (`PairClient`) move messages; this object decides when each phase
    starts and ends, and `fail` stops the reactor with the first reason.
    """

    def __init__(self, args: Any, reactor: Any, secret: bytes, client_key: Any) -> None:
        self.args, self.reactor = args, reactor
        self.stats = Stats(args.pairs * args.messages)
        self.phase = "login"
        self.logged_in_count = 0
        self.t0: int | None = None
        self.t1: int | None = None
        self.failed: str | None = None
        self.samples: dict[str, Any] = {}
        self.deadline = time.monotonic() + args.max_seconds
        self.finished: set[PairClient] = set()
        run_tag = os.urandom(3).hex()  # request ids differ between runs on a reused server
        self.senders: list[PairClient] = []
        self.clients: list[PairClient] = []
        base = args.user_offset
        for i in range(args.pairs):
            sender = PairClient(self, f"{args.user_prefix}{base + 2 * i + 1}", "send", i,
                                secret, client_key, run_tag)
            receiver = PairClient(self, f"{args.user_prefix}{base + 2 * i + 2}", "recv", i,
                                  secret, client_key, run_tag)
            sender.partner, receiver.partner = receiver, sender
            self.senders.append(sender)
            self.clients += [receiver, sender] if args.alternate_pairs and i % 2 \
                else [sender, receiver]
        self.launcher = Launcher(reactor, args.host, args.port, self.clients,
                                 args.connect_concurrency)

    def run(self) -> tuple[dict, array, array]:
        self.launcher.start()
        self.reactor.callLater(0.5, self.watchdog)
        self.reactor.run()
        result = self.result()
        self.phase = "closing"
        for client in self.clients:
            try:
                client.close()
            except Exception:  # noqa: S110 - closing after the run; nothing left to report
                pass
        return result, self.stats.lat, self.stats.ack_lat

    # -- failures ----------------------------------------------------------------------

    def fail(self, why: str) -> None:
        if self.failed is None:
            self.failed = why
        if self.reactor.running:
            self.reactor.stop()

    def conn_failed(self, conn: BenchConnection, why: str) -> None:
        if self.phase == "closing":
            return
        self.stats.error(why)
        self.fail(why)

    def watchdog(self) -> None:
        if time.monotonic() > self.deadline:
            self.fail(f"deadline of {self.args.max_seconds}s reached in phase {self.phase}"
                      f" (logged in {self.logged_in_count}/{len(self.clients)},"
                      f" delivered {self.stats.delivered}/{self.stats.expected})")
        else:
            self.reactor.callLater(0.5, self.watchdog)

    # -- phases ------------------------------------------------------------------------

    def logged_in(self, conn: BenchConnection) -> None:
        self.launcher.done()
        self.logged_in_count += 1
        if self.logged_in_count == len(self.clients):
            self.reactor.callLater(self.args.settle, self.all_logged_in)

    def all_logged_in(self) -> None:
        self.phase = "warmup"
        warm = self.args.warmup
        if warm <= 0:
            self.start_timed()
            return
        for sender in self.senders:
            sender.limit = sender.target = warm
            sender.pump()

    def sender_finished(self, sender: PairClient) -> None:
        if sender in self.finished:
            return
        self.finished.add(sender)
        if len(self.finished) < len(self.senders):
            return
        if self.phase == "warmup":
            self.finished.clear()
            self.start_timed()
        elif self.phase == "timed":
            self.t1 = time.monotonic_ns()
            # Server CPU read again at the last delivery, before the (untimed) ack drain.
            self.samples["sample1"] = ServerSample(self.args.server_pid, self.args.also_pids)
            self.samples["gen1"] = self_cpu_s()
            self.phase = "draining"
            self.reactor.callLater(10, self.drain_timeout)
            self.check_drained()

    def check_drained(self) -> None:
        if self.phase == "draining" and all(s.ack_expect == s.next_seq for s in self.senders):
            self.phase = "closing"
            # A short grace period catches late duplicates before the check is final.
            self.reactor.callLater(0.2, self.reactor.stop)

    def drain_timeout(self) -> None:
        if self.phase == "draining":
            missing = sum(s.next_seq - s.ack_expect for s in self.senders)
            self.stats.error(f"{missing} server ack(s) missing 10 s after the last delivery")
            self.fail(f"{missing} server ack(s) missing 10 s after the last delivery")

    def start_timed(self) -> None:
        args = self.args
        self.phase = "timed"
        self.samples["sample0"] = ServerSample(args.server_pid, args.also_pids)
        self.samples["gen0"] = self_cpu_s()
        self.t0 = time.monotonic_ns()
        for sender in self.senders:
            sender.timed_from = sender.next_seq
            sender.limit = sender.target = sender.next_seq + args.messages
        if args.rate > 0:
            self.open_loop()
            return
        for sender in self.senders:
            sender.pump()

    def open_loop(self) -> None:
        """Sender j may send its n-th timed message at t0 + (j/P + n) * P/rate, so the
        senders are evenly staggered. The window still applies; latency is measured from
        the actual write, so a full window shows up as lower throughput."""
        args, reactor = self.args, self.reactor
        interval = args.pairs / args.rate
        t0 = self.t0 / 1e9

        def release(sender: PairClient, n: int) -> None:
            if self.phase != "timed":
                return
            sender.limit = sender.timed_from + n + 1
            sender.pump()
            if n + 1 < args.messages:
                due = t0 + (sender.pair / args.pairs + n + 1) * interval
                reactor.callLater(max(0.0, due - time.monotonic()), release, sender, n + 1)

        for sender in self.senders:
            sender.limit = sender.timed_from
            reactor.callLater(sender.pair / args.pairs * interval, release, sender, 0)

    def result(self) -> dict[str, Any]:
        """The final check (every message of every sender, warm-up included, arrived
        once, in order) and the run's raw figures."""
        stats, args, samples = self.stats, self.args, self.samples
        if self.failed is None:
            for sender in self.senders:
                if sender.partner.expect_seq != sender.next_seq:
                    stats.error(f"{sender.partner.user}: {sender.partner.expect_seq} of"
                                f" {sender.next_seq} arrived")
        res: dict[str, Any] = {
            "delivered": stats.delivered, "expected": stats.expected,
            "errors": stats.errors, "error_samples": stats.error_samples,
            "fail": self.failed, "t0_ns": self.t0, "t1_ns": self.t1 or time.monotonic_ns(),
            "gen_cpu_s": samples.get("gen1", self_cpu_s()) - samples.get("gen0", self_cpu_s()),
            "receipts": stats.receipts, "receipt_pushes": stats.receipt_pushes,
            "typing": stats.typing,
        }
        if "sample0" in samples:
            res["sample0"] = samples["sample0"]
            res["sample1"] = samples.get("sample1") or ServerSample(args.server_pid,
                                                                     args.also_pids)
        return res


def pct(sorted_lat: Any, q: float) -> float:
    if not sorted_lat:
        return float("nan")
    i = min(len(sorted_lat) - 1, max(0, int(round(q * len(sorted_lat))) - 1))
    return sorted_lat[i] / 1e6  # ms


def _ms(value: float) -> float | None:
    return None if value != value else round(value, 3)  # NaN -> null (valid JSON)


def summarize(args: Any, res: dict, lat: Any, ack_lat: Any = ()) -> dict[str, Any]:
    """The shared harness's summarize() keys, plus the messenger's own (cipher, persist)."""
    dur = (res["t1_ns"] - res["t0_ns"]) / 1e9 if res.get("t0_ns") else float("nan")
    lat = sorted(lat)
    ack_lat = sorted(ack_lat)
    cmdline = proc_cmdline(args.server_pid) if args.server_pid else []
    out: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "label": args.label, "pairs": args.pairs, "window": args.window, "rate": args.rate,
        "quickack": args.quickack, "messages_per_sender": args.messages,
        "body_bytes": args.body_bytes, "procs": 1,
        "delivered": res["delivered"], "expected": res["expected"], "errors": res["errors"],
        "ok": res["fail"] is None and res["errors"] == 0 and res["delivered"] == res["expected"],
        "fail": res["fail"], "error_samples": res["error_samples"],
        "duration_s": round(dur, 3) if dur == dur else None,
        "msgs_per_s": round(res["delivered"] / dur, 1) if dur > 0 else None,
        "lat_ms_p50": _ms(pct(lat, 0.50)), "lat_ms_p95": _ms(pct(lat, 0.95)),
        "lat_ms_p99": _ms(pct(lat, 0.99)), "lat_ms_max": round(lat[-1] / 1e6, 3) if lat else None,
        "gen_cpu_s": round(res["gen_cpu_s"], 3),
        "server": "messenger",
        "cipher": args.cipher,
        "persist": ("--no-persist" not in cmdline) if cmdline else None,
        "acks": len(ack_lat),
        "ack_ms_p50": _ms(pct(ack_lat, 0.50)), "ack_ms_p95": _ms(pct(ack_lat, 0.95)),
        "ack_ms_p99": _ms(pct(ack_lat, 0.99)),
        "ack_ms_max": round(ack_lat[-1] / 1e6, 3) if ack_lat else None,
        "read_receipts_s": args.read_receipts, "typing_s": args.typing,
        "receipts": res.get("receipts", 0), "receipt_pushes": res.get("receipt_pushes", 0),
        "typing": res.get("typing", 0),
    }
    if "sample0" in res and dur == dur:
        out.update(server_figures(res["sample0"], res["sample1"], res["delivered"], dur))
    out["gen_cpu_us_per_msg"] = (round(res["gen_cpu_s"] * 1e6 / res["delivered"], 2)
                                 if res["delivered"] else None)
    return out


def summary_line(out: dict[str, Any]) -> str:
    return (f"# {out['label'] or ''} {out['cipher']} persist={out['persist']} P={out['pairs']}"
            f" W={out['window']} M={out['messages_per_sender']} rate={out['rate']}:"
            f" {out['delivered']}/{out['expected']} delivered in {out['duration_s']} s ="
            f" {out['msgs_per_s']} msg/s; latency ms p50 {out['lat_ms_p50']} p95"
            f" {out['lat_ms_p95']} p99 {out['lat_ms_p99']} max {out['lat_ms_max']}; ack ms p50"
            f" {out['ack_ms_p50']} p99 {out['ack_ms_p99']}; server"
            f" {out.get('server_cpu_us_per_msg')} us CPU/msg (util {out.get('server_cpu_util')}),"
            + (f" all serving processes {out['total_cpu_us_per_msg']} us CPU/msg,"
               if "total_cpu_us_per_msg" in out else "") +
            f" RSS {out.get('server_rss_kib_after')} KiB; generator {out['gen_cpu_us_per_msg']}"
            f" us CPU/msg; machine busy {out.get('machine_busy_2cores')};"
            f" receipts {out['receipts']} ({out['receipt_pushes']} pushed), typing"
            f" {out['typing']}; ok={out['ok']}"
            + (f" FAIL: {out['fail']}" if out["fail"] else "")
            + (f" ERRORS: {out['error_samples']}" if out["errors"] else ""))
