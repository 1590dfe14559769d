"""The server's unread counts after each login, applied to the chat list: a mixin of
`Conversations` (which provides ``state``, ``model``, ``markers``, ``batcher``,
``reading``, ``read``, ``_unread_changed`` and ``_save_soon``).

The counts replace what was counted here, except in chats this computer has read further
than the server knew (read while offline, or a read marker still on its way): those keep
their own counts, go on counting what the sync brings, and their markers are sent. The
notifications held since the login are then shown with the server's numbers; when the
counts do not come (refused), after `COUNTS_GRACE` seconds online they are shown as
counted here.
"""

from __future__ import annotations

from typing import Any

from messenger.client.ui.chat_state import group_key, person_key

COUNTS_GRACE = 5.0            # seconds online without the server's counts: notify anyway


class ServerCountsMixin:
    state: Any
    model: Any
    markers: Any
    batcher: Any
    reading: str | None
    counts_known: bool
    _ahead: set[str]
    _grace_call: Any

    def read(self, key: str) -> None:
        raise NotImplementedError

    def _unread_changed(self) -> None:
        raise NotImplementedError

    def _save_soon(self) -> None:
        raise NotImplementedError

    def _no_counts(self) -> None:
        """Online for a while and the server's counts did not come (refused): what was
        counted here stands, and is announced."""
        self._grace_call = None
        self.batcher.release()

    def on_unread(self, counts: Any) -> None:
        """The server's unread counts of this login: they replace what was counted
        here, except where this computer has read further (its markers are sent)."""
        if self._grace_call is not None and self._grace_call.active():
            self._grace_call.cancel()
        self._grace_call = None
        listed = {person_key(name): (unread, 0, read_up_to)
                  for name, (unread, read_up_to) in counts.direct.items()}
        listed.update({group_key(group_id): (g.unread, g.mentions, g.read_up_to)
                       for group_id, g in counts.groups.items()})
        keep = {key for key in self.model.keys() if self.markers.pending(key)}
        self._ahead = set(self.state.apply_server_counts(listed, keep)) | keep
        for key in self._ahead:
            self.markers.want(key, self.state.record(key).last_read)
        for name in counts.direct:
            self.model.person(name)
        self.counts_known = True
        for key in self.model.keys():
            self.model.touched(key)
        if self.reading is not None:
            self.read(self.reading)
        self.batcher.release(self._announced_count)
        self._unread_changed()
        self._save_soon()

    def _announced_count(self, key: str) -> int:
        """How many unread messages a held notification announces (muted: mentions)."""
        record = self.state.record(key)
        return record.mentions if record.muted else record.unread

