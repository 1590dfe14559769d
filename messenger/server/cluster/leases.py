"""One live session per account across the cluster: a lease in Redis per logged-in user.

``messenger:DB:lease:USER_ID`` holds ``NODE|INCARNATION|SERIAL`` of the session that owns
the account, set only if absent (one Lua script, so check and set are one step) with an
expiry of `LEASE_TTL` seconds, renewed every `RENEW_EVERY` seconds while the session
lives and deleted (only if still ours) when it ends. So:

* a second login anywhere finds the lease and gets the same 409 "already connected" as
  on one node;
* the leases of a node that dies expire within `LEASE_TTL` (15 s); sooner in practice:
  a lease whose node's liveness key (`NodeBus.node_key`, 5 s) is gone, or names another
  incarnation (the node restarted), is taken over at once, and so is one whose node's
  named connection Redis no longer has (``CLIENT LIST``: a killed node's sockets close at
  once, its liveness key lives on for up to 5 s);
* after Redis comes back (restarted and empty, or a network split healed) each node
  sets its leases again; one found taken by another session meanwhile ends the local
  session (`on_lost`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, task
from twisted.logger import Logger

from messenger.server.cluster.bus import NodeBus
from messenger.server.cluster.redis import Script

LEASE_TTL = 15.0
RENEW_EVERY = 5.0
CHUNK = 500

ACQUIRE = Script("""
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then
  local node, inc = string.match(cur, '^([^|]*)|([^|]*)|')
  if node and redis.call('GET', ARGV[3] .. node) == inc then
    return cur
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
""")

RENEW = Script("""
local ttl = ARGV[#KEYS + 1]
local lost = {}
for i, key in ipairs(KEYS) do
  local cur = redis.call('GET', key)
  if cur == ARGV[i] then
    redis.call('PEXPIRE', key, ttl)
  elseif not cur then
    redis.call('SET', key, ARGV[i], 'PX', ttl)
  else
    lost[#lost + 1] = i
  end
end
return lost
""")

TAKE_OVER = Script("""
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
""")

RELEASE = Script("""
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
""")


class Leases:
    log = Logger()

    def __init__(self, bus: NodeBus, clock: Any, on_lost: Callable[[int], None]) -> None:
        self.bus = bus
        self.clock = clock
        self.on_lost = on_lost
        self.mine: dict[int, bytes] = {}
        self._serials = itertools.count(1)
        self._loop: task.LoopingCall | None = None

    def key(self, user_id: int) -> bytes:
        return self.bus.prefix + b"lease:" + str(user_id).encode()

    def start(self) -> None:
        self._loop = task.LoopingCall(self.renew)
        self._loop.clock = self.clock
        self._loop.start(RENEW_EVERY, now=False)

    def stop(self) -> defer.Deferred[Any]:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        mine, self.mine = self.mine, {}
        if not self.bus.link.available or not mine:
            return defer.succeed(None)
        return defer.gatherResults([self._release(user_id, value)
                                    for user_id, value in mine.items()], consumeErrors=True)

    def acquire(self, user_id: int) -> defer.Deferred[str | None]:
        """Take the account's lease: fires with None when it is ours, or the name of the
        node that holds it; fails with RedisUnavailable when Redis cannot be asked."""
        value = f"{self.bus.name}|{self.bus.incarnation}|{next(self._serials)}".encode()
        d = self.bus.link.run(ACQUIRE, [self.key(user_id)],
                              [value, int(LEASE_TTL * 1000), self.bus.prefix + b"alive:"])

        def done(result: Any) -> Any:
            if result == 1:
                self.mine[user_id] = value
                return None
            holder = result if isinstance(result, bytes) else b"?|?|"
            return self._unless_gone(user_id, holder, value)
        return d.addCallback(done)

    def _unless_gone(self, user_id: int, holder: bytes, value: bytes) -> Any:
        """The lease's node still has its liveness key; but if Redis no longer has its
        connection (a node killed a moment ago: its key lives on for up to 5 s), take the
        lease over now. Fires with None (ours now) or the holder's node name."""
        node, incarnation = (part.decode("utf-8", "replace")
                             for part in holder.split(b"|")[:2])
        if node == self.bus.name:
            return defer.succeed(node)      # another session of this node
        d = self.bus.link.command("CLIENT", "LIST")

        def listed(clients: Any) -> Any:
            name = f" name={self.bus.client_name(node, incarnation)} ".encode()
            if isinstance(clients, bytes) and name not in clients.replace(b"\n", b" \n"):
                self.log.info("Node {node} holds the lease of user {user_id} but is not"
                              " connected to Redis: taking it over", node=node,
                              user_id=user_id)
                return self.bus.link.run(TAKE_OVER, [self.key(user_id)],
                                         [holder, value, int(LEASE_TTL * 1000)]
                                         ).addCallback(taken)
            return node

        def taken(result: Any) -> str | None:
            if result == 1:
                self.mine[user_id] = value
                return None
            return node
        return d.addCallbacks(listed, lambda f: node)

    def holder(self, user_id: int) -> defer.Deferred[str | None]:
        """The name of the node whose session holds the account, or None."""
        d = self.bus.link.command("GET", self.key(user_id))
        return d.addCallback(lambda value: value.split(b"|", 1)[0].decode("utf-8", "replace")
                             if isinstance(value, bytes) else None)

    def release(self, user_id: int) -> None:
        value = self.mine.pop(user_id, None)
        if value is not None and self.bus.link.available:
            self._release(user_id, value)

    def _release(self, user_id: int, value: bytes) -> defer.Deferred[Any]:
        return self.bus.link.run(RELEASE, [self.key(user_id)], [value]).addErrback(
            lambda f: None)      # it expires by itself

    def renew(self) -> defer.Deferred[Any] | None:
        """Extend every lease of this node (set again where Redis lost it); a lease now
        held by another session ends the local one."""
        if not self.bus.link.available or not self.mine:
            return None
        items = list(self.mine.items())
        chunks = [items[i:i + CHUNK] for i in range(0, len(items), CHUNK)]
        return defer.gatherResults([self._renew(chunk) for chunk in chunks],
                                   consumeErrors=True).addErrback(lambda f: None)

    def _renew(self, chunk: list[tuple[int, bytes]]) -> defer.Deferred[Any]:
        keys = [self.key(user_id) for user_id, _ in chunk]
        values = [value for _, value in chunk]
        d = self.bus.link.run(RENEW, keys, [*values, int(LEASE_TTL * 1000)])

        def lost(indexes: Any) -> None:
            for index in indexes or ():
                user_id, value = chunk[int(index) - 1]
                if self.mine.get(user_id) == value:
                    del self.mine[user_id]
                    self.log.warn("The lease of user {user_id} is held by another session:"
                                  " ending the one here", user_id=user_id)
                    self.on_lost(user_id)
        return d.addCallback(lost)
