"""The pairs' clients of the delivery benchmark: the hot path of the generator.

In pair i, user(2i+1) sends ``msg`` to user(2i+2) (`delivery` says what is measured).
Lean on purpose (every generator microsecond comes off the server's 2 cores): outgoing
JSON is one f-string per message, everything one pump makes goes out in one write,
every frame is sealed and opened for real with the established channel, and deliveries
and acks are parsed with a regex and a slice instead of json.loads.
"""

from __future__ import annotations

import os
import re
import time
from array import array
from typing import Any

from messenger.bench.conn import LEN, BenchConnection
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


class PairClient(BenchConnection):
    """One account's connection in a pair: role 'send' or 'recv'. Its run (a
    `delivery.DeliveryRun`) starts and ends the phases; the client moves messages."""

    def __init__(self, run: Any, user: str, role: str, pair: int, secret: bytes,
                 client_key: Any, run_tag: str) -> None:
        args = run.args
        super().__init__(user, secret, client_key, args.cipher, on_ready=run.logged_in,
                         on_fail=run.conn_failed, login=args.login,
                         quickack=bool(args.quickack))
        self.run, self.args, self.stats = run, args, run.stats
        self.role, self.pair = role, pair
        self.partner: PairClient | None = None
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
        n = min(self.limit - self.next_seq, self.args.window - (self.next_seq - self.acked))
        if n <= 0:
            return
        to = self.partner.user
        seq = self.next_seq
        pair = self.pair
        args, stats = self.args, self.stats
        body_bytes = args.body_bytes
        prefix = self.id_prefix
        seal = self.seal
        t = time.monotonic_ns()
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
        t = time.monotonic_ns()
        stats = self.stats
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
                self.run.fail(f"{self.user} received a non-200 response")
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
        if self.run.phase == "draining":
            self.run.check_drained()

    def send_receipt(self) -> None:
        self.receipt_due = False
        if self.run.phase == "closing" or self.transport is None:
            return
        self.stats.receipts += 1
        pt = (f'{{"action":"receipt","id":"{os.urandom(16).hex()}","time":{int(time.time())},'
              f'"kind":"read","with":"{self.partner.user}","up_to":{self.last_msg_id}}}')
        ct = self.seal(pt.encode())
        self.transport.write(LEN(len(ct)) + ct)

    def on_recv(self, frames: list[bytes]) -> None:
        t = time.monotonic_ns()
        args, stats = self.args, self.stats
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
            self.run.reactor.callLater(args.read_receipts, self.send_receipt)
        sender.acked += n + skipped
        if self.run.phase == "timed":
            stats.delivered += n
        if sender.acked >= sender.target:
            self.run.sender_finished(sender)
        else:
            sender.pump()
