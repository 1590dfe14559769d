"""The local control channel: ``messenger-admin`` tells the running server what changed.

A UNIX socket in the data dir (``control.sock``, mode 0600 in a 0700 directory: only the
server's own user, and root, can connect). One JSON object per line each way:

    -> {"command": "account_changed", "user_id": 7}
    <- {"ok": true, "result": "closed"}          (or "refreshed", "offline")
    -> {"command": "account_deleted", "user_id": 7, "account_name": "bob",
        "groups": [[3, "carol"], [5, null]]}       (its groups left; new owner or null)
    <- {"ok": true, "result": "closed"}          (or "forgotten")
    -> {"command": "group_deleted", "group_id": 3, "name": "Maths 5b",
        "member_ids": [2, 7, 9]}
    <- {"ok": true, "result": 2}                 (members told on this node)
    -> {"command": "online"}
    <- {"ok": true, "result": [{"account_name": "bob", "address": "127.0.0.1",
                                "since": 1767225600.5, "status": "online"}, ...]}
    <- {"ok": false, "error": "unknown command 'x'"}

The two ``..._deleted`` commands follow a deletion ``messenger-admin`` has committed: the
server forgets the account everywhere, or tells the group's members; both refuse while
the account or group still exists.

The socket code only parses and answers; what a command does is one method of the
server context (`ServerContext.account_changed`, `ServerContext.online`), which a cluster
will also reach over its message bus. Requests are validated like any network input.

At start, a socket file left by a server that died is removed; one that answers means
another server runs on this data dir, and the start stops with a clear line.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver

MAX_LINE = 64 * 1024        # a group_deleted request names up to several thousand members
MAX_MEMBER_IDS = 10_000
MAX_GROUPS = 10_000
MAX_NAME = 256
SUN_PATH_MAX = 107      # bytes of a UNIX socket path (108 with the terminating NUL)


class ControlSocketError(Exception):
    """The control socket cannot be used (its path is too long)."""


class AnotherServer(ControlSocketError):
    """Another server answers on this data dir's control socket."""


def short_path(path: Path) -> str:
    """A spelling of ``path`` that fits a socket address (107 bytes).

    The absolute path when it fits; else one through an open descriptor of its
    directory (``/proc/self/fd/N/control.sock``, Linux), which stays open for the life
    of the process: a data dir deep in a test tree or a long mount point still works.
    """
    absolute = path.resolve()
    if len(os.fsencode(str(absolute))) <= SUN_PATH_MAX:
        return str(absolute)
    fd = os.open(absolute.parent, os.O_RDONLY | os.O_DIRECTORY)
    return f"/proc/self/fd/{fd}/{absolute.name}"


def prepare(path: Path) -> str:
    """The address to listen on, after removing a stale socket file; raises
    `ControlSocketError` when another server answers on it or the path is too long."""
    address = short_path(path)
    if len(os.fsencode(address)) > SUN_PATH_MAX:  # a file name of its own that long
        raise ControlSocketError(f"the control socket path {path} is longer than"
                                 f" {SUN_PATH_MAX} bytes; use a shorter --data-dir")
    if os.path.lexists(address):
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(address)
        except OSError:
            os.unlink(address)          # left behind by a server that died
        else:
            raise AnotherServer(f"another server is running on this data dir (its"
                                     f" control socket {path} answers); stop it first")
        finally:
            probe.close()
    return address


class ControlProtocol(LineOnlyReceiver):
    delimiter = b"\n"
    MAX_LENGTH = MAX_LINE
    log = Logger()

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx

    def lineReceived(self, line: bytes) -> None:  # noqa: N802
        try:
            request = json.loads(line)
            if not isinstance(request, dict) or not isinstance(request.get("command"), str):
                raise ValueError("a request is an object with a 'command'")
            d = defer.maybeDeferred(self._run, request)
        except ValueError as error:
            self._answer({"ok": False, "error": str(error)})
            return
        d.addCallbacks(lambda result: self._answer({"ok": True, "result": result}),
                       self._failed)

    def _run(self, request: dict[str, Any]) -> Any:
        command = request["command"]
        if command == "account_changed":
            return self.ctx.account_changed(_positive(request, "user_id"))
        if command == "account_deleted":
            return self.ctx.operator_deleted_account(_positive(request, "user_id"),
                                                     _name(request, "account_name"),
                                                     _left_groups(request))
        if command == "group_deleted":
            member_ids = request.get("member_ids")
            if not isinstance(member_ids, list) or len(member_ids) > MAX_MEMBER_IDS or \
                    not all(type(i) is int and i > 0 for i in member_ids):
                raise ValueError(f"'member_ids' must be a list of at most {MAX_MEMBER_IDS}"
                                 " positive integers")
            return self.ctx.operator_deleted_group(_positive(request, "group_id"),
                                                   _name(request, "name"), member_ids)
        if command == "online":
            return self.ctx.online()
        raise ValueError(f"unknown command {command[:40]!r}")

    def _failed(self, failure: Any) -> None:
        if failure.check(ValueError):
            self._answer({"ok": False, "error": str(failure.value)})
            return
        self.log.failure("Control command failed", failure)
        self._answer({"ok": False, "error": "internal error (see the server log)"})

    def _answer(self, reply: dict[str, Any]) -> None:
        if self.transport is not None and self.connected:
            self.sendLine(json.dumps(reply).encode())

    def lineLengthExceeded(self, line: bytes) -> None:  # noqa: N802
        self._answer({"ok": False, "error": "request too long"})
        self.transport.loseConnection()


def _positive(request: dict[str, Any], key: str) -> int:
    value = request.get(key)
    if type(value) is not int or value < 1:
        raise ValueError(f"{key!r} must be a positive integer")
    return value


def _left_groups(request: dict[str, Any]) -> list[tuple[int, str | None]]:
    """``groups`` of account_deleted: ``[[group_id, new owner's name or null], ...]``."""
    items = request.get("groups", [])
    if not isinstance(items, list) or len(items) > MAX_GROUPS:
        raise ValueError(f"'groups' must be a list of at most {MAX_GROUPS} pairs")
    left: list[tuple[int, str | None]] = []
    for item in items:
        if not (isinstance(item, list) and len(item) == 2 and type(item[0]) is int
                and item[0] > 0 and (item[1] is None or (isinstance(item[1], str)
                                                         and 0 < len(item[1]) <= MAX_NAME))):
            raise ValueError("each of 'groups' must be [group_id, owner's name or null]")
        left.append((item[0], item[1]))
    return left


def _name(request: dict[str, Any], key: str) -> str:
    value = request.get(key)
    if not isinstance(value, str) or not 0 < len(value) <= MAX_NAME:
        raise ValueError(f"{key!r} must be a string of 1 to {MAX_NAME} characters")
    return value


class ControlFactory(Factory):
    noisy = False

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx

    def buildProtocol(self, addr: Any) -> ControlProtocol:  # noqa: N802
        protocol = ControlProtocol(self.ctx)
        protocol.factory = self
        return protocol


def listen(reactor: Any, path: Path, ctx: Any) -> Any:
    """Listen on the control socket ``path`` (mode 0600); returns the port."""
    address = prepare(path)
    return reactor.listenUNIX(address, ControlFactory(ctx), mode=0o600)
