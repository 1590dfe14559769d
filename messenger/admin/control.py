"""messenger-admin's side of the server's control socket (see messenger.server.control).

Blocking and small: connect to ``DATA_DIR/control.sock``, send one JSON line, read one
back. `ServerNotRunning` when nobody listens (the change then takes effect when the
server next starts, or within its 10 s sweep if it is starting right now).
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from messenger.server.control import short_path

TIMEOUT = 10.0
MAX_ANSWER = 256 * 1024 * 1024     # `online` on a server holding 50,000 sessions fits


class ServerNotRunning(Exception):
    """No server answers on the data dir's control socket."""


class ControlError(Exception):
    """The server answered with an error."""


def call(socket_path: Path, request: dict[str, Any], timeout: float = TIMEOUT) -> Any:
    """Send ``request``; return the server's ``result`` (raises on an error answer)."""
    address = short_path(socket_path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(address)
        except (FileNotFoundError, ConnectionRefusedError) as error:
            raise ServerNotRunning(str(error)) from None
        sock.sendall(json.dumps(request).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                raise ControlError("the server closed the control connection")
            data += chunk
            if len(data) > MAX_ANSWER:
                raise ControlError("the server's answer is too long")
    finally:
        sock.close()
    reply = json.loads(data)
    if not isinstance(reply, dict) or not reply.get("ok"):
        raise ControlError(str(reply.get("error") if isinstance(reply, dict) else reply))
    return reply.get("result")


def account_changed(socket_path: Path, user_id: int) -> str | None:
    """Tell the running server; its answer ("closed", "refreshed", "offline"), or None
    when no server runs on this data dir."""
    try:
        return call(socket_path, {"command": "account_changed", "user_id": user_id})
    except ServerNotRunning:
        return None


def account_deleted(socket_path: Path, user_id: int, name: str,
                    left_groups: list[tuple[int, str | None]]) -> str | None:
    """Tell the running server an account is gone, with the groups it left (each with
    its new owner, or None): ``"closed"`` (its session here was ended) or
    ``"forgotten"``; None when no server runs on this data dir."""
    try:
        return call(socket_path, {"command": "account_deleted", "user_id": user_id,
                                  "account_name": name,
                                  "groups": [list(pair) for pair in left_groups]})
    except ServerNotRunning:
        return None


def group_deleted(socket_path: Path, group_id: int, name: str,
                  member_ids: list[int]) -> int | None:
    """Tell the running server a group is gone, so that its members online hear it: how
    many were told on that node; None when no server runs on this data dir."""
    try:
        return call(socket_path, {"command": "group_deleted", "group_id": group_id,
                                  "name": name, "member_ids": member_ids})
    except ServerNotRunning:
        return None


def online(socket_path: Path) -> list[dict[str, Any]]:
    return call(socket_path, {"command": "online"})
