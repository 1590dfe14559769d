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
import re
import time
from array import array
from typing import Any

from messenger.bench.conn import LEN, BenchConnection, Launcher
from messenger.bench.proc import ServerSample, proc_cmdline, self_cpu_s, server_figures
from messenger.wire.suites import ChannelError

MSG_RE = re.compile(rb'"message":"(\d+) (\d+) (\d+) ')
ACK_OK = b'{"response":200,'
ACK_MSG = b'{"response":200,"msg_id":'
ID_KEY = b'"id":"'
MSG_ID_AT = len(b'{"action":"msg","msg_id":')


class Stats:
    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.lat = array("q")      # ns, timed phase only
        self.ack_lat = array("q")  # ns, server 200 ack latency, timed messages only
        self.delivered = 0         # timed phase
        self.errors = 0            # lost, duplicated, reordered, refused
        self.error_samples: list[str] = []
        self.receipts = 0          # read receipts sent by receivers (--read-receipts)
        self.receipt_pushes = 0    # receipt pushes the senders got
        self.typing = 0            # typing notices sent (--typing)

    def error(self, what: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(what)


def run(args: Any, reactor: Any, secret: bytes, client_key: Any) -> tuple[dict, array, array]:
    """Log in the pairs, warm up, run the timed phase; return (results, latencies, acks)."""
    W, M, warm = args.window, args.messages, args.warmup
    deadline = time.monotonic() + args.max_seconds
    stats = Stats(args.pairs * M)
    now_ns = time.monotonic_ns
    state: dict[str, Any] = {"phase": "login", "logged_in": 0, "t0": None, "t1": None,
                             "fail": None}
    n_clients = 2 * args.pairs
    senders: list[Client] = []
    run_tag = os.urandom(3).hex()  # request ids differ between runs on a reused server

    def fail(why: str) -> None:
        if state["fail"] is None:
            state["fail"] = why
        if reactor.running:
            reactor.stop()

    def conn_failed(conn: BenchConnection, why: str) -> None:
        if state["phase"] == "closing":
            return
        stats.error(why)
        fail(why)

    class Client(BenchConnection):
        """One account's connection; role 'send' or 'recv'."""

        def __init__(self, user: str, role: str, pair: int) -> None:
            super().__init__(user, secret, client_key, args.cipher, on_ready=logged_in,
                             on_fail=conn_failed, login=args.login,
                             quickack=bool(args.quickack))
            self.role, self.pair = role, pair
            self.partner: Client | None = None
            self.id_prefix = f"{run_tag}{pair % 256:02x}"   # 8 hex digits; seq gives 24 more
            # sender state
            self.next_seq = 0       # next sequence number to send
            self.acked = 0          # messages delivered to the partner (counted by receiver)
            self.limit = 0          # may send up to this sequence number (exclusive) now
            self.target = 0         # the phase ends for this sender when acked reaches this
            self.timed_from = 1 << 62  # seq at which the timed phase starts (set at GO)
            self.sent_t = array("q")   # send time of every seq (for the server-ack latency)
            self.ack_expect = 0     # next server 200 ack (by seq) expected
            # receiver state
            self.expect_seq = 0
            self.last_msg_id = 0    # the newest message id received (for read receipts)
            self.receipt_due = False
            # sender state for --typing
            self.typed_at = 0.0

        def on_frames(self, frames: list[bytes]) -> None:
            if self.role == "recv":
                self.on_recv(frames)
            else:
                self.on_acks(frames)

        # -- sending ---------------------------------------------------------------------
        def pump(self) -> None:
            """Write as many messages as the window allows, in one write."""
            n = min(self.limit - self.next_seq, W - (self.next_seq - self.acked))
            if n <= 0:
                return
            to = self.partner.user
            seq = self.next_seq
            pair = self.pair
            body_bytes = args.body_bytes
            prefix = self.id_prefix
            seal = self.seal
            t = now_ns()
            wall = int(time.time())
            out = []
            if args.typing and t / 1e9 - self.typed_at >= args.typing:
                # As a real client: "typing" at most every --typing seconds while writing.
                self.typed_at = t / 1e9
                stats.typing += 1
                ct = seal((f'{{"action":"typing","id":"{os.urandom(16).hex()}","time":{wall},'
                           f'"to":"{to}"}}').encode())
                out += [LEN(len(ct)), ct]
            for s in range(seq, seq + n):
                body = f"{pair} {s} {t} "
                pt = (f'{{"action":"msg","id":"{prefix}{s:024x}","time":{wall},"to":"{to}",'
                      f'"message":"{body}{"x" * (body_bytes - len(body))}"}}').encode()
                ct = seal(pt)
                out.append(LEN(len(ct)))
                out.append(ct)
            self.next_seq = seq + n
            self.sent_t.extend(array("q", [t]) * n)
            self.transport.write(b"".join(out))

        # -- receiving -------------------------------------------------------------------
        def on_acks(self, frames: list[bytes]) -> None:
            """Sender side: the server's 200 (with msg_id) for each message, in order."""
            t = now_ns()
            expect = self.ack_expect
            timed_from = self.timed_from
            sent_t = self.sent_t
            ack_lat = stats.ack_lat
            open_ = self.open
            for f in frames:
                try:
                    pt = open_(f)
                except ChannelError as error:
                    self.fail(f"frame failed to open: {error}")
                    return
                if not pt.startswith(ACK_MSG):
                    if pt.startswith(b'{"action":"receipt"'):
                        stats.receipt_pushes += 1
                        continue
                    if pt.startswith(ACK_OK) or self.maybe_probe(pt):
                        continue            # the answer to a typing notice; a probe
                    stats.error(f"{self.user}: unexpected frame: {pt[:300]!r}")
                    fail(f"{self.user} received a non-200 response")
                    return
                i = pt.rfind(ID_KEY)
                try:
                    aid = int(pt[i + 14:i + 38], 16) if i >= 0 else -1
                except ValueError:
                    aid = -1
                if aid != expect or aid >= len(sent_t):
                    stats.error(f"{self.user}: ack for seq {aid}, expected {expect}")
                expect = aid + 1
                if aid >= timed_from:
                    ack_lat.append(t - sent_t[aid])
            self.ack_expect = expect
            if state["phase"] == "draining":
                check_drained()

        def send_receipt(self) -> None:
            self.receipt_due = False
            if state["phase"] == "closing" or self.transport is None:
                return
            stats.receipts += 1
            pt = (f'{{"action":"receipt","id":"{os.urandom(16).hex()}","time":{int(time.time())},'
                  f'"kind":"read","with":"{self.partner.user}","up_to":{self.last_msg_id}}}')
            ct = self.seal(pt.encode())
            self.transport.write(LEN(len(ct)) + ct)

        def on_recv(self, frames: list[bytes]) -> None:
            t = now_ns()
            sender = self.partner
            expect = self.expect_seq
            timed_from = sender.timed_from
            lat = stats.lat
            open_ = self.open
            n = 0
            skipped = 0
            for f in frames:
                try:
                    pt = open_(f)
                except ChannelError as error:
                    self.fail(f"frame failed to open: {error}")
                    return
                m = MSG_RE.search(pt)
                if m is None:
                    if not (self.maybe_probe(pt) or pt.startswith(ACK_OK)
                            or pt.startswith(b'{"action":"typing"')):
                        stats.error(f"{self.user}: unexpected frame: {pt[:300]!r}")
                    continue
                if args.read_receipts:
                    self.last_msg_id = int(pt[MSG_ID_AT:pt.index(b",", MSG_ID_AT)])
                seq = int(m.group(2))
                if seq != expect or int(m.group(1)) != self.pair:
                    if seq < expect or int(m.group(1)) != self.pair:
                        # A duplicate (or another pair's message): counted as an error,
                        # never as a delivery, and the expected sequence stays where it is.
                        stats.error(f"{self.user}: got pair {m.group(1).decode()} seq {seq},"
                                    f" expected {expect}: duplicate or misrouted")
                        continue
                    # A gap: the messages in between are lost (or come later, reordered,
                    # and then show up as duplicates). Their window slots are freed so
                    # the run ends by itself and reports them.
                    stats.error(f"{self.user}: got seq {seq}, expected {expect}:"
                                f" {seq - expect} lost or reordered")
                    skipped += seq - expect
                expect = seq + 1
                if seq >= timed_from:
                    lat.append(t - int(m.group(3)))
                n += 1
            self.expect_seq = expect
            if args.read_receipts and n and not self.receipt_due:
                # As a real client with the chat open: one read receipt for the
                # conversation, up to the newest message, at most every N seconds.
                self.receipt_due = True
                reactor.callLater(args.read_receipts, self.send_receipt)
            sender.acked += n + skipped
            if state["phase"] == "timed":
                stats.delivered += n
            if sender.acked >= sender.target:
                sender_finished(sender)
            else:
                sender.pump()

    def logged_in(conn: BenchConnection) -> None:
        launcher.done()
        state["logged_in"] += 1
        if state["logged_in"] == n_clients:
            reactor.callLater(args.settle, all_logged_in)

    clients: list[Client] = []
    base = args.user_offset
    for i in range(args.pairs):
        s = Client(f"{args.user_prefix}{base + 2 * i + 1}", "send", i)
        r = Client(f"{args.user_prefix}{base + 2 * i + 2}", "recv", i)
        s.partner, r.partner = r, s
        senders.append(s)
        clients += [r, s] if args.alternate_pairs and i % 2 else [s, r]
    launcher = Launcher(reactor, args.host, args.port, clients, args.connect_concurrency)

    def all_logged_in() -> None:
        state["phase"] = "warmup"
        if warm <= 0:
            start_timed()
            return
        for s in senders:
            s.limit = s.target = warm
            s.pump()

    finished: set[Client] = set()

    def sender_finished(s: Client) -> None:
        if s in finished:
            return
        finished.add(s)
        if state["phase"] == "warmup" and len(finished) == len(senders):
            finished.clear()
            start_timed()
        elif state["phase"] == "timed" and len(finished) == len(senders):
            state["t1"] = now_ns()
            # Server CPU read again at the last delivery, before the (untimed) ack drain.
            state["sample1"] = ServerSample(args.server_pid, args.also_pids)
            state["gen1"] = self_cpu_s()
            state["phase"] = "draining"
            reactor.callLater(10, drain_timeout)
            check_drained()

    def check_drained() -> None:
        if state["phase"] == "draining" and all(s.ack_expect == s.next_seq for s in senders):
            state["phase"] = "closing"
            # A short grace period catches late duplicates before the check is final.
            reactor.callLater(0.2, reactor.stop)

    def drain_timeout() -> None:
        if state["phase"] == "draining":
            missing = sum(s.next_seq - s.ack_expect for s in senders)
            stats.error(f"{missing} server ack(s) missing 10 s after the last delivery")
            fail(f"{missing} server ack(s) missing 10 s after the last delivery")

    def start_timed() -> None:
        state["phase"] = "timed"
        state["sample0"] = ServerSample(args.server_pid, args.also_pids)
        state["gen0"] = self_cpu_s()
        state["t0"] = now_ns()
        for s in senders:
            s.timed_from = s.next_seq
            s.limit = s.target = s.next_seq + M
        if args.rate > 0:
            # Open loop: sender j may send its n-th timed message at t0 + (j/P + n) * P/rate,
            # so the senders are evenly staggered. The window still applies; latency is
            # measured from the actual write, so a full window shows up as lower throughput.
            interval = args.pairs / args.rate
            t0 = state["t0"] / 1e9

            def release(s: Client, n: int) -> None:
                if state["phase"] != "timed":
                    return
                s.limit = s.timed_from + n + 1
                s.pump()
                if n + 1 < M:
                    due = t0 + (s.pair / args.pairs + n + 1) * interval
                    reactor.callLater(max(0.0, due - time.monotonic()), release, s, n + 1)

            for s in senders:
                s.limit = s.timed_from
                reactor.callLater(s.pair / args.pairs * interval, release, s, 0)
            return
        for s in senders:
            s.pump()

    def watchdog() -> None:
        if time.monotonic() > deadline:
            fail(f"deadline of {args.max_seconds}s reached in phase {state['phase']}"
                 f" (logged in {state['logged_in']}/{n_clients},"
                 f" delivered {stats.delivered}/{stats.expected})")
        else:
            reactor.callLater(0.5, watchdog)

    launcher.start()
    reactor.callLater(0.5, watchdog)
    reactor.run()

    # The final check: every message of every sender (warm-up included) arrived once, in order.
    if state["fail"] is None:
        for s in senders:
            if s.partner.expect_seq != s.next_seq:
                stats.error(f"{s.partner.user}: {s.partner.expect_seq} of {s.next_seq} arrived")
    t_end = state["t1"] or now_ns()
    res: dict[str, Any] = {
        "delivered": stats.delivered, "expected": stats.expected,
        "errors": stats.errors, "error_samples": stats.error_samples, "fail": state["fail"],
        "t0_ns": state["t0"], "t1_ns": t_end,
        "gen_cpu_s": state.get("gen1", self_cpu_s()) - state.get("gen0", self_cpu_s()),
        "receipts": stats.receipts, "receipt_pushes": stats.receipt_pushes,
        "typing": stats.typing,
    }
    if "sample0" in state:
        res["sample0"] = state["sample0"]
        res["sample1"] = state.get("sample1") or ServerSample(args.server_pid, args.also_pids)
    state["phase"] = "closing"
    for c in clients:
        try:
            c.close()
        except Exception:  # noqa: S110 - closing after the run; nothing left to report
            pass
    return res, stats.lat, stats.ack_lat


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
