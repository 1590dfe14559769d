"""A tiny stand-in for the Messenger server that can be told to misdeliver.

It speaks the real protocol as far as messenger-bench needs it: the wire layer's
`ServerHandshake`, then sealed JIM frames; ``register``/``authenticate`` log an account
in, ``msg`` is pushed to the recipient and acknowledged with a 200. With ``fault`` set it
breaks delivery on purpose, once, at the ``at``-th message overall:

* ``"duplicate"``: that message is pushed twice;
* ``"drop"``: that message is acknowledged but never pushed;
* ``"reorder"``: that message is held back and pushed after the next one to the same
  recipient.

So a test can prove that the generator's exactly-once and in-order check catches each.
"""

from __future__ import annotations

import time
from typing import Any

from twisted.internet.protocol import ServerFactory
from twisted.protocols.basic import Int32StringReceiver

from messenger.wire import jim
from messenger.wire.handshake import HandshakeError, ServerHandshake
from tests.support.keys import rsa_key


class FakeServerProtocol(Int32StringReceiver):
    MAX_LENGTH = 1 << 20

    def __init__(self, factory: FakeServerFactory) -> None:
        self.factory = factory
        self.handshake: ServerHandshake | None = ServerHandshake(
            factory.secret, rsa_key("server", 2048))
        self.channel: Any = None
        self.user: str | None = None

    def connectionMade(self) -> None:
        assert self.handshake is not None
        self.sendString(self.handshake.start())

    def connectionLost(self, reason: Any = None) -> None:
        if self.user is not None and self.factory.sessions.get(self.user) is self:
            del self.factory.sessions[self.user]

    def send(self, message: dict[str, Any]) -> None:
        self.sendString(self.channel.seal(jim.encode(message)))

    def stringReceived(self, data: bytes) -> None:
        if self.channel is None:
            assert self.handshake is not None
            try:
                reply, established = self.handshake.receive(data)
            except HandshakeError as error:
                if error.reply is not None:
                    self.sendString(error.reply)
                self.transport.loseConnection()
                return
            self.sendString(reply)
            if established is not None:
                self.channel = established.channel
                self.handshake = None
            return
        request = jim.decode(self.channel.open(data))
        action = request.get("action")
        if action in ("register", "authenticate"):
            self.user = request["user"]["account_name"]
            self.factory.sessions[self.user] = self
            self.send({"response": 201 if action == "register" else 200,
                       "id": request["id"], "time": time.time()})
        elif action == "msg":
            self.factory.deliver(self, request)
        else:
            self.send({"response": 400, "id": request.get("id"), "time": time.time(),
                       "error": f"the fake server does not know '{action}'"})


class FakeServerFactory(ServerFactory):
    noisy = False

    def __init__(self, secret: bytes, fault: str | None = None, at: int = 30) -> None:
        self.secret = secret
        self.fault = fault
        self.at = at
        self.count = 0
        self.sessions: dict[str, FakeServerProtocol] = {}
        self.held: dict[str, dict[str, Any]] = {}

    def buildProtocol(self, addr: Any) -> FakeServerProtocol:
        return FakeServerProtocol(self)

    def deliver(self, sender: FakeServerProtocol, request: dict[str, Any]) -> None:
        self.count += 1
        target = self.sessions[request["to"]]
        push = {"action": "msg", "msg_id": self.count, "time": time.time(),
                "from": sender.user, "to": request["to"], "message": request["message"]}
        fault = self.fault if self.count == self.at else None
        if fault == "reorder":
            self.held[request["to"]] = push
        elif fault != "drop":
            target.send(push)
            if fault == "duplicate":
                target.send(push)
            held = self.held.pop(request["to"], None)
            if held is not None:
                target.send(held)
        sender.send({"response": 200, "msg_id": self.count, "time": push["time"],
                     "id": request["id"]})
