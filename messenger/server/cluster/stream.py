"""Each user's messages pushed in id order, whichever node committed them.

Clients keep the highest message id they have (``last_id``), drop any push at or below
it, and sync "everything above ``last_id``" after a reconnect. So a push must never
overtake a lower id for the same user: message 101 pushed before 100 would make the
client drop 100 for good. One node gets this from its group commit (callbacks in commit
order); a cluster gets it from the chain of batches (`messenger.store.stream.chained`):

* every batch reports ``(prev, hi]``, its place in the id order; its node publishes it on
  the ``batches`` channel with the push frames for users it does not hold, and feeds it
  to its own stream for the users it holds;
* a node delivers a batch once it has delivered everything up to the batch's ``prev``
  (``upto``); a batch that comes early is held until the ones before it arrive;
* a batch that does not come within `GAP_WAIT` seconds (its node died between commit and
  publish, or Redis lost it), or at once while Redis is down, is read from the database
  instead (`range_txn`), and so is everything committed while Redis was away, when it
  comes back (`catch_up`).

So each message reaches each session of this node once and in order: by its batch, or
by the read that replaced its batch, never both (a batch whose ids are all at or below
``upto`` is skipped).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from messenger.server.directwrite import CORK
from messenger.store import messages as store_messages
from messenger.store import stream as store_stream
from messenger.store.groupcommit import GroupCommit
from messenger.wire import jim

GAP_WAIT = 2.0          # seconds a batch may be late before its range is read instead
RETRY_READ = 1.0        # after a failed read (the database is down)
READ_PAGE = 2000
PART_BYTES = 1 << 20    # a batch's announcement is split into parts of about this size

Entry = tuple[list[int], bytes]        # the users a push frame is for, and the frame


class Batch:
    __slots__ = ("prev", "hi", "entries")

    def __init__(self, prev: int, hi: int, entries: list[Entry]) -> None:
        self.prev = prev
        self.hi = hi
        self.entries = entries


def encode_parts(node: str, incarnation: str, batch: Batch) -> list[bytes]:
    """The batch as one or more ``batches`` messages (a part says whether more follow)."""
    parts: list[bytes] = []
    body: list[bytes] = []
    size = 0
    count = 0

    def flush(more: bool) -> None:
        header = json.dumps({"n": node, "i": incarnation, "p": batch.prev, "h": batch.hi,
                             "c": count, "m": more}, separators=(",", ":")).encode()
        parts.append(header + b"\n" + b"".join(body))

    for user_ids, frame in batch.entries:
        if size > PART_BYTES:
            flush(True)
            body, size, count = [], 0, 0
        head = f"{','.join(map(str, user_ids))} {len(frame)}\n".encode()
        body.append(head)
        body.append(frame)
        size += len(head) + len(frame)
        count += 1
    flush(False)
    return parts


def decode_part(data: bytes) -> tuple[dict[str, Any], list[Entry]] | None:
    """One ``batches`` message, checked: its header and entries, or None."""
    head, _, rest = data.partition(b"\n")
    try:
        header = json.loads(head)
    except ValueError:
        return None
    if (type(header) is not dict or type(header.get("n")) is not str
            or type(header.get("i")) is not str or type(header.get("p")) is not int
            or type(header.get("h")) is not int or type(header.get("c")) is not int
            or header["h"] < header["p"]):
        return None
    entries: list[Entry] = []
    offset = 0
    try:
        for _ in range(header["c"]):
            end = rest.index(b"\n", offset)
            users, size_text = rest[offset:end].split(b" ")
            size = int(size_text)
            start = end + 1
            frame = rest[start:start + size]
            if size < 0 or len(frame) != size:
                return None
            entries.append(([int(u) for u in users.split(b",")], frame))
            offset = start + size
    except ValueError:
        return None
    if offset != len(rest):
        return None
    return header, entries


class MessageStream:
    log = Logger()

    def __init__(self, db: Any, clock: Any, sessions: Any, node: str, incarnation: str,
                 publish: Callable[[bytes], bool], link_available: Callable[[], bool]) -> None:
        self.db = db
        self.clock = clock
        self.sessions = sessions          # the local Router: session(user_id)
        self.node = node
        self.incarnation = incarnation
        self.publish = publish
        self.link_available = link_available
        self.upto: int | None = None      # every batch up to this id was delivered here
        self.collecting: list[Entry] | None = None
        self._batch: tuple[int, int] | None = None
        self._held: dict[int, list[Batch]] = {}
        self._parts: dict[tuple[str, str], list[Entry]] = {}
        self._timer: Any = None
        self._reading = False
        self.read_from_db = 0             # messages delivered by reading a gap
        self.gaps = 0

    @defer.inlineCallbacks
    def start(self) -> Any:
        self.upto = yield self.db.read(store_stream.max_id_txn)
        self._advance()

    def stop(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def group_commit(self, db: Any, batch_txn: Any, on_batch: Any = None,
                     window: float = 0.0, clock: Any = None) -> GroupCommit[Any, Any]:
        return ChainedGroupCommit(db, store_stream.chained(batch_txn), self, on_batch,
                                  window, clock)

    # -- a batch of this node -------------------------------------------------------------

    def begin(self, prev: int, hi: int) -> None:
        """A batch of this node committed; its pushes (`add`) follow, then `end`."""
        self.collecting = []
        self._batch = (prev, hi)

    def add(self, user_ids: list[int], frame: bytes) -> None:
        self.collecting.append((user_ids, frame))  # type: ignore[union-attr]

    def end(self) -> None:
        entries, self.collecting = self.collecting or [], None
        prev, hi = self._batch  # type: ignore[misc]
        here: list[Entry] = []
        away: list[Entry] = []
        session = self.sessions.session
        for user_ids, frame in entries:
            local = [u for u in user_ids if session(u) is not None]
            if local:
                here.append((local, frame))
            if len(local) != len(user_ids):
                away.append(([u for u in user_ids if session(u) is None], frame))
        for part in encode_parts(self.node, self.incarnation, Batch(prev, hi, away)):
            self.publish(part)
        self._arrived(Batch(prev, hi, here))

    # -- batches of other nodes -----------------------------------------------------------

    def received(self, data: bytes) -> None:
        decoded = decode_part(data)
        if decoded is None:
            self.log.warn("Dropped a malformed batch announcement")
            return
        header, entries = decoded
        if header["n"] == self.node:
            return
        key = (header["n"], header["i"])
        if header.get("m"):
            self._parts.setdefault(key, []).extend(entries)
            return
        entries = self._parts.pop(key, []) + entries
        self._arrived(Batch(header["p"], header["h"], entries))

    # -- the chain ------------------------------------------------------------------------

    def _arrived(self, batch: Batch) -> None:
        if self.upto is not None and batch.hi <= self.upto and batch.hi > batch.prev:
            return                        # read from the database already
        self._held.setdefault(batch.prev, []).append(batch)
        self._advance()

    def _advance(self) -> None:
        """Deliver every held batch that continues the chain; wait for (or read) a gap."""
        if self.upto is None or self._reading:
            return
        while self._held:
            ready = [prev for prev in self._held if prev <= self.upto]
            if not ready:
                break
            for prev in sorted(ready):
                for batch in self._held.pop(prev):
                    if batch.hi > self.upto or batch.hi == batch.prev:
                        self._deliver(batch.entries)
                        self.upto = max(self.upto, batch.hi)
        if self._held:
            self._wait_for_gap()
        elif self._timer is not None and self._timer.active():
            self._timer.cancel()

    def _deliver(self, entries: list[Entry]) -> None:
        session = self.sessions.session
        with CORK:   # one send per connection for the batch (messenger.server.directwrite)
            for user_ids, frame in entries:
                for user_id in user_ids:
                    target = session(user_id)
                    if target is not None:
                        target.push_encoded(frame)

    def _wait_for_gap(self) -> None:
        if self._timer is not None and self._timer.active():
            return
        wait = GAP_WAIT if self.link_available() else 0.0
        self._timer = self.clock.callLater(wait, self._read_gap)

    def _read_gap(self) -> None:
        self._timer = None
        if self._held and self.upto is not None:
            self.read_up_to(min(self._held))

    def catch_up(self) -> defer.Deferred[Any] | None:
        """Read whatever was committed beyond ``upto`` (Redis was away: the batches of
        other nodes went unheard)."""
        if self.upto is None or self._reading:
            return None
        d = self.db.read(store_stream.max_id_txn)
        d.addCallback(lambda top: self.read_up_to(top) if top > (self.upto or 0) else None)
        d.addErrback(lambda f: None)
        return d

    def read_up_to(self, up_to: int) -> defer.Deferred[Any] | None:
        """Push the messages in (upto, up_to] from the database, then go on."""
        if self._reading or self.upto is None or up_to <= self.upto:
            return None
        self._reading = True
        self.gaps += 1
        self.log.info("Reading messages {after}..{up_to} from the database (their batch"
                      " announcement did not arrive)", after=self.upto + 1, up_to=up_to)
        return self._read_page(up_to)

    def _read_page(self, up_to: int) -> defer.Deferred[Any]:
        assert self.upto is not None
        d = self.db.read(store_stream.has_group_rows_txn, self.upto, up_to)

        def choose(groups: bool) -> Any:
            if groups:
                return self._read_per_user(up_to)
            return self._read_range(up_to)
        d.addCallback(choose)
        d.addErrback(self._read_failed, up_to)
        return d

    def _read_failed(self, failure: Any, up_to: int) -> None:
        self._reading = False
        self.log.warn("Could not read missed messages ({error}); trying again",
                      error=failure.getErrorMessage())
        self._timer = self.clock.callLater(RETRY_READ, self._retry, up_to)

    def _read_done(self, up_to: int) -> None:
        self.upto = up_to
        self._reading = False
        self._advance()

    @defer.inlineCallbacks
    def _read_per_user(self, up_to: int) -> Any:
        """Group messages in the gap: each local user's messages in it, read the way its
        sync reads them (group membership windows included), pushed in id order."""
        after = self.upto
        assert after is not None
        limiter = defer.DeferredSemaphore(4)
        users = list(self.sessions.user_ids())
        yield defer.gatherResults([limiter.run(self._read_user, user_id, after, up_to)
                                   for user_id in users], consumeErrors=True)
        self._read_done(up_to)

    @defer.inlineCallbacks
    def _read_user(self, user_id: int, after: int, up_to: int) -> Any:
        since = after
        while since < up_to:
            rows = yield self.db.read(store_messages.sync_txn, user_id, since, READ_PAGE)
            session = self.sessions.session(user_id)
            for row in rows:
                if row[0] > up_to:
                    return
                if session is not None:
                    session.push_encoded(frame_for(row))
                    self.read_from_db += 1
            if len(rows) < READ_PAGE:
                return
            since = rows[-1][0]

    def _read_range(self, up_to: int) -> defer.Deferred[Any]:
        assert self.upto is not None
        d = self.db.read(store_stream.range_txn, self.upto, up_to, READ_PAGE)

        def got(rows: list[store_stream.StreamRow]) -> Any:
            session = self.sessions.session
            for msg_id, created, sender, recipient_id, recipient, body, attachment in rows:
                target = session(recipient_id)
                if target is not None:
                    message = {"action": "msg", "msg_id": msg_id, "time": created,
                               "from": sender, "to": recipient, "message": body}
                    if attachment is not None:
                        message["attachment"] = jim.decode(attachment.encode("utf-8"))
                    target.push_encoded(jim.encode(message))
                    self.read_from_db += 1
            if len(rows) == READ_PAGE:
                self.upto = rows[-1][0]
                return self._read_range(up_to)
            self._read_done(up_to)
            return None
        return d.addCallback(got)

    def _retry(self, up_to: int) -> None:
        self._timer = None
        if self._held:
            up_to = max(up_to, min(self._held))
        self.read_up_to(up_to)


def frame_for(row: tuple[Any, ...]) -> bytes:
    """The ``msg`` push of a message read back by `sync_txn`: a direct message
    (id, created, from, to, body) or, with groups, (id, created, from, to or None,
    group or None, body, mentions, attachment or None)."""
    attachment = None
    if len(row) == 5:
        msg_id, created, sender, recipient, body = row
        group = mentions = None
    else:
        msg_id, created, sender, recipient, group, body, mentions = row[:7]
        attachment = row[-1] if len(row) > 7 else None
    if group is None:
        push = {"action": "msg", "msg_id": msg_id, "time": created, "from": sender,
                "to": recipient, "message": body}
    else:
        push = {"action": "msg", "msg_id": msg_id, "time": created, "from": sender,
                "group": group, "message": body,
                "mentions": mentions.split() if mentions else []}
    # reply_to, edited, deleted (store.replies.EXTRA, before the attachment) when set
    for key, value in zip(("reply_to", "edited", "deleted"), row[7:10], strict=False):
        if value is not None and len(row) > 10:
            push[key] = value
    if attachment is not None:
        push["attachment"] = jim.decode(attachment.encode("utf-8"))
    return jim.encode(push)


class ChainedGroupCommit(GroupCommit[Any, Any]):
    """A group commit whose batches know their place in the chain: the stream hears of
    each batch before its rows' callbacks (which push) and after them."""

    def __init__(self, db: Any, batch_txn: Any, stream: MessageStream,
                 on_batch: Any = None, window: float = 0.0, clock: Any = None) -> None:
        super().__init__(db, batch_txn, on_batch=on_batch, window=window, clock=clock)
        self.stream = stream

    def _committed(self, results: Any, items: list[Any], tokens: list[Any]) -> None:
        prev, hi, rows = results
        stream = self.stream
        with CORK:   # one send per connection for the batch (messenger.server.directwrite)
            stream.begin(prev, hi)
            try:
                super()._committed(rows, items, tokens)
            finally:
                stream.end()
