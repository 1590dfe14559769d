"""The group benchmark's shared run state and its members (`groups` says what is measured).

A `Member` is an online member's connection; the group's first member is its sender,
which keeps at most W messages in flight, each until every other online member has it.
Lean like the one-to-one generator: one f-string per message, regexes instead of
json.loads on the hot path.
"""

from __future__ import annotations

import os
import re
import time
from array import array
from typing import Any

from messenger.bench.conn import LEN, BenchConnection
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
