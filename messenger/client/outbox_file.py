"""The outbox on disk: messages written and not yet acknowledged survive the program.

``outbox.json`` in the config dir (mode 0600, like the saved logins) holds, per server
address and account, each unacknowledged message with its request id, recipient (or
group), text and the time it was written. The client core saves it whenever the outbox
changes (a message queued, acknowledged or refused) and reads it before its first
connection; after the next login of that account the saved messages go back into the
outbox and are sent with their original request ids, so the server stores each once
even when a copy had reached it before the program closed (docs/PROTOCOL.md, "Resending
safely").

Files are read and written off the reactor thread (``run_blocking``, a thread by
default) with `credentials.write_private_file` (temporary file, fsync, atomic rename).
Writes are coalesced: while one runs, later changes wait and the newest state is written
next, so a burst of messages costs one or two writes, and writes never overtake each
other. The file holds message bodies: it is as private as the account's token.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from messenger.client.credentials import tighten_permissions, write_private_file
from messenger.client.events import Observers
from messenger.client.outbox import OutgoingMessage

if TYPE_CHECKING:
    from messenger.client.sender import MessageSender

FILE_NAME = "outbox.json"
VERSION = 1

# A saved message: {"request_id", "to" or "group", "text", "created"}, and "reply_to"
# (the msg_id a reply quotes) when it is one.
Saved = dict[str, Any]


def read_outbox(path: Path) -> dict[str, dict[str, list[Saved]]]:
    """address -> lower-case account name -> saved messages (a blocking read: run it in
    a thread). An absent file is empty; a damaged one is set aside, never fatal."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    tighten_permissions(path, 0o600)
    try:
        data = json.loads(raw.decode("utf-8"))
        servers = data["servers"]
        return {str(address): {str(name): [_checked(item) for item in items]
                               for name, items in accounts.items()}
                for address, accounts in servers.items()}
    except (ValueError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
        path.replace(path.with_name(path.name + ".damaged"))
        Logger().warn("{path} is damaged; set it aside as {path}.damaged", path=str(path))
        return {}


def _checked(item: Any) -> Saved:
    request_id, text = item["request_id"], item["text"]
    to, group, created = item.get("to"), item.get("group"), item.get("created", 0.0)
    if not (isinstance(request_id, str) and len(request_id) == 32 and isinstance(text, str)
            and (isinstance(to, str) != (type(group) is int))
            and isinstance(created, (int, float))):
        raise ValueError("not a saved message")
    record = {"request_id": request_id, "to": to, "group": group, "text": text,
              "created": float(created)}
    reply_to = item.get("reply_to")
    if type(reply_to) is int and reply_to > 0:
        record["reply_to"] = reply_to
    return record


def saved(entry: OutgoingMessage) -> Saved:
    record = {"request_id": entry.request_id, "to": entry.to, "group": entry.group,
              "text": entry.text, "created": entry.created}
    if entry.reply_to is not None:
        record["reply_to"] = entry.reply_to
    return record


class OutboxFile:
    """The saved outboxes of every account on every server, kept in memory and written
    back off the reactor thread."""

    log = Logger()

    def __init__(self, path: Path, run_blocking: Callable[..., defer.Deferred]) -> None:
        self.path = path
        self._run = run_blocking
        self._servers: dict[str, dict[str, list[Saved]]] | None = None
        self._loading: defer.Deferred[None] | None = None
        self._writing = False
        self._dirty = False
        self._idle: list[defer.Deferred[None]] = []

    @property
    def loaded(self) -> bool:
        return self._servers is not None

    def load(self) -> defer.Deferred[None]:
        """Read the file (once; later calls wait for that read)."""
        if self._servers is not None:
            return defer.succeed(None)
        if self._loading is None:
            self._loading = self._run(read_outbox, self.path)
            self._loading.addCallbacks(self._loaded, self._load_failed)
        waiter: defer.Deferred[None] = defer.Deferred()
        self._loading.addBoth(lambda result: (waiter.callback(None), result)[1])
        return waiter

    def _loaded(self, servers: dict[str, dict[str, list[Saved]]]) -> None:
        self._servers = servers

    def _load_failed(self, failure: Failure) -> None:
        self.log.failure("Could not read the saved outbox {path}", failure,
                         path=str(self.path))
        self._servers = {}

    def take(self, address: str, account: str) -> list[Saved]:
        """The saved messages of ``account`` on ``address``, oldest first (they stay in
        the file until `save` replaces them)."""
        if self._servers is None:
            return []
        return list(self._servers.get(address, {}).get(account.lower(), []))

    def save(self, address: str, account: str, entries: list[Saved]) -> None:
        """Make ``entries`` (`saved` records) the saved outbox of ``account`` on
        ``address`` (written soon, off the reactor thread). Ignored until the file was
        read: it would lose what the file holds."""
        if self._servers is None:
            return
        accounts = self._servers.setdefault(address, {})
        if entries:
            accounts[account.lower()] = list(entries)
        elif accounts.pop(account.lower(), None) is None:
            return                          # nothing saved, nothing to save
        if not accounts:
            del self._servers[address]
        self._dirty = True
        if not self._writing:
            self._write()

    def written(self) -> defer.Deferred[None]:
        """Fires once everything saved so far is on disk."""
        if not self._writing and not self._dirty:
            return defer.succeed(None)
        waiter: defer.Deferred[None] = defer.Deferred()
        self._idle.append(waiter)
        return waiter

    def _write(self) -> None:
        assert self._servers is not None
        self._dirty = False
        self._writing = True
        data = json.dumps({"version": VERSION, "servers": self._servers},
                          ensure_ascii=False, indent=1).encode("utf-8")
        d = self._run(write_private_file, self.path, data)
        d.addErrback(self._write_failed)
        d.addCallback(self._wrote)

    def _write_failed(self, failure: Failure) -> None:
        self.log.failure("Could not save the outbox in {path}", failure, path=str(self.path))

    def _wrote(self, _: Any) -> None:
        self._writing = False
        if self._dirty:
            self._write()
            return
        waiters, self._idle = self._idle, []
        for waiter in waiters:
            waiter.callback(None)


class DiskOutbox:
    """The client core's outbox tied to its file: every change saved (``message_status``
    events), the saved messages of an account queued again after its first login in
    this program (what it queued before that login is saved beside them meanwhile)."""

    def __init__(self, file: OutboxFile, sender: MessageSender, observers: Observers,
                 address: str) -> None:
        self.file = file
        self._sender = sender
        self._observers = observers
        self._address = address
        self._restored: set[str] = set()
        self._owner: str | None = None
        observers.subscribe("message_status", self.changed)

    def load(self) -> defer.Deferred[None]:
        """Read the file (before the first connection), then save what was queued
        meanwhile."""
        d = self.file.load()
        d.addCallback(lambda _: self.changed(None))
        return d

    def written(self) -> defer.Deferred[None]:
        return self.file.written()

    def restore(self, name: str) -> None:
        """``name`` logged in: its saved messages go back into the outbox, with their
        request ids (once per program; not before the file was read)."""
        owner = name.lower()
        if owner in self._restored or not self.file.loaded:
            return
        self._restored.add(owner)
        outbox = self._sender.outbox
        queued = {entry.request_id for entry in outbox.pending()}
        for item in self.file.take(self._address, owner):
            if item["request_id"] not in queued:
                entry = outbox.add(item["to"], item["text"], item["request_id"],
                                   item["created"], item["group"])
                entry.reply_to = item.get("reply_to")
                self._observers.emit("message_status", entry)
        self.changed(None)

    def changed(self, _: OutgoingMessage | None) -> None:
        """Save the unacknowledged messages (coalesced, off the reactor thread); saved
        ones not yet restored stay saved."""
        owner = self._sender.owner or self._owner
        if owner is None or not self.file.loaded:
            return
        self._owner = owner
        items = [saved(entry) for entry in self._sender.outbox.pending()]
        if owner not in self._restored:
            ids = {item["request_id"] for item in items}
            items = [item for item in self.file.take(self._address, owner)
                     if item["request_id"] not in ids] + items
        self.file.save(self._address, owner, items)
