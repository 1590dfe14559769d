"""Calls between users on different nodes.

A call lives on the node of the user who dialled first (its *owner*): the state machine
of `CallService`, the ring timer, and the media, through the owner's relay, whose
address both users are told (``--relay-address``). Pushes to the other user go through
the cluster router like any push.

Redis keeps, per user in a call, ``messenger:DB:call:USER_ID`` = the owner's
``NODE|INCARNATION`` (set for both users in one Lua step only if neither is in a call
whose owner is alive: "busy" is the same seen from every node), renewed by the owner while
the call lasts, deleted when it ends. A user whose call lives elsewhere reaches it
through the owner: dialling back (to accept), hanging up, and going offline are sent to
the owner node (`NodeBus.rpc`), which answers as it would answer its own users. When
the owner dies, its reservations are free at once (its liveness key is gone) and the
clients end the call when its media stop.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, task
from twisted.logger import Logger

from messenger.server.calls import Call, CallService
from messenger.server.cluster.bus import Envelope, NodeBus
from messenger.server.cluster.redis import RedisUnavailable, Script
from messenger.wire.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    Gone,
    NotFound,
    ServiceUnavailable,
    TooManyRequests,
)

RESERVE_TTL = 15.0
RENEW_EVERY = 5.0

# KEYS: the two users' keys; ARGV: owner value, ttl, liveness key prefix.
RESERVE = Script("""
local function alive(value)
  local node, inc = string.match(value, '^([^|]*)|(.*)$')
  return node and redis.call('GET', ARGV[3] .. node) == inc
end
for i, key in ipairs(KEYS) do
  local cur = redis.call('GET', key)
  if cur and cur ~= ARGV[1] and alive(cur) then return i end
