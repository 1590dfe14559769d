"""The cluster's router: the same interface as `Router`, over the whole cluster.

Local sessions are kept exactly as on one node (this class *is* a `Router` for them).
What differs:

* `attach` takes the account's lease in Redis first (`Leases`), so it returns a Deferred:
  True when this session now owns the account, False when a session anywhere does (409,
  and the node holding it is asked to probe its session, as one node probes its own);
  503 when Redis cannot be asked (logins wait for Redis: one session per account is a
  promise the cluster keeps);
* a push to a user not held here goes on the bus to every node, and the node holding the
  user delivers it; message pushes made while a batch of this node commits go into that
  batch's announcement instead, so they keep their id order (`MessageStream`);
* `push_all` and `end_session` reach every node.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.logger import Logger

from messenger.server.cluster.redis import RedisUnavailable
from messenger.server.router import Router
from messenger.wire import jim
from messenger.wire.errors import ServiceUnavailable

if TYPE_CHECKING:
    from messenger.server.cluster.node import ClusterNode
    from messenger.server.session import Session

LOGIN_RETRY = 5.0


class ClusterRouter(Router):
    log = Logger()

    def __init__(self, clock: Any, node: ClusterNode) -> None:
        super().__init__(clock)
        self.node = node
        self._attaching: dict[int, Session] = {}

    # -- sessions -------------------------------------------------------------------------

    def attach(self, user_id: int, session: Session) -> Any:  # type: ignore[override]
        current = self._sessions.get(user_id)
        if current is not None:
            return defer.succeed(current is session)
        if self._attaching.get(user_id, session) is not session:
            return defer.succeed(False)
        if not self.node.logins_open():
            return defer.fail(ServiceUnavailable(
                "the cluster's session registry (Redis) is unavailable; try again shortly",
                LOGIN_RETRY))
        self._attaching[user_id] = session
        d = self.node.leases.acquire(user_id)

        def leased(holder: str | None) -> bool:
            if self._attaching.get(user_id) is session:
                del self._attaching[user_id]
            if holder is not None:
                self.node.ask_to_probe(holder, user_id)
                return False
            if not Router.attach(self, user_id, session):
                self.node.leases.release(user_id)
                return False
            return True

        def failed(failure: Any) -> Any:
            if self._attaching.get(user_id) is session:
                del self._attaching[user_id]
            if failure.check(RedisUnavailable):
                raise ServiceUnavailable("the cluster's session registry (Redis) is"
                                         " unavailable; try again shortly", LOGIN_RETRY)
            return failure
        return d.addCallbacks(leased, failed)

    def login_wait(self) -> float | None:
        return None if self.node.logins_open() else LOGIN_RETRY

    def detach(self, user_id: int, session: Session) -> None:
        if self._sessions.get(user_id) is session:
            del self._sessions[user_id]
            self.node.leases.release(user_id)

    def lease_lost(self, user_id: int) -> None:
        """Another session took the account while Redis could not tell us: end ours."""
        session = self._sessions.get(user_id)
        if session is not None:
            Router.end_session(self, user_id, "You logged in elsewhere.")

    # -- pushes ---------------------------------------------------------------------------

    def push(self, user_id: int, message: dict[str, Any]) -> bool:
        if user_id in self._sessions:
            return Router.push(self, user_id, message)
        return self.node.push_away([user_id], jim.encode(message))

    def push_encoded(self, user_id: int, payload: bytes) -> bool:
        stream = self.node.stream
        if stream.collecting is not None:
            stream.add([user_id], payload)
            return True
        session = self._sessions.get(user_id)
        if session is not None:
            session.push_encoded(payload)
            return True
        return self.node.push_away([user_id], payload)

    def push_many(self, user_ids: Iterable[int], message: dict[str, Any]) -> int:
        user_ids = list(user_ids)
        if not user_ids:
            return 0
        payload = jim.encode(message)
        stream = self.node.stream
        if stream.collecting is not None and message.get("action") == "msg":
            stream.add(user_ids, payload)
            return len(user_ids)
        count = 0
        away = []
        for user_id in user_ids:
            session = self._sessions.get(user_id)
            if session is None:
                away.append(user_id)
            else:
                session.push_encoded(payload)
                count += 1
        if away:
            self.node.push_away(away, payload)
        return count

    def push_local_many(self, user_ids: Iterable[int], message: dict[str, Any]) -> int:
        """Push to the users of the list held on this node (presence: each node tells its
        own watchers)."""
        return Router.push_many(self, user_ids, message)

    def push_all(self, message: dict[str, Any], except_id: int | None = None) -> int:
        payload = jim.encode(message)
        self.node.bus.send("push_all", payload, x=except_id)
        return self.push_all_local(payload, except_id)

    def push_all_local(self, payload: bytes, except_id: int | None) -> int:
        count = 0
        for user_id, session in list(self._sessions.items()):
            if user_id != except_id:
                session.push_encoded(payload)
                count += 1
        return count

    def end_session(self, user_id: int, why: str) -> bool:
        if Router.end_session(self, user_id, why):
            return True
        self.node.bus.send("end", u=user_id, w=why)
        return False
