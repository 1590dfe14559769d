"""The node bus: events between the nodes of a cluster, over Redis pub/sub.

Three kinds of channel, each named after the Redis database of the URL (so that one
Redis can carry several clusters, one per database number):

* ``messenger:DB:batches``: every committed batch of messages, from every node, in the
  order of the message ids (`messenger.server.cluster.stream`);
* ``messenger:DB:events``: what every node must hear: heartbeats, presence, pushes to
  users held elsewhere, broadcasts, the end of a session by an administrator;
* ``messenger:DB:node:NAME``: requests to one node and the answers to its own requests
  (calls whose state lives on another node).

A message is one JSON header line, then raw bytes (a push frame goes through unparsed).
Every node hears every event and acts on what concerns its own sessions: no node needs
to know where a user is, and a user who logs in on a node hears every event published
after that login, so nothing slips between "where is X" and "X moved". Messages from
Redis are validated like any network input: a bad one is counted and dropped.

Nodes know of each other by their heartbeats (`HEARTBEAT` seconds apart); a node not
heard from for `NODE_TIMEOUT` seconds is gone (its users go offline in this node's
presence). A node also keeps ``messenger:DB:node:NAME`` set to its incarnation (a random
id per start) for `NODE_TIMEOUT` seconds: a lease held by a node whose key is gone may be
taken over at once (`messenger.server.cluster.leases`).
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer, task
from twisted.logger import Logger

from messenger.server.cluster.redis import RedisLink, RedisUnavailable
from messenger.wire.errors import MessengerError, ServiceUnavailable

HEARTBEAT = 1.0
NODE_TIMEOUT = 5.0
RPC_TIMEOUT = 5.0


class NameTaken(Exception):
    """A live node of the cluster already has this node's name."""


def prefix_for(db: int) -> bytes:
    return f"messenger:{db}:".encode()


@dataclass
class Peer:
    incarnation: str
    last_seen: float


