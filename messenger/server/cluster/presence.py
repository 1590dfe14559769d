"""Presence seen the same from every node.

Each node keeps, as on one node, the watcher sets of its own sessions and the status of
its own users (`Presence`); it also keeps the status of every user online on another node
(``remote``), from their nodes' ``presence`` events. A change of a local user is pushed to
the local watchers at once and published; every other node pushes it to its own
watchers. A node's full list (``presence_all``) goes out when its link to Redis comes up
(start, or Redis back after an outage) and to any node that asks (``hello``): events of
one node reach the others in the order they were published, so a list replaces what was
known of that node and the events after it apply on top. A node that leaves or falls
silent takes its users offline (`node_gone`).
"""

from __future__ import annotations

from typing import Any

from messenger.server.cluster.bus import Envelope, NodeBus
from messenger.server.presence import AWAY, OFFLINE, ONLINE, Presence

STATUSES = (ONLINE, AWAY)


class ClusterPresence(Presence):
    def __init__(self, router: Any, clock: Any, bus: NodeBus) -> None:
        super().__init__(router, clock)
        self.bus = bus
        self.remote: dict[int, tuple[str, str, str]] = {}   # user -> (status, name, node)
        self._names: dict[int, str] = {}                    # local online users' names

    def status_of(self, user_id: int) -> str:
        status = self._status.get(user_id)
        if status is not None:
            return status
        entry = self.remote.get(user_id)
        return entry[0] if entry is not None else OFFLINE

    def online_anywhere(self, user_id: int) -> bool:
        return user_id in self._status or user_id in self.remote

    # -- local changes, published ---------------------------------------------------------

    def _set(self, user_id: int, name: str, status: str) -> None:
        changed = self._status.get(user_id) != status
        self._names[user_id] = name
        super()._set(user_id, name, status)
        if changed:
            self.bus.send("presence", u=user_id, a=name, s=status)

    def went_offline(self, user_id: int, name: str) -> None:
        was_online = user_id in self._status
        self._names.pop(user_id, None)
        super().went_offline(user_id, name)
        if was_online:
            self.bus.send("presence", u=user_id, a=name, s=OFFLINE)

    def forget(self, user_id: int) -> None:
        super().forget(user_id)
        self.remote.pop(user_id, None)
        self._names.pop(user_id, None)

    def _notify(self, user_id: int, name: str, status: str) -> None:
        watchers = self._watchers.get(user_id)
        if watchers:
            self._router.push_local_many(list(watchers), {
                "action": "presence", "account_name": name, "status": status,
                "time": self._clock.seconds()})

    def snapshot(self) -> list[list[Any]]:
        return [[user_id, self._names.get(user_id, ""), status]
                for user_id, status in self._status.items()]

    # -- what other nodes say -------------------------------------------------------------

    def remote_change(self, envelope: Envelope) -> None:
        user_id, name, status = envelope["u"], envelope["a"], envelope["s"]
        if type(user_id) is not int or type(name) is not str or status not in (
                *STATUSES, OFFLINE):
            raise ValueError("bad presence event")
        self._apply(envelope["n"], user_id, name, status)

    def remote_list(self, envelope: Envelope) -> None:
        node = envelope["n"]
        entries = envelope["l"]
        if type(entries) is not list:
            raise ValueError("bad presence list")
        listed = set()
        for entry in entries:
            if (type(entry) is not list or len(entry) != 3 or type(entry[0]) is not int
                    or type(entry[1]) is not str or entry[2] not in STATUSES):
                raise ValueError("bad presence list entry")
            listed.add(entry[0])
            self._apply(node, entry[0], entry[1], entry[2])
        for user_id, (_, name, holder) in list(self.remote.items()):
            if holder == node and user_id not in listed:
                self._apply(node, user_id, name, OFFLINE)

    def node_gone(self, node: str, incarnation: str = "") -> None:
        for user_id, (_, name, holder) in list(self.remote.items()):
            if holder == node:
                self._apply(node, user_id, name, OFFLINE)

    def _apply(self, node: str, user_id: int, name: str, status: str) -> None:
        entry = self.remote.get(user_id)
        if status == OFFLINE:
            if entry is None or entry[2] != node:
                return              # it went online elsewhere since: that news stands
            del self.remote[user_id]
        else:
            if entry is not None and entry[0] == status and entry[2] == node:
                return
            self.remote[user_id] = (status, name, node)
            if entry is not None and entry[0] == status:
                return
        if user_id not in self._status:     # held here too (moving): ours is current
            self._notify(user_id, name, status)
