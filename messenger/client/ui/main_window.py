"""The main window: one window, as in Telegram Desktop. The chat list on the left (people,
the broadcast feed, the service messages), the open chat on the right, the connection in
the status bar. Below `NARROW` pixels it shows one of the two at a time (the chat, with
a back arrow; Esc goes back), down to a phone-like 360 pixels.

The `Conversations` (made with the client, before this window) hold the list, the unread
counts and the notifications; this window shows them, routes live messages to the open
panes, and says which chat the user is reading.
"""

from __future__ import annotations

from typing import Any

from PyQt5.QtCore import QEvent, Qt, QTimer, pyqtSignal
from PyQt5.QtWidgets import (
    QLabel,
    QMainWindow,
    QMenu,
    QSplitter,
    QStackedWidget,
    QWidget,
)

from messenger.client.calls import controller as calls
from messenger.client.events import AccountInfo, ConnectionState, State
from messenger.client.ui import shortcuts, style
from messenger.client.ui.chat_actions import ChatActionsMixin
from messenger.client.ui.chat_list import GROUP, PERSON
from messenger.client.ui.chat_state import FEED, NOTICES, person_key
from messenger.client.ui.conversation import ConversationPane
from messenger.client.ui.feed import FeedPane, NoticesPane
from messenger.client.ui.group_actions import GroupActionsMixin
from messenger.client.ui.messages import describe_state, explain, header_status
from messenger.client.ui.pane_routing import PaneRoutingMixin
from messenger.client.ui.sidebar import Sidebar
from messenger.client.ui.widgets import ElidedLabel
from messenger.client.ui.windows import WindowsMixin

NARROW = 600                     # below this width: one pane at a time
STATE_COLOURS = {"online": style.PRESENCE_COLOURS["online"], "syncing": "#22c55e",
                 "reconnecting": "#d97706", "connecting": "#d97706",
                 "handshaking": "#d97706", "logging_in": "#d97706"}