end
for _, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
end
return 0
""")

OWNER = Script("""
local cur = redis.call('GET', KEYS[1])
if not cur then return false end
local node, inc = string.match(cur, '^([^|]*)|(.*)$')
if node and redis.call('GET', ARGV[1] .. node) == inc then return node end
return false
""")

RELEASE = Script("""
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then redis.call('DEL', key) end
end
return 0
""")

RENEW = Script("""
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then redis.call('PEXPIRE', key, ARGV[2]) end
end
return 0
""")


def _unavailable(failure: Any) -> Any:
    if failure.check(RedisUnavailable):
        raise ServiceUnavailable("calls between nodes are unavailable right now (Redis);"
                                 " try again shortly", 5.0)
    return failure


class ClusterCalls(CallService):
    log = Logger()

    def __init__(self, router: Any, table: Any, clock: Any, ring_timeout: float,
                 public_host: str, bus: NodeBus, presence: Any) -> None:
        super().__init__(router, table, clock, ring_timeout, public_host)
        self.bus = bus
        self.presence = presence
        self._value = f"{bus.name}|{bus.incarnation}".encode()
        self._loop: task.LoopingCall | None = None
        bus.rpc_handlers["call_dial"] = self._remote_dial
        bus.rpc_handlers["call_hangup"] = self._remote_hangup
        bus.handlers["call_gone"] = self._remote_gone

    def start(self) -> None:
        self._loop = task.LoopingCall(self._renew)
        self._loop.clock = self._clock
        self._loop.start(RENEW_EVERY, now=False)

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def _key(self, user_id: int) -> bytes:
        return self.bus.prefix + b"call:" + str(user_id).encode()

    def reachable(self, user_id: int) -> bool:
        return self.presence.online_anywhere(user_id)

    # -- the user's actions ---------------------------------------------------------------

    def dial(self, session: Any, target_id: int, target_name: str,  # type: ignore[override]
             codecs: list[str]) -> Any:
        me = session.account
        if me.id in self._by_user:
            return super().dial(session, target_id, target_name, codecs)
        return self._dial(session, target_id, target_name, codecs)

    @defer.inlineCallbacks
    def _dial(self, session: Any, target_id: int, target_name: str,
              codecs: list[str]) -> Any:
        me = session.account
        owner = yield self._owner(me.id)
        if owner is not None and owner != self.bus.name:
            result = yield self.bus.rpc(owner, "call_dial",
                                        {"u": me.id, "t": target_id, "c": list(codecs)})
            return result
        if target_id == me.id:
            raise BadRequest("you cannot call yourself")
        if target_id not in session.contact_ids:
            raise Forbidden(f"'{target_name}' is not in your contacts; add them first")
        if not self.reachable(target_id):
            raise Gone(f"'{target_name}' is offline")
        for limiter, key, text in (
                (self.dial_limit, me.id, "you are calling too often; try again later"),
                (self.ring_limit, target_id, f"'{target_name}' was called too often just"
                                             " now; try again later")):
            allowed, wait = limiter.check(key, update=False)
            if not allowed:
                raise TooManyRequests(text, wait)
        busy = yield self.bus.link.run(
            RESERVE, [self._key(me.id), self._key(target_id)],
            [self._value, int(RESERVE_TTL * 1000), self.bus.prefix + b"alive:"]
        ).addErrback(_unavailable)
        if busy == 1:
            raise Conflict("you are already in a call; hang up first")
        if busy == 2:
            raise Conflict(f"'{target_name}' is busy in another call")
        if me.id in self._by_user:      # a call of ours started while Redis answered
            return super().dial(session, target_id, target_name, codecs)
        try:
            return super().dial(session, target_id, target_name, codecs)
        except Exception:
            self._release([u for u in (me.id, target_id) if u not in self._by_user])
            raise

    def hangup(self, session: Any, call_id: str | None,  # type: ignore[override]
               reason: str | None = None) -> Any:
        me = session.account
        if me.id in self._by_user:
            return super().hangup(session, call_id, reason)
        return self._hangup(me.id, call_id, reason)

    @defer.inlineCallbacks
    def _hangup(self, user_id: int, call_id: str | None, reason: str | None) -> Any:
        owner = yield self._owner(user_id)
        if owner is None or owner == self.bus.name:
            raise NotFound("no such call")
        result = yield self.bus.rpc(owner, "call_hangup",
                                    {"u": user_id, "call": call_id, "r": reason})
        return result

    def user_gone(self, user_id: int) -> None:
        if user_id in self._by_user:
            super().user_gone(user_id)
            return
        d = self._owner(user_id)

        def tell(owner: str | None) -> None:
            if owner is not None and owner != self.bus.name:
                self.bus.send("call_gone", to=owner, u=user_id)
        d.addCallbacks(tell, lambda f: None)

    # -- the same, asked by another node --------------------------------------------------

    def _remote_dial(self, args: dict[str, Any]) -> dict[str, Any]:
        user_id, target_id, codecs = args["u"], args["t"], args["c"]
        if type(user_id) is not int or type(target_id) is not int or type(codecs) is not list:
            raise BadRequest("bad call request")
        call = self._by_user.get(user_id)
        if call is None:
            raise NotFound("no such call")
        return self.dial_back(call, user_id, target_id,
                              [c for c in codecs if type(c) is str][:8], None)

    def _remote_hangup(self, args: dict[str, Any]) -> dict[str, Any]:
        user_id, call_id, reason = args["u"], args.get("call"), args.get("r")
        if type(user_id) is not int or not isinstance(call_id, (str, type(None))) \
                or not isinstance(reason, (str, type(None))):
            raise BadRequest("bad call request")
        return self.hangup_user(user_id, call_id, reason)

    def _remote_gone(self, envelope: Envelope) -> None:
        user_id = envelope["u"]
        if type(user_id) is int and user_id in self._by_user:
            super().user_gone(user_id)

    # -- reservations ---------------------------------------------------------------------

    def _owner(self, user_id: int) -> defer.Deferred[str | None]:
        d = self.bus.link.run(OWNER, [self._key(user_id)], [self.bus.prefix + b"alive:"])
        d.addCallback(lambda node: node.decode() if isinstance(node, bytes) else None)
        return d.addErrback(_unavailable)

    def ended(self, call: Call) -> None:
        self._release([party.user_id for party in call.parties])

    def _release(self, user_ids: list[int]) -> None:
        if self.bus.link.available:
            self.bus.link.run(RELEASE, [self._key(u) for u in user_ids],
                              [self._value]).addErrback(lambda f: None)

    def _renew(self) -> None:
        if self.bus.link.available and self._by_user:
            self.bus.link.run(RENEW, [self._key(u) for u in self._by_user],
                              [self._value, int(RESERVE_TTL * 1000)]).addErrback(
                                  lambda f: None)
