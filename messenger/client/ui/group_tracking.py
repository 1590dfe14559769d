"""The groups in the chat list, kept current: read with ``group_list`` after each login
(name, the user's role, members, the last message as the preview), then followed from
the core's ``group`` records (created, renamed, members added and removed, roles,
deleted). A mixin of `Conversations`, which provides ``client``, ``model``, ``state``,
``me`` and the signals ``group_changed`` and ``group_event``. No protocol here: only the
client core's actions and records.

A group the user is no longer in (left, removed, deleted) stays in the list for the rest
of the session, marked, with its messages, so that the user sees what happened; it is
gone after the next login (the server no longer lists it).
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from messenger.client.groupevents import (
    GroupCreated,
    GroupDeleted,
    GroupInfo,
    GroupMemberAdded,
    GroupMemberRemoved,
    GroupRoleChanged,
    GroupUpdated,
)
from messenger.client.ui.chat_state import GroupMeta, group_id_of, group_key
from messenger.client.ui.messages import explain

LIST_PAGE = 200


class GroupTrackingMixin:
    client: Any
    model: Any
    me: str
    log: Any
    batcher: Any
    group_changed: Any
    group_event: Any

    @property
    def state(self) -> Any:
        raise NotImplementedError

    def _save_soon(self) -> None:
        raise NotImplementedError

    def add_notice(self, text: str, important: bool = False, when: float | None = None
                   ) -> Any:
        raise NotImplementedError

    # -- reading the list -----------------------------------------------------------------

    def load_groups(self) -> defer.Deferred[Any]:
        """Every group of the user (page by page); those no longer listed leave the
        list. Fires with the number of groups."""
        d = self._group_pages()
        d.addErrback(lambda failure: self.log.info("Groups not loaded: {why}",
                                                   why=explain(failure)))
        return d

    @defer.inlineCallbacks
    def _group_pages(self) -> Any:
        listed: set[str] = set()
        after = None
        while True:
            reply = yield self.client.group_list(after=after, limit=LIST_PAGE)
            items = [item for item in reply.get("alert") or [] if isinstance(item, dict)]
            for item in items:
                listed.add(self._listed_group(item))
            if not reply.get("more") or not items:
                break
            after = int(items[-1]["group_id"])
        for key in list(self.state.groups):
            if key not in listed:
                self.model.remove(key)
                self.state.forget(key)
        self._save_soon()
        return len(listed)

    def _listed_group(self, item: dict[str, Any]) -> str:
        info = GroupInfo.from_jim(item)
        meta = self.state.group(info.group_id)
        meta.update(info)
        meta.gone = ""
        key = group_key(info.group_id)
        last = item.get("last")
        if isinstance(last, dict):
            try:
                self.state.note(key, int(last["msg_id"]), float(last["time"]),
                                str(last["from"]), str(last["message"]))
            except (KeyError, TypeError, ValueError):
                pass
        self.model.group(meta)
        self.batcher.retitle(key, meta.name)
        self.group_changed.emit(key)
        return key

    def ensure_group(self, group_id: int) -> GroupMeta:
        """The group's row (added when missing: a message of a group not listed yet,
        its details asked for)."""
        key = group_key(group_id)
        known = key in self.state.groups
        meta = self.state.group(group_id)
        if self.model.item(key) is None:
            self.model.group(meta)
        if not known:
            self.refresh_group(group_id)
        return meta

    def refresh_group(self, group_id: int) -> defer.Deferred[Any]:
        """Ask for a group's details (``group_info``): the row follows. Fires with the
        reply (None when refused)."""
        d = self.client.group_info(group_id, limit=1)

        def got(reply: dict[str, Any]) -> dict[str, Any]:
            group = reply.get("group")
            if isinstance(group, dict):
                self.note_group(GroupInfo.from_jim(group))
            return reply
        d.addCallback(got)
        d.addErrback(lambda failure: self.log.info("Group {id} not read: {why}",
                                                   id=group_id, why=explain(failure)))
        return d

    def note_group(self, info: GroupInfo) -> GroupMeta:
        """A group as a reply describes it (create, update, info): the row follows."""
        meta = self.state.group(info.group_id)
        meta.update(info)
        self.model.group(meta)
        self._group_touched(meta)
        return meta

    def groups_managed(self) -> list[GroupMeta]:
        return [meta for meta in self.state.groups.values() if meta.manages]

    # -- what the server tells ------------------------------------------------------------

    def on_group(self, event: Any) -> None:
        """One of the core's group records."""
        me = self.me.lower()
        if isinstance(event, (GroupCreated, GroupUpdated)):
            meta = self.note_group(event.group)
            if isinstance(event, GroupCreated):
                self.add_notice(f"{event.by} added you to the group “{meta.name}”.")
        elif isinstance(event, GroupMemberAdded):
            meta = self.state.group(event.group.group_id)
            if event.account_name.lower() == me:
                meta.gone, meta.role = "", event.role
                self.add_notice(f"{event.by} added you to the group “{event.group.name}”.")
            meta.update(event.group)
            self.model.group(meta)
            self._group_touched(meta)
        elif isinstance(event, GroupMemberRemoved):
            meta = self.state.group(event.group_id)
            if event.account_name.lower() == me:
                meta.gone = "left" if event.reason == "left" else "removed"
                if meta.gone == "removed":
                    self.add_notice(f"{event.by} removed you from the group"
                                    f" “{meta.name}”.", important=True)
            elif meta.members:
                meta.members -= 1
            self._group_touched(meta)
        elif isinstance(event, GroupRoleChanged):
            meta = self.state.group(event.group_id)
            if event.account_name.lower() == me:
                meta.role = event.role
            if event.role == "owner":
                meta.owner = event.account_name
            self._group_touched(meta)
        elif isinstance(event, GroupDeleted):
            meta = self.state.group(event.group_id)
            meta.name = event.name or meta.name
            meta.gone = "deleted"
            who = event.by or "The server's administrator"   # messenger-admin
            self.add_notice(f"{who} deleted the group “{event.name}”.")
            self._group_touched(meta)
        self.group_event.emit(event)

    def left_group(self, group_id: int, reason: str = "left") -> None:
        """The user left (its own request succeeded) or deleted the group."""
        meta = self.state.group(group_id)
        meta.gone = reason
        self._group_touched(meta)

    def _group_touched(self, meta: GroupMeta) -> None:
        key = group_key(meta.group_id)
        self.batcher.retitle(key, meta.name)
        if self.model.item(key) is None:
            self.model.group(meta)
        else:
            item = self.model.item(key)
            item.title, item.group = meta.name, meta
            self.model.touched(key)
        self.group_changed.emit(key)
        self._save_soon()


def is_group_key(key: str | None) -> bool:
    return key is not None and group_id_of(key) is not None
