"""The account's conversations, kept from the first event after login, window or not.

`Conversations` is made with the client (before any window), so the messages the sync
after login delivers, which arrive before the main window exists, are counted unread and
notified like any other. It owns the chat list model and the account's `ChatState`,
decides what is unread (a message is read at once only in the chat the user is looking
at: ``reading``), groups notifications per chat, keeps the service messages, and saves
the state a second after each change. The main window shows what it holds.

Unread counts and read positions are the server's: its counts after each login
(``unread``) replace the remembered ones, and what the user reads is sent back as read
markers (`read_markers`). Between the login and the counts, what the sync brings is
counted provisionally and its notifications held; once the counts are known, messages
that came by sync are not counted again (the server's counts include them), live ones
are. Groups are kept up to date by `group_tracking`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from PyQt5.QtCore import QObject, pyqtSignal
from twisted.internet import defer
from twisted.logger import Logger

from messenger.client.events import ConnectionState, State
from messenger.client.ui.chat_list import ChatListModel
from messenger.client.ui.chat_state import (
    FEED,
    NOTICES,
    ChatRecord,
    ChatState,
    ChatStateFile,
    group_key,
    person_key,
    preview_of,
    shown_text,
)
from messenger.client.ui.group_tracking import GroupTrackingMixin
from messenger.client.ui.messages import explain
from messenger.client.ui.notify import NotificationBatcher, Notifier
from messenger.client.ui.read_markers import ReadMarkers
from messenger.client.ui.server_counts import COUNTS_GRACE, ServerCountsMixin

SAVE_DELAY = 1.0
PREVIEW_FETCHES = 40          # chats whose last message is asked for after a login


@dataclass
class NoticeItem:
    time: float
    text: str
    important: bool


class Conversations(ServerCountsMixin, GroupTrackingMixin, QObject):
    unread_changed = pyqtSignal(int)          # the total (muted chats left out)
    notice_added = pyqtSignal(object)         # NoticeItem
    contacts_failed = pyqtSignal(str)         # a sentence
    blocks_changed = pyqtSignal()             # the blocked list was read again
    group_changed = pyqtSignal(str)           # a group's key: its meta changed
    group_event = pyqtSignal(object)          # a group record, after the state took it

    log = Logger()

    def __init__(self, client: Any, bridge: Any, state_file: ChatStateFile,
                 notifier: Notifier, reactor: Any, run_blocking: Any,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.client = client
        self.address = client.address
        self.state_file = state_file
        self.notifier = notifier
        self.reactor = reactor
        self._run = run_blocking
        self.model = ChatListModel(self)
        self.me = ""
        self.reading: str | None = None       # the chat in front of the user, if any
        self.notices: list[NoticeItem] = []
        self.notices_record = ChatRecord()    # of this session only (notices are not kept)
        self.blocked: set[str] = set()
        self.batcher = NotificationBatcher(notifier, reactor)
        self.markers = ReadMarkers(client, reactor)
        self.counts_known = False             # the server's counts of this login came
        self._ahead: set[str] = set()         # chats counted here: read further than the
                                              # server knew when it counted
        self._grace_call: Any = None
        self._save_call: Any = None
        self._was_logged_in = False
        self._connections = [(bridge.account, self.on_account), (bridge.state, self.on_state),
                             (bridge.message, self.on_message),
                             (bridge.message_status, self.on_message_status),
                             (bridge.presence, self.on_presence),
                             (bridge.broadcast, self.on_broadcast),
                             (bridge.notice, self.on_notice),
                             (bridge.server_key, self.on_server_key),
                             (bridge.unread, self.on_unread),
                             (bridge.group, self.on_group),
                             (bridge.message_changed, self.on_message_changed)]
        for signal, slot in self._connections:
            signal.connect(slot)

    @property
    def state(self) -> ChatState:
        return self.model.state

    # == the session =======================================================================

    def on_account(self, account: Any) -> None:
        if account.account_name.lower() != self.me.lower():
            self.me = account.account_name
            self.batcher.cancel()
            if not self.counts_known:
                self.batcher.hold()          # until this login's counts come
            state = self.state_file.state_for(self.address, self.me)
            state.chats[NOTICES] = self.notices_record
            self.model.load(state)
            self._unread_changed()

    def on_state(self, state: ConnectionState) -> None:
        self.model.set_connected(state.logged_in)
        if state.logged_in and not self._was_logged_in:
            self.counts_known = False
            self._ahead = set()
            self.batcher.hold()
            self.reload()
            self.markers.resend()
        if state.name == State.ONLINE and not self.counts_known and self._grace_call is None:
            self._grace_call = self.reactor.callLater(COUNTS_GRACE, self._no_counts)
        self._was_logged_in = state.logged_in

    def reload(self) -> None:
        """After each login: contacts with presence, the blocked list, the groups, then
        previews."""
        d = self.client.get_contacts()
        d.addCallback(lambda reply: self.model.set_contacts(reply.get("alert") or []))
        d.addCallbacks(lambda _: self._fetch_previews(),
                       lambda failure: self.contacts_failed.emit(
                           "Your contacts could not be loaded: "
                           + explain(failure, self.address)))
        self.load_blocked()
        self.load_groups()

    def load_blocked(self) -> defer.Deferred[Any]:
        d = self.client.get_blocked()
        d.addCallback(self._blocked_loaded)
        d.addErrback(lambda failure: self.log.info("Blocked list not loaded: {why}",
                                                   why=explain(failure)))
        return d

    def _blocked_loaded(self, reply: dict[str, Any]) -> list[str]:
        names = [str(b["account_name"]) for b in reply.get("alert") or []
                 if isinstance(b, dict) and "account_name" in b]
        self.blocked = {name.lower() for name in names}
        self.model.set_blocked(names)
        self.blocks_changed.emit()
        return names

    @defer.inlineCallbacks
    def _fetch_previews(self) -> Any:
        """The last message of chats that have none yet (a new computer), one at a time."""
        missing = [item.title for key in self.model.keys()
                   if key.startswith("@") and (item := self.model.item(key)) is not None
                   and not item.record.last_id][:PREVIEW_FETCHES]
        for name in missing:
            try:
                reply = yield self.client.history(name, limit=1)
            except Exception:
                return
            for message in reply.get("alert") or []:
                self.note_history(name, message)

    def note_history(self, peer: str, message: dict[str, Any]) -> None:
        """A message seen in a history page: the chat's preview if it is the newest."""
        try:
            msg_id, when = int(message["msg_id"]), float(message["time"])
            sender, text = str(message["from"]), str(message["message"])
        except (KeyError, TypeError, ValueError):
            return
        key = person_key(peer)
        if self.state.note(key, msg_id, when, sender, text):
            self.model.touched(key)
            self._save_soon()

    # == events ============================================================================

    def on_message(self, message: Any) -> None:
        text = shown_text(message.text, getattr(message, "attachment", None))
        own = message.sender.lower() == self.me.lower()
        if message.group is not None:
            key, title = group_key(message.group), self.ensure_group(message.group).name
        else:
            peer = message.recipient if own else message.sender
            key, title = person_key(peer), peer
            self.model.person(peer)
        mention = message.group is not None and message.mentions_of(self.me)
        if own:
            self.state.outgoing(key, message.msg_id, message.time, message.sender,
                                text)
            self._unread_changed()
            counted = False
        else:
            counted = self.state.incoming(
                key, message.msg_id, message.time, message.sender, text,
                reading=self.reading == key, mention=mention,
                count=not (message.from_sync and self.counts_known
                           and key not in self._ahead))
        if self.reading == key:
            self.markers.want(key, self.state.record(key).last_read)
        self.model.touched(key)
        if counted:
            self._unread_changed()
            if mention:
                self.batcher.add(key, title, f"{message.sender} mentioned you:"
                                             f" {text}")
            elif not self.state.record(key).muted:
                self.batcher.add(key, title, text if message.group is None
                                 else f"{message.sender}: {text}")
        self._save_soon()

    def on_message_status(self, outgoing: Any) -> None:
        if outgoing.status != "acked" or outgoing.msg_id is None:
            return
        if getattr(outgoing, "group", None) is not None:
            key = group_key(outgoing.group)
            self.ensure_group(outgoing.group)
        else:
            key = person_key(outgoing.to)
            self.model.person(outgoing.to)
        self.state.outgoing(key, int(outgoing.msg_id), float(outgoing.time or time.time()),
                            self.me, shown_text(outgoing.text,
                                                getattr(outgoing, "attachment", None)))
        self.markers.want(key, self.state.record(key).last_read)
        self.model.touched(key)
        self._unread_changed()
        self._save_soon()

    def on_message_changed(self, change: Any) -> None:
        """An edit or deletion of a chat's last message changes its preview."""
        own = change.sender.lower() == self.me.lower()
        key = group_key(change.group) if change.group is not None else \
            person_key((change.recipient or "") if own else change.sender)
        record = self.state.chats.get(key)
        if record is not None and record.last_id == change.msg_id:
            record.preview = "message deleted" if change.is_deleted else \
                preview_of(change.text)
            self.model.touched(key)
            self._save_soon()

    def on_presence(self, change: Any) -> None:
        self.model.set_status(change.account_name, change.status)

    def on_broadcast(self, broadcast: Any) -> None:
        """A post pushed live: unread unless own or Home is being read; notified."""
        counted = self.state.broadcast(broadcast.broadcast_id, broadcast.time,
                                       broadcast.sender, broadcast.text,
                                       reading=self.reading == FEED,
                                       own=broadcast.sender.lower() == self.me.lower())
        self._feed_changed(counted)
        if counted and not self.state.record(FEED).muted:
            self.batcher.add(FEED, f"Broadcast from {broadcast.sender}", broadcast.text)

    def note_broadcasts(self, posts: list[tuple[int, float, str, str]]) -> None:
        """A page of posts the feed loaded (what came while away counts unread)."""
        counted = self.state.broadcast_page(posts, self.reading == FEED, self.me)
        self._feed_changed(counted)

    def _feed_changed(self, counted: int) -> None:
        self.model.touched(FEED)
        if counted:
            self._unread_changed()
        self._save_soon()

    def on_notice(self, notice: Any) -> None:
        important = notice.level != 100
        self.add_notice(notice.message, important, notice.time or None)
        if important:
            self.notifier.notify("Messenger", notice.message)

    def on_server_key(self, event: Any) -> None:
        if event.first_use:
            self.add_notice(f"This is the first connection to {event.address}; its key"
                            f" {event.fingerprint} is now remembered. Compare it with the"
                            " fingerprint your administrator published.")
        else:
            self.add_notice(f"You trusted a new key for {event.address}:"
                            f" {event.fingerprint} (it replaced {event.replaced}).",
                            important=True)

    def add_notice(self, text: str, important: bool = False,
                   when: float | None = None) -> NoticeItem:
        item = NoticeItem(when or time.time(), text, important)
        self.notices.append(item)
        record = self.notices_record
        record.last_id += 1
        record.last_time, record.preview, record.preview_from = item.time, text, ""
        if self.reading == NOTICES or not important:
            record.last_read = record.last_id     # basic notices are there to read later
        else:
            record.unread += 1
            self._unread_changed()
        self.model.touched(NOTICES)
        self.notice_added.emit(item)
        return item

    # == what the user does ================================================================

    def read(self, key: str) -> None:
        """The user looks at this chat: it is read up to its end (and the server is
        told, for a conversation)."""
        self.batcher.drop(key)
        changed = self.state.read(key)
        if key.startswith(("@", "#")):
            self.markers.want(key, self.state.record(key).last_read)
        if changed:
            self.model.touched(key)
            self._unread_changed()
            self._save_soon()

    def set_muted(self, key: str, muted: bool) -> None:
        self.state.set_muted(key, muted)
        if muted:
            self.batcher.drop(key)
        self.model.touched(key)
        self._unread_changed()
        self._save_soon()

    def is_blocked(self, name: str) -> bool:
        return name.lower() in self.blocked

    def block(self, name: str) -> defer.Deferred[Any]:
        d = self.client.block_user(name)
        d.addCallback(lambda _: self.load_blocked())
        return d

    def unblock(self, name: str) -> defer.Deferred[Any]:
        d = self.client.unblock_user(name)
        d.addCallback(lambda _: self.load_blocked())
        return d

    def total_unread(self) -> int:
        return self.model.total_unread()

    def _unread_changed(self) -> None:
        total = self.total_unread()
        self.notifier.set_unread(total)
        self.unread_changed.emit(total)

    # == saving ============================================================================

    def _save_soon(self) -> None:
        if self._save_call is None or not self._save_call.active():
            self._save_call = self.reactor.callLater(SAVE_DELAY, self.save)

    def save(self) -> defer.Deferred[Any]:
        """Write ``chats.json`` now (off the reactor thread)."""
        if self._save_call is not None and self._save_call.active():
            self._save_call.cancel()
        self._save_call = None
        d = self.state_file.save(self._run)
        d.addErrback(lambda failure: self.log.failure("Cannot save the chat list", failure))
        return d

    def flush_markers(self) -> defer.Deferred[Any]:
        """Send the read markers waiting for their interval (before the client stops)."""
        return self.markers.flush()

    def close(self) -> defer.Deferred[Any]:
        """Stop listening, drop pending notifications, write the state."""
        for signal, slot in self._connections:
            try:
                signal.disconnect(slot)
            except TypeError:
                pass
        self._connections = []
        self.batcher.cancel()
        self.markers.cancel()
        if self._grace_call is not None and self._grace_call.active():
            self._grace_call.cancel()
        return self.save()
