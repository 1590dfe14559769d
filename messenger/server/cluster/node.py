"""A node of a cluster: its bus, leases, message stream, router, presence and calls.

`ServerContext` builds one when ``--redis`` is set (the embedded default never imports
this package) and takes its router and presence in place of the single-node ones;
`MessengerServer` starts it before listening and stops it after the last connection.

What the node does when its link to Redis comes and goes (docs/SCALING.md, "Failure
modes"): while Redis is away every node goes on serving its own users (messages are
committed and acknowledged, pushed at once to users on the same node, and to users on
other nodes by reading the database, `MessageStream`), and logins wait (503: one session
per account cannot be promised without the leases). When Redis is back, the node sets
its leases again, tells the others who is online here and asks who is there, and reads
whatever its users missed; logins open again once every node has had a heartbeat's time
to do the same (`SETTLE`).
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, task
from twisted.logger import Logger

from messenger.server.cluster.blocks import ClusterBlocks
from messenger.server.cluster.bus import HEARTBEAT, Envelope, NameTaken, NodeBus
from messenger.server.cluster.calls import ClusterCalls
from messenger.server.cluster.leases import Leases
from messenger.server.cluster.presence import ClusterPresence
from messenger.server.cluster.redis import RedisLink, RedisUnavailable
from messenger.server.cluster.router import ClusterRouter
from messenger.server.cluster.settings import parse_host_port, parse_redis_url
from messenger.server.cluster.stream import MessageStream
from messenger.server.router import Router
from messenger.server.startup import StartupError
from messenger.wire.errors import BadRequest, MessengerError

SETTLE = 3 * HEARTBEAT      # after Redis is back, before logins open (> the 2 s retry)
POLL_WHILE_DOWN = 2.0       # seconds between reads of missed messages while Redis is away


def _ints(value: Any) -> list[int]:
    if type(value) is not list or not all(type(v) is int for v in value):
        raise ValueError("expected a list of user ids")
    return value


class ClusterNode:
    log = Logger()

    def __init__(self, ctx: Any, db: Any) -> None:
        settings = ctx.config.cluster
        address = parse_redis_url(settings.redis)
        self.ctx = ctx
        self.clock = ctx.clock
        self.address = address
        self.bus = NodeBus(lambda channels, receive: RedisLink(address, ctx.clock, channels,
                                                              receive),
                           address.db, settings.node_name, ctx.clock)
        self.router = ClusterRouter(ctx.clock, self)
        self.presence = ClusterPresence(self.router, ctx.clock, self.bus)
        self.leases = Leases(self.bus, ctx.clock, self.router.lease_lost)
        self.stream = MessageStream(db, ctx.clock, self.router, self.bus.name,
                                    self.bus.incarnation, self.bus.publish_batch,
                                    lambda: self.bus.link.available)
        self.relay_address = (parse_host_port(settings.relay_address)
                              if settings.relay_address else None)
        self.bus.on_batch = self.stream.received
        self.bus.on_node_gone.append(self.presence.node_gone)
        self.bus.link.on_up.append(self._link_up)
        self.bus.link.on_down.append(self._link_down)
        self.bus.handlers.update({
            "push": self._on_push, "push_all": self._on_push_all, "end": self._on_end,
            "probe": self._on_probe, "presence": self.presence.remote_change,
            "presence_all": self.presence.remote_list, "hello": self._on_hello,
            "account_deleted": self._on_account_deleted,
        })
        self.bus.rpc_handlers["account_changed"] = self._rpc_account_changed
        self._open_at: float | None = None
        self._poll: task.LoopingCall | None = None
        self._started = False

    @property
    def name(self) -> str:
        return self.bus.name

    def make_blocks(self, db: Any) -> ClusterBlocks:
        return ClusterBlocks(db, self.bus)

    def make_calls(self, table: Any, config: Any) -> ClusterCalls:
        calls = ClusterCalls(self.router, table, self.clock, config.call_ring_timeout,
                             config.public_host, self.bus, self.presence)
        calls.relay_address = self.relay_address
        return calls

    # -- life -----------------------------------------------------------------------------

    @defer.inlineCallbacks
    def start(self) -> Any:
        """Join the cluster: reach Redis (the start fails if it cannot), read where the
        message stream stands, announce this node."""
        try:
            yield self.bus.start()
        except RedisUnavailable as error:
            raise StartupError(f"--redis: {error}; start Redis or fix --redis") from None
        except NameTaken as error:
            raise StartupError(f"--node-name: {error}") from None
        yield self.stream.start()
        self.leases.start()
        self.ctx.calls.start()
        self._started = True
        self._link_up(first=True)
        self.log.info("Node {node} joined the cluster on {redis}", node=self.name,
                      redis=self.address.describe())

    @defer.inlineCallbacks
    def stop(self) -> Any:
        self._started = False
        self._stop_polling()
        self.ctx.calls.stop()
        self.stream.stop()
        yield self.leases.stop()
        yield self.bus.stop()

    def logins_open(self) -> bool:
        return (self.bus.link.available and self._open_at is not None
                and self.clock.seconds() >= self._open_at)

    def _link_up(self, first: bool = False) -> None:
        if not self._started:
            return
        self._stop_polling()
        self._open_at = self.clock.seconds() + (0.0 if first else SETTLE)
        self.bus.listened()
        self.bus.send("presence_all", l=self.presence.snapshot())
        self.bus.send("hello")
        if not first:
            self.leases.renew()
            self.stream.catch_up()
            self.ctx.blocks.load().addErrback(lambda f: None)   # changes missed meanwhile

    def _link_down(self) -> None:
        self._open_at = None
        if self._started and (self._poll is None or not self._poll.running):
            self._poll = task.LoopingCall(self.stream.catch_up)
            self._poll.clock = self.clock
            self._poll.start(POLL_WHILE_DOWN, now=False)

    def _stop_polling(self) -> None:
        if self._poll is not None and self._poll.running:
            self._poll.stop()
        self._poll = None

    # -- out ------------------------------------------------------------------------------

    def push_away(self, user_ids: list[int], payload: bytes) -> bool:
        """A push for users not held here: to every node (the holder delivers it)."""
        return self.bus.send("push", payload, u=user_ids)

    def ask_to_probe(self, node: str, user_id: int) -> None:
        self.bus.send("probe", to=node, u=user_id)

    def account_deleted(self, user_id: int, name: str, why: str) -> None:
        self.bus.send("account_deleted", u=user_id, a=name, w=why)

    @defer.inlineCallbacks
    def account_changed(self, user_id: int) -> Any:
        """messenger-admin changed an account whose session may be on another node: the
        node holding its lease applies it (``ServerContext.account_changed``)."""
        try:
            holder = yield self.leases.holder(user_id)
            if holder is None or holder == self.name:
                return "offline"
            result = yield self.bus.rpc(holder, "account_changed", {"u": user_id})
        except (RedisUnavailable, MessengerError) as error:
            # The control socket reports it; the node's 10 s account check still applies it.
            raise ValueError(f"the cluster could not be asked: {error}") from None
        return result

    def _rpc_account_changed(self, args: dict[str, Any]) -> Any:
        user_id = args["u"]
        if type(user_id) is not int:
            raise BadRequest("bad user id")
        return self.ctx.account_changed(user_id, here_only=True)

    # -- in -------------------------------------------------------------------------------

    def _on_push(self, envelope: Envelope) -> None:
        for user_id in _ints(envelope["u"]):
            session = self.router.session(user_id)
            if session is not None:
                session.push_encoded(envelope.payload)

    def _on_push_all(self, envelope: Envelope) -> None:
        except_id = envelope.get("x")
        if except_id is not None and type(except_id) is not int:
            raise ValueError("bad except id")
        self.router.push_all_local(envelope.payload, except_id)

    def _on_end(self, envelope: Envelope) -> None:
        user_id, why = envelope["u"], envelope["w"]
        if type(user_id) is not int or type(why) is not str:
            raise ValueError("bad end event")
        if self.router.session(user_id) is not None:
            self.log.info("Ending the session of user {user_id} on request of node {node}",
                          user_id=user_id, node=envelope["n"])
            Router.end_session(self.router, user_id, why[:500])

    def _on_probe(self, envelope: Envelope) -> None:
        user_id = envelope["u"]
        if type(user_id) is not int:
            raise ValueError("bad probe event")
        session = self.router.session(user_id)
        if session is not None and session.probe_id is None:
            session.probe(self.clock.seconds())

    def _on_hello(self, envelope: Envelope) -> None:
        self.bus.send("presence_all", to=envelope["n"], l=self.presence.snapshot())

    def _on_account_deleted(self, envelope: Envelope) -> None:
        user_id, name, why = envelope["u"], envelope["a"], envelope["w"]
        if type(user_id) is not int or type(name) is not str or type(why) is not str:
            raise ValueError("bad account_deleted event")
        self.ctx.forget_account(user_id, name, why[:500])