class MainWindow(WindowsMixin, GroupActionsMixin, PaneRoutingMixin, ChatActionsMixin,
                 QMainWindow):
    logout_requested = pyqtSignal()
    settings_requested = pyqtSignal()
    preferences_requested = pyqtSignal()
    quit_requested = pyqtSignal()

    def __init__(self, client: Any, bridge: Any, conversations: Any, call_controller: Any,
                 call_bridge: Any, notifier: Any, me: str, address: str,
                 reactor: Any = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        if reactor is None:
            from twisted.internet import reactor as default_reactor
            reactor = default_reactor
        self.client, self.bridge, self.conversations = client, bridge, conversations
        self.calls, self.call_bridge, self.notifier = call_controller, call_bridge, notifier
        self.me, self.address, self.reactor = me, address, reactor
        self.account: AccountInfo | None = client.account
        self.panes: dict[str, ConversationPane] = {}
        self.current_key: str | None = None
        self.narrow = False
        self.quit_on_close = False
        self._state: ConnectionState = client.state
        self.init_windows()
        self.init_groups()
        self.setMinimumSize(360, 460)
        self.resize(1100, 720)

        self.sidebar = Sidebar(me, conversations.model)
        self.sidebar.chat_activated.connect(self.open_key)
        self.sidebar.context_requested.connect(self._chat_context_menu)
        self.sidebar.presence_chosen.connect(self._presence_chosen)
        self.sidebar.find_button.clicked.connect(self.open_search)
        self.sidebar.new_group_button.clicked.connect(self.open_new_group)
        self.sidebar.menu_button.setMenu(self.build_main_menu())
        self.stack = QStackedWidget()
        self.placeholder = style.named(QLabel("Select a chat to start messaging"), "muted")
        self.placeholder.setAlignment(Qt.AlignCenter)
        self.placeholder.setWordWrap(True)
        self.stack.addWidget(self.placeholder)
        self.feed = FeedPane(client, conversations, address)
        self.notices = NoticesPane(conversations)
        for pane in (self.feed, self.notices):
            pane.header.back_requested.connect(self.go_back)
            self.stack.addWidget(pane)
        self.splitter = QSplitter(Qt.Horizontal)
        self.splitter.addWidget(self.sidebar)
        self.splitter.addWidget(self.stack)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([330, 770])
        self.setCentralWidget(self.splitter)
        self._status_bar()
        self._shortcuts = shortcuts.bind(self, lambda name: getattr(self, name))
        self._countdown = QTimer(self)
        self._countdown.setInterval(1000)
        self._countdown.timeout.connect(self._refresh_state)

        self._connections = [
            (bridge.state, self.on_state), (bridge.message, self.on_message),
            (bridge.message_status, self.on_message_status),
            (bridge.presence, self.on_presence), (bridge.broadcast, self.feed.add),
            (bridge.account, self.on_account), (call_bridge.status, self.on_call_status),
            (conversations.unread_changed, self.update_title),
            (conversations.contacts_failed, lambda text: self.show_status(text, True)),
            (conversations.blocks_changed, self._refresh_chats),
            (conversations.group_changed, self.refresh_chat),
            (bridge.receipt, self.on_receipt), (bridge.typing, self.on_typing),
            (bridge.transfer_progress, self.on_transfer),
            (bridge.transfer_done, self.on_transfer),
            (bridge.transfer_failed, self.on_transfer),
            (bridge.message_changed, self.on_message_changed)]
        for signal, slot in self._connections:
            signal.connect(slot)
        if self.account is not None:
            self.on_account(self.account)
        self.update_title()
        self.on_state(client.state, first=True)

    def _status_bar(self) -> None:
        bar = self.statusBar()
        bar.setSizeGripEnabled(False)
        self.state_dot = QLabel()
        self.state_label = ElidedLabel("")
        self.state_label.setAccessibleName("Connection state")
        bar.addWidget(self.state_dot)
        bar.addWidget(self.state_label, 1)
        self.server_label = style.named(ElidedLabel(f"{self.me} @ {self.address}"), "muted")
        self.server_label.setMinimumWidth(60)
        bar.addPermanentWidget(self.server_label)

    def show_status(self, text: str, error: bool = False) -> None:
        """A passing sentence in the status bar (the connection state comes back)."""
        self.statusBar().showMessage(text, 10000 if error else 5000)

    # == the connection =====================================================================

    def on_state(self, state: ConnectionState, first: bool = False) -> None:
        was_logged_in = self._state.logged_in and not first
        self._state = state
        self._refresh_state()
        self._countdown.start() if state.name == State.RECONNECTING else self._countdown.stop()
        if state.logged_in and not was_logged_in:
            self.feed.reload()
            for pane in self.panes.values():
                pane.connection_ready()
        self._refresh_chats()

    def _refresh_chats(self) -> None:
        for key in self.panes:
            self.refresh_chat(key)

    def _refresh_state(self) -> None:
        state = self._state
        self.state_label.set_full_text(describe_state(state, self.reactor.seconds()))
        colour = STATE_COLOURS.get(state.name, style.PRESENCE_COLOURS["offline"])
        self.state_dot.setPixmap(style.dot_pixmap(colour, 10))
        self.state_label.setToolTip(
            (explain(state.error, self.address) if state.error is not None else state.reason)
            if state.reason else "")

    # == events from the core ===============================================================

    def on_presence(self, change: Any) -> None:
        self.refresh_chat(person_key(change.account_name))

    def on_account(self, account: AccountInfo) -> None:
        previous, self.account = self.account, account
        self.sidebar.set_roles(account.admin, account.premium)
        self.admin_action.setVisible(account.admin)
        self.feed.set_can_post(account.premium or account.admin)
        if previous is not None and previous != account:
            for role, before, now in (("an administrator", previous.admin, account.admin),
                                      ("premium", previous.premium, account.premium)):
                if before != now:
                    self.conversations.add_notice(
                        f"You are {'now' if now else 'no longer'} {role}.", important=True)
        if not account.admin and self.admin_panel is not None:
            self.admin_panel.close()
            self.admin_panel = None

    def _presence_chosen(self, status: str) -> None:
        self.sidebar.avatar.set_presence(status)
        self.client.set_presence(status).addErrback(
            lambda failure: self.show_status(explain(failure, self.address), True))

    # == unread =============================================================================

    def total_unread(self) -> int:
        return self.conversations.total_unread()

    def update_title(self, *_: Any) -> None:
        total = self.total_unread()
        self.setWindowTitle(f"({total}) Messenger — {self.me}" if total
                            else f"Messenger — {self.me}")

    def _update_reading(self) -> None:
        """Tell the conversations which chat the user is reading (messages arriving
        there are read at once); None when the window is not in front."""
        showing = self.current_key if (self.isActiveWindow() and not self.isMinimized()
                                       and self.stack.isVisible()) else None
        self.conversations.reading = showing
        if showing is not None:
            self.conversations.read(showing)

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802
        super().changeEvent(event)
        if event.type() in (QEvent.ActivationChange, QEvent.WindowStateChange):
            self._update_reading()

    # == chats ==============================================================================

    def open_chat(self, peer: str) -> ConversationPane:
        self.conversations.model.person(peer)
        pane = self.open_key(person_key(peer))
        assert isinstance(pane, ConversationPane)
        return pane

    def open_key(self, key: str) -> QWidget | None:
        """Show a chat on the right (and, in narrow mode, only it); it is read now."""
        item = self.conversations.model.item(key)
        if item is None:
            return None
        if key == FEED:
            pane: QWidget = self.feed
        elif key == NOTICES:
            pane = self.notices
        else:
            pane = self.group_pane_for(item.group.group_id) if item.kind == GROUP \
                else self._pane_for(item.title)
            pane.set_unread_after(item.record.last_read if item.unread else None)
        self.current_key = key
        self.stack.setCurrentWidget(pane)
        self.sidebar.select(key)
        self._apply_narrow()
        self.conversations.read(key)
        self._update_reading()
        if isinstance(pane, ConversationPane):
            self.refresh_chat(key)
            pane.focus_composer()
        return pane

    def _pane_for(self, peer: str) -> ConversationPane:
        key = person_key(peer)
        pane = self.panes.get(key)
        if pane is None:
            pane = ConversationPane(self.client, self.me, peer, address=self.address)
            pane.back_requested.connect(self.go_back)
            pane.call_requested.connect(self.start_call)
            pane.menu_requested.connect(
                lambda name, menu: self.fill_chat_menu(person_key(name), menu, False))
            pane.unblock_button.clicked.connect(lambda: self.unblock(peer))
            pane.view.link_activated.connect(lambda url: self.show_status(f"Opening {url}"))
            self.panes[key] = pane
            self.stack.addWidget(pane)
        return pane

    def refresh_chat(self, key: str) -> None:
        pane = self.panes.get(key)
        item = self.conversations.model.item(key)
        if item is not None and item.kind == GROUP:
            self.refresh_group(key)
            return
        if pane is None or item is None or item.kind != PERSON:
            return
        pane.set_blocked(item.blocked)
        pane.set_presence(item.status, header_status(self._state), item.is_contact)

    def go_back(self) -> None:
        """Esc: clear the search field if it has text, else close the open chat."""
        if self.sidebar.filter.hasFocus() and self.sidebar.filter.text():
            self.sidebar.filter.clear()
            return
        self.current_key = None
        self.stack.setCurrentWidget(self.placeholder)
        self.sidebar.select(None)
        self._apply_narrow()
        self._update_reading()
        self.sidebar.view.setFocus()

    def jump_to_chat(self) -> None:
        if self.narrow and self.current_key is not None:
            self.go_back()
        self.sidebar.filter.setFocus()
        self.sidebar.filter.selectAll()

    def next_chat(self) -> None:
        self._step(1)

    def previous_chat(self) -> None:
        self._step(-1)

    def _step(self, direction: int) -> None:
        keys = self.sidebar.keys_in_order()
        if not keys:
            return
        if self.current_key in keys:
            position = keys.index(self.current_key) + direction
        else:
            position = 0 if direction > 0 else len(keys) - 1
        if 0 <= position < len(keys):
            self.open_key(keys[position])

    def _chat_context_menu(self, key: str, position: Any) -> None:
        item = self.conversations.model.item(key)
        menu = self.fill_group_menu(key, QMenu(self)) if item is not None and \
            item.kind == GROUP else self.fill_chat_menu(key, QMenu(self))
        self.chat_menu = menu
        menu.popup(position)

    def toggle_mute_current(self) -> None:
        if self.current_key is not None:
            self.toggle_mute(self.current_key)

    def call_current(self) -> None:
        item = self.conversations.model.item(self.current_key or "")
        if item is not None and item.kind == PERSON:
            self.start_call(item.title)

    # == narrow mode ========================================================================

    def resizeEvent(self, event: Any) -> None:  # noqa: N802
        super().resizeEvent(event)
        narrow = self.width() < NARROW
        if narrow != self.narrow:
            self.narrow = narrow
            self._apply_narrow()

    def _apply_narrow(self) -> None:
        chat_open = self.current_key is not None
        self.sidebar.setVisible(not self.narrow or not chat_open)
        self.stack.setVisible(not self.narrow or chat_open)
        self.server_label.setVisible(not self.narrow)
        for pane in [*self.panes.values(), self.feed, self.notices]:
            pane.set_narrow(self.narrow)
        self._update_reading()

    # == calls ==============================================================================

    def on_call_status(self, status: calls.CallStatus) -> None:
        self.show_call(status)
        if status.state == calls.ENDED and status.end_reason in (
                calls.CANCELLED, calls.NO_ANSWER) and status.incoming:
            from messenger.client.ui.messages import describe_call_end
            self.conversations.add_notice(describe_call_end(status, self.me))
        self._refresh_chats()

    def theme_changed(self) -> None:
        """Light and dark switched: what is drawn from HTML is made again."""
        self.feed.render()
        self.notices.render()
        for pane in self.panes.values():
            pane.view.viewport().update()

    # == closing ============================================================================

    def close_all(self) -> None:
        """Close this window and every window it opened (logout, or back to login), and
        stop listening to the client: the next login gets a fresh main window."""
        self._countdown.stop()
        for signal, slot in self._connections:
            try:
                signal.disconnect(slot)
            except TypeError:
                pass                        # already disconnected
        self._connections = []
        self.conversations.reading = None
        self.close_windows()
        self.close_group_windows()
        self.quit_on_close = False
        self.close()

    def closeEvent(self, event: Any) -> None:  # noqa: N802
        if self.quit_on_close:
            self.quit_requested.emit()
        super().closeEvent(event)
