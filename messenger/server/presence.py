"""Presence: online / away / offline, pushed to the users who have you as a contact.

`Presence` keeps, for every user, the set of *online* users who have that user as a
contact (its watchers). Each session registers in the watcher sets of its own contacts
when it logs in and leaves them when it goes; a status change is then one push to the
user's watcher set, with no query.
"""

from __future__ import annotations

from typing import Any

from messenger.server.router import Router

ONLINE = "online"
AWAY = "away"
OFFLINE = "offline"


class Presence:
    def __init__(self, router: Router, clock: Any) -> None:
        self._router = router
        self._clock = clock
        self._watchers: dict[int, set[int]] = {}
        self._following: dict[int, set[int]] = {}  # online user -> ids of their contacts
        self._status: dict[int, str] = {}

    def status_of(self, user_id: int) -> str:
        return self._status.get(user_id, OFFLINE)

    def went_online(self, user_id: int, name: str, contact_ids: list[int],
                    status: str = ONLINE) -> None:
        """A session logged in and its contact list is known."""
        self._following[user_id] = set(contact_ids)
        for contact_id in contact_ids:
            self._watchers.setdefault(contact_id, set()).add(user_id)
        self._set(user_id, name, status)

    def went_offline(self, user_id: int, name: str) -> None:
        """The session ended, cleanly or not."""
        for contact_id in self._following.pop(user_id, ()):
            watchers = self._watchers.get(contact_id)
            if watchers is not None:
                watchers.discard(user_id)
                if not watchers:
                    del self._watchers[contact_id]
        if self._status.pop(user_id, None) is not None:
            self._notify(user_id, name, OFFLINE)

    def set_status(self, user_id: int, name: str, status: str) -> None:
        if user_id in self._status:
            self._set(user_id, name, status)

    def contact_added(self, owner_id: int, contact_id: int) -> None:
        following = self._following.get(owner_id)
        if following is not None:
            following.add(contact_id)
            self._watchers.setdefault(contact_id, set()).add(owner_id)

    def contact_removed(self, owner_id: int, contact_id: int) -> None:
        following = self._following.get(owner_id)
        if following is not None:
            following.discard(contact_id)
        watchers = self._watchers.get(contact_id)
        if watchers is not None:
            watchers.discard(owner_id)
            if not watchers:
                del self._watchers[contact_id]

    def forget(self, user_id: int) -> None:
        """An account was deleted: take it out of every watcher set and following set."""
        for contact_id in self._following.pop(user_id, ()):
            self.contact_removed(user_id, contact_id)
        for owner_id in self._watchers.pop(user_id, set()):
            following = self._following.get(owner_id)
            if following is not None:
                following.discard(user_id)
        self._status.pop(user_id, None)

    def watchers_of(self, user_id: int) -> set[int]:
        return set(self._watchers.get(user_id, ()))

    def _set(self, user_id: int, name: str, status: str) -> None:
        if self._status.get(user_id) == status:
            return
        self._status[user_id] = status
        self._notify(user_id, name, status)

    def _notify(self, user_id: int, name: str, status: str) -> None:
        watchers = self._watchers.get(user_id)
        if watchers:
            self._router.push_many(list(watchers), {
                "action": "presence", "account_name": name, "status": status,
                "time": self._clock.seconds()})