class Envelope:
    """One decoded bus message: its header fields and its raw payload."""

    __slots__ = ("header", "payload")

    def __init__(self, header: dict[str, Any], payload: bytes) -> None:
        self.header = header
        self.payload = payload

    def __getitem__(self, key: str) -> Any:
        return self.header[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.header.get(key, default)


def encode(header: dict[str, Any], payload: bytes = b"") -> bytes:
    return json.dumps(header, separators=(",", ":")).encode() + b"\n" + payload


def decode(data: bytes) -> Envelope | None:
    head, _, payload = data.partition(b"\n")
    try:
        header = json.loads(head)
    except ValueError:
        return None
    if (type(header) is not dict or type(header.get("k")) is not str
            or type(header.get("n")) is not str or type(header.get("i")) is not str):
        return None
    return Envelope(header, payload)


class NodeBus:
    log = Logger()

    def __init__(self, link_factory: Callable[..., RedisLink], db: int, name: str,
                 clock: Any) -> None:
        self.name = name
        self.incarnation = os.urandom(8).hex()
        self.clock = clock
        self.prefix = prefix_for(db)
        self.events = self.prefix + b"events"
        self.batches = self.prefix + b"batches"
        self.inbox = self.node_channel(name)
        self.link = link_factory([self.events, self.batches, self.inbox], self._received)
        self.link.client_name = self.client_name(name, self.incarnation)
        self.handlers: dict[str, Callable[[Envelope], None]] = {}
        self.rpc_handlers: dict[str, Callable[[dict[str, Any]], Any]] = {}
        self.on_batch: Callable[[bytes], None] = lambda data: None
        self.on_node_gone: list[Callable[[str, str], None]] = []
        self.on_peer_joined: list[Callable[[str], None]] = []
        self.peers: dict[str, Peer] = {}
        self.bad = 0
        self._calls: dict[int, tuple[defer.Deferred[Any], Any]] = {}
        self._call_ids = itertools.count(1)
        self._beat: task.LoopingCall | None = None

    def client_name(self, node: str, incarnation: str) -> str:
        """The name of a node's command connection to Redis (``CLIENT SETNAME``)."""
        return f"m-{self.prefix.decode().split(':')[1]}-{node}-{incarnation}"

    def node_channel(self, name: str) -> bytes:
        return self.prefix + b"node:" + name.encode()

    def node_key(self, name: str) -> bytes:
        return self.prefix + b"alive:" + name.encode()

    # -- life -----------------------------------------------------------------------------

    @defer.inlineCallbacks
    def start(self) -> Any:
        yield self.link.start()
        holder = yield self.link.command("GET", self.node_key(self.name))
        if holder is not None:
            raise NameTaken(f"another node named {self.name!r} is running in this cluster"
                            " (each node needs a name of its own)")
        yield self.heartbeat()
        self._beat = task.LoopingCall(self.heartbeat)
        self._beat.clock = self.clock
        self._beat.start(HEARTBEAT, now=False)

    def stop(self) -> Any:
        if self._beat is not None and self._beat.running:
            self._beat.stop()
        for d, timer in list(self._calls.values()):
            if timer.active():
                timer.cancel()
            if not d.called:
                d.errback(ServiceUnavailable("this node is stopping"))
        self._calls.clear()
        d = self.link.command("DEL", self.node_key(self.name)) if self.link.available \
            else defer.succeed(None)
        self.send("bye")
        d.addErrback(lambda f: None)
        d.addCallback(lambda _: self.link.stop())
        return d

    def heartbeat(self) -> Any:
        """Say this node is alive (its key, and an event), and notice peers gone silent."""
        self._expire_peers()
        if not self.link.available:
            return None
        self.send("hb")
        d = self.link.command("SET", self.node_key(self.name), self.incarnation, "PX",
                              int(NODE_TIMEOUT * 1000))
        return d.addErrback(lambda f: None)

    def _expire_peers(self) -> None:
        if not self.link.available:
            return      # we cannot hear anybody: that says nothing about them
        now = self.clock.seconds()
        for name, peer in list(self.peers.items()):
            if now - peer.last_seen > NODE_TIMEOUT:
                self.log.warn("Node {node} has not been heard of for {seconds} s: its users"
                              " are offline", node=name, seconds=NODE_TIMEOUT)
                self._gone(name, peer.incarnation)

    def _gone(self, name: str, incarnation: str) -> None:
        peer = self.peers.get(name)
        if peer is not None and peer.incarnation == incarnation:
            del self.peers[name]
        for observer in list(self.on_node_gone):
            observer(name, incarnation)

    def listened(self) -> None:
        """The link came back: everyone's silence so far proves nothing; start afresh."""
        now = self.clock.seconds()
        for peer in self.peers.values():
            peer.last_seen = now

    # -- sending --------------------------------------------------------------------------

    def send(self, kind: str, payload: bytes = b"", to: str | None = None,
             **fields: Any) -> bool:
        """Publish an event to every node (or to one node's channel)."""
        header = {"k": kind, "n": self.name, "i": self.incarnation, **fields}
        channel = self.node_channel(to) if to is not None else self.events
        return self.link.publish(channel, encode(header, payload))

    def publish_batch(self, data: bytes) -> bool:
        return self.link.publish(self.batches, data)

    def rpc(self, node: str, method: str, args: dict[str, Any],
            timeout: float = RPC_TIMEOUT) -> defer.Deferred[Any]:
        """Ask ``node`` to run ``method``; fires with its result or its MessengerError."""
        if not self.link.available:
            return defer.fail(ServiceUnavailable("the cluster's message bus is unavailable;"
                                                 " try again shortly", 5.0))
        call_id = next(self._call_ids)
        d: defer.Deferred[Any] = defer.Deferred()
        timer = self.clock.callLater(timeout, self._rpc_timeout, call_id)
        self._calls[call_id] = (d, timer)
        self.send("rpc", to=node, m=method, c=call_id, a=args)
        return d

    def _rpc_timeout(self, call_id: int) -> None:
        entry = self._calls.pop(call_id, None)
        if entry is not None and not entry[0].called:
            entry[0].errback(ServiceUnavailable("another node did not answer in time; try"
                                                " again", 2.0))

    # -- receiving ------------------------------------------------------------------------

    def _received(self, channel: bytes, data: bytes) -> None:
        if channel == self.batches:
            self.on_batch(data)
            return
        envelope = decode(data)
        if envelope is None:
            self.bad += 1
            return
        node, incarnation = envelope["n"], envelope["i"]
        if node == self.name:
            if incarnation != self.incarnation:
                self.bad += 1   # another process with our name
            return
        self._heard(node, incarnation)
        kind = envelope["k"]
        if kind == "rpc":
            self._serve(envelope)
        elif kind == "rpc_reply":
            self._answered(envelope)
        elif kind == "bye":
            self._gone(node, incarnation)
        else:
            handler = self.handlers.get(kind)
            if handler is not None:
                try:
                    handler(envelope)
                except (KeyError, TypeError, ValueError):
                    self.bad += 1
                    self.log.warn("Dropped a malformed {kind} event from node {node}",
                                  kind=kind, node=node)

    def _heard(self, node: str, incarnation: str) -> None:
        now = self.clock.seconds()
        peer = self.peers.get(node)
        if peer is None or peer.incarnation != incarnation:
            if peer is not None:
                self._gone(node, peer.incarnation)      # it restarted
            self.peers[node] = Peer(incarnation, now)
            self.log.info("Node {node} joined the cluster", node=node)
            for observer in list(self.on_peer_joined):
                observer(node)
        else:
            peer.last_seen = now

    def _serve(self, envelope: Envelope) -> None:
        method, call_id, args = envelope.get("m"), envelope.get("c"), envelope.get("a")
        if type(call_id) is not int or type(args) is not dict or type(method) is not str:
            self.bad += 1
            return
        handler = self.rpc_handlers.get(method)
        if handler is None:
            d = defer.fail(MessengerError(f"unknown cluster request {method[:40]!r}"))
        else:
            d = defer.maybeDeferred(handler, args)

        def reply(result: Any) -> None:
            self.send("rpc_reply", to=envelope["n"], c=call_id, r=result)

        def failed(failure: Any) -> None:
            error = failure.value
            if not isinstance(error, MessengerError):
                self.log.failure("Cluster request {method} failed", failure, method=method)
                error = MessengerError("server error")
            self.send("rpc_reply", to=envelope["n"], c=call_id,
                      e=[error.code, error.message, error.extra])
        d.addCallbacks(reply, failed)

    def _answered(self, envelope: Envelope) -> None:
        entry = self._calls.pop(envelope.get("c"), None)  # type: ignore[arg-type]
        if entry is None:
            return
        d, timer = entry
        if timer.active():
            timer.cancel()
        error = envelope.get("e")
        if type(error) is list and len(error) == 3 and type(error[0]) is int:
            extra = error[2] if type(error[2]) is dict else {}
            d.errback(MessengerError(str(error[1]), error[0], **extra))
        else:
            d.callback(envelope.get("r"))


def unavailable(error: BaseException) -> bool:
    return isinstance(error, RedisUnavailable)
