"""`CoreTestCase`: a `MessengerClient` on the scripted network of `tests.client.fakes`,
with a task.Clock, and helpers to bring it online."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from twisted.internet import defer, task
from twisted.trial import unittest

from messenger.client.core import MessengerClient
from tests.client.fakes import FakeNetwork, FakeProtocol
from tests.support.keys import rsa_key

SECRET = b"secret"
ALICE = {"account_name": "alice", "email": "alice@example.org", "admin": False,
         "premium": False}


def run_now(fn: Any, *args: Any) -> defer.Deferred:
    return defer.maybeDeferred(fn, *args)


class CoreTestCase(unittest.TestCase):
    """A client on a fake network; helpers to bring it online."""

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.net = FakeNetwork(self.clock)
        self.config_dir = Path(self.mktemp()) / "messenger"
        self.client = self.make_client()
        self.states: list[str] = []
        self.client.subscribe("state", lambda state: self.states.append(state.name))

    def make_client(self, **kwargs: Any) -> MessengerClient:
        delays = [1.0, 2.0, 4.0, 8.0]
        options = dict(config_dir=self.config_dir, reactor=self.clock, connect=self.net.connect,
                       run_blocking=run_now, client_key=rsa_key("client", 2048),
                       backoff=lambda n: delays[min(n, 3)], dead_after=90.0,
                       cursor_save_delay=1.0)
        options.update(kwargs)
        return MessengerClient("chat.example.org", 7777, SECRET, **options)

    def sessions_file(self) -> dict[str, Any]:
        return json.loads((self.config_dir / "sessions.json").read_text())

    def saved_account(self, name: str = "alice") -> dict[str, Any]:
        return self.sessions_file()["servers"]["chat.example.org:7777"]["accounts"][name]

    def come_online(self, login_action: str = "authenticate", token: str | None = "tok-1",
                    sync: list[dict[str, Any]] | None = None) -> FakeProtocol:
        """Accept the pending attempt and walk it through handshake, login and sync."""
        connection = self.net.accept()
        connection.establish()
        login = connection.take(login_action)
        reply: dict[str, Any] = {"response": 200, "user": dict(ALICE)}
        if token is not None and login_action != "resume":
            reply.update(token=token, token_expires=10**9)
        connection.answer(login, **reply)
        connection.answer(connection.take("sync"), response=202, alert=sync or [],
                          more=False)
        return connection

    def logged_in(self, **kwargs: Any) -> FakeProtocol:
        d = self.client.login("alice", "correct horse", **kwargs)
        connection = self.come_online()
        self.successResultOf(d)
        return connection

    def tearDown(self) -> None:
        self.client.stop()


def message(msg_id: int, text: str | None = None) -> dict[str, Any]:
    return {"action": "msg", "msg_id": msg_id, "time": float(msg_id), "from": "bob",
            "to": "alice", "message": text or f"m{msg_id}"}
