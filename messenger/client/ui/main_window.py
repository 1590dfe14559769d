"""The main window: contacts with presence and unread counts, the home feed, service
messages, the connection in the status bar, and the doors to chats, calls, search and
the admin panel."""

from __future__ import annotations

from typing import Any

from PyQt5.QtCore import QSortFilterProxyModel, Qt, QTimer, pyqtSignal
from PyQt5.QtGui import QIcon, QKeySequence
from PyQt5.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QMainWindow,
    QMenu,
    QPushButton,
    QShortcut,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from messenger.client.calls import controller as calls
from messenger.client.events import AccountInfo, ConnectionState, State
from messenger.client.ui import style
from messenger.client.ui.admin import AdminPanel
from messenger.client.ui.call_window import CallWindow
from messenger.client.ui.chat import ChatWindow
from messenger.client.ui.contacts import ContactDelegate, ContactsModel
from messenger.client.ui.feed import FeedView, NoticesView
from messenger.client.ui.messages import describe_call_end, describe_state, explain
from messenger.client.ui.search import SearchDialog
from messenger.client.ui.widgets import Avatar

STATE_COLOURS = {"online": style.PRESENCE_COLOURS["online"], "syncing": "#22c55e",
                 "reconnecting": style.WARNING, "connecting": style.WARNING,
                 "handshaking": style.WARNING, "logging_in": style.WARNING}
PREVIEW = 120


class MainWindow(QMainWindow):
    logout_requested = pyqtSignal()
    settings_requested = pyqtSignal()
    quit_requested = pyqtSignal()

    def __init__(self, client: Any, bridge: Any, call_controller: Any, call_bridge: Any,
                 notifier: Any, me: str, address: str, reactor: Any = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        if reactor is None:
            from twisted.internet import reactor as default_reactor
            reactor = default_reactor
        self.client = client
        self.bridge = bridge
        self.calls = call_controller
        self.call_bridge = call_bridge
        self.notifier = notifier
        self.me = me
        self.address = address
        self.reactor = reactor
        self.account: AccountInfo | None = client.account
        self.chats: dict[str, ChatWindow] = {}
        self.admin_panel: AdminPanel | None = None
        self.search_dialog: SearchDialog | None = None
        self.call_window: CallWindow | None = None
        self.quit_on_close = False
        self.setWindowTitle(f"Messenger — {me}")
        self.setMinimumSize(900, 560)
        self.resize(1280, 800)

        self.contacts = ContactsModel(self)
        central = QWidget()
        central.setObjectName("window")
        row = QHBoxLayout(central)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(0)
        row.addWidget(self._sidebar())
        row.addWidget(self._main_area(), 1)
        self.setCentralWidget(central)
        self._status_bar()
        self._shortcuts()

        self._countdown = QTimer(self)
        self._countdown.setInterval(1000)
        self._countdown.timeout.connect(self._refresh_state)

        self._connections = [
            (bridge.state, self.on_state), (bridge.message, self.on_message),
            (bridge.message_status, self.on_message_status),
            (bridge.presence, self.on_presence), (bridge.broadcast, self.on_broadcast),
            (bridge.account, self.on_account), (bridge.notice, self.on_notice),
            (bridge.server_key, self.on_server_key),
            (call_bridge.status, self.on_call_status)]
        for signal, slot in self._connections:
            signal.connect(slot)
        if self.account is not None:
            self.on_account(self.account)
        self.on_state(client.state)

    # == layout =============================================================================

    def _sidebar(self) -> QWidget:
        sidebar = style.named(QWidget(), "sidebar")
        sidebar.setAttribute(Qt.WA_StyledBackground, True)
        sidebar.setFixedWidth(320)
        layout = QVBoxLayout(sidebar)
        layout.setContentsMargins(14, 16, 14, 12)
        layout.setSpacing(10)

        profile = QHBoxLayout()
        profile.setSpacing(10)
        self.my_avatar = Avatar(self.me, 46)
        self.my_avatar.set_presence("online")
        profile.addWidget(self.my_avatar)
        names = QVBoxLayout()
        names.setSpacing(2)
        self.me_label = style.named(QLabel(self.me), "heading")
        names.addWidget(self.me_label)
        badges = QHBoxLayout()
        badges.setSpacing(4)
        self.admin_badge = style.named(QLabel("admin"), "badge")
        self.premium_badge = style.named(QLabel("premium"), "badge")
        for badge in (self.admin_badge, self.premium_badge):
            badge.hide()
            badges.addWidget(badge)
        badges.addStretch(1)
        names.addLayout(badges)
        profile.addLayout(names, 1)
        self.presence_box = QComboBox()
        self.presence_box.addItem(QIcon(style.dot_pixmap(style.PRESENCE_COLOURS["online"])),
                                  "Online", "online")
        self.presence_box.addItem(QIcon(style.dot_pixmap(style.PRESENCE_COLOURS["away"])),
                                  "Away", "away")
        self.presence_box.setToolTip("Your presence, as your contacts see it")
        self.presence_box.activated.connect(self._presence_chosen)
        profile.addWidget(self.presence_box)
        layout.addLayout(profile)

        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter contacts  (Ctrl+K)")
        self.filter.setClearButtonEnabled(True)
        layout.addWidget(self.filter)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.contacts)
        self.proxy.setFilterCaseSensitivity(Qt.CaseInsensitive)
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        self.filter.returnPressed.connect(self._open_first_match)

        header = QHBoxLayout()
        header.addWidget(style.named(QLabel("CONTACTS"), "muted"))
        header.addStretch(1)
        self.contact_count = style.named(QLabel(""), "muted")
        header.addWidget(self.contact_count)
        layout.addLayout(header)

        self.contact_view = QListView()
        self.contact_view.setObjectName("contacts")
        self.contact_view.setModel(self.proxy)
        self.contact_view.setItemDelegate(ContactDelegate(self.contact_view))
        self.contact_view.setMouseTracking(True)
        self.contact_view.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.contact_view.setSelectionMode(QAbstractItemView.SingleSelection)
        self.contact_view.setContextMenuPolicy(Qt.CustomContextMenu)
        self.contact_view.customContextMenuRequested.connect(self._contact_menu)
        self.contact_view.doubleClicked.connect(self._contact_activated)
        self.contact_view.activated.connect(self._contact_activated)
        self.contact_view.setAccessibleName("Contacts")
        self.contact_view.selectionModel().currentChanged.connect(
            lambda *_: self._update_actions())
        self.contacts.rowsInserted.connect(lambda *_: self._contacts_changed())
        self.contacts.rowsRemoved.connect(lambda *_: self._contacts_changed())
        self.contacts.modelReset.connect(self._contacts_changed)
        self.contacts.dataChanged.connect(lambda *_: self._update_actions())
        layout.addWidget(self.contact_view, 1)

        self.empty_note = style.named(QLabel("No contacts yet. Find people to add them."),
                                      "muted")
        self.empty_note.setWordWrap(True)
        layout.addWidget(self.empty_note)
        self.add_button = style.set_kind(QPushButton("Find people…"), "primary")
        self.add_button.setToolTip("Search for people and add them as contacts (Ctrl+F)")
        self.add_button.clicked.connect(self.open_search)
        layout.addWidget(self.add_button)
        return sidebar

    def _main_area(self) -> QWidget:
        area = QWidget()
        layout = QVBoxLayout(area)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        bar = style.named(QWidget(), "header")
        bar.setAttribute(Qt.WA_StyledBackground, True)
        row = QHBoxLayout(bar)
        row.setContentsMargins(18, 10, 18, 10)
        row.setSpacing(8)
        self.selected_avatar = Avatar("", 34)
        self.selected_avatar.hide()
        row.addWidget(self.selected_avatar)
        self.selected_label = style.named(QLabel("Select a contact to chat or call"), "muted")
        row.addWidget(self.selected_label, 1)
        self.chat_button = style.set_kind(QPushButton("Open chat"), "primary")
        self.chat_button.setToolTip("Open the conversation (Enter, or double-click)")
        self.chat_button.clicked.connect(lambda: self._with_selected(self.open_chat))
        row.addWidget(self.chat_button)
        self.call_button = style.set_kind(QPushButton("Call"), "success")
        self.call_button.setToolTip("Start a voice call (Ctrl+Shift+C)")
        self.call_button.clicked.connect(lambda: self._with_selected(self.start_call))
        row.addWidget(self.call_button)
        row.addSpacing(12)
        self.admin_button = QPushButton("Admin panel")
        self.admin_button.setToolTip("Users, roles, locks, premium codes (Ctrl+Shift+A)")
        self.admin_button.clicked.connect(self.open_admin)
        self.admin_button.hide()
        row.addWidget(self.admin_button)
        self.menu_button = QPushButton("Account ▾")
        menu = QMenu(self)
        menu.addAction("Server settings…", self.settings_requested)
        menu.addSeparator()
        menu.addAction("Log out", self.logout_requested)
        quit_action = menu.addAction("Quit", self.quit_requested, QKeySequence("Ctrl+Q"))
        self.addAction(quit_action)                 # the shortcut works with the menu shut
        self.menu_button.setMenu(menu)
        self.account_menu = menu
        row.addWidget(self.menu_button)
        layout.addWidget(bar)

        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.feed = FeedView(self.client, self.address)
        self.notices = NoticesView()
        self.tabs.addTab(self.feed, "Home")
        self.tabs.addTab(self.notices, "Notices")
        self.notices.added.connect(self._notice_added)
        self.tabs.currentChanged.connect(self._tab_changed)
        self._unseen_notices = 0
        layout.addWidget(self.tabs, 1)
        return area

    def _status_bar(self) -> None:
        bar = self.statusBar()
        bar.setSizeGripEnabled(True)
        self.state_dot = QLabel()
        self.state_label = QLabel("")
        self.state_label.setAccessibleName("Connection state")
        bar.addWidget(self.state_dot)
        bar.addWidget(self.state_label, 1)
        self.server_label = style.named(QLabel(f"{self.me} @ {self.address}"), "muted")
        bar.addPermanentWidget(self.server_label)

    def _shortcuts(self) -> None:
        QShortcut(QKeySequence("Ctrl+F"), self, activated=self.open_search)
        QShortcut(QKeySequence("Ctrl+K"), self, activated=self.filter.setFocus)
        QShortcut(QKeySequence("Ctrl+Shift+C"), self,
                  activated=lambda: self._with_selected(self.start_call))
        QShortcut(QKeySequence("Ctrl+Shift+A"), self, activated=self.open_admin)
        QShortcut(QKeySequence("Ctrl+1"), self, activated=lambda: self.tabs.setCurrentIndex(0))
        QShortcut(QKeySequence("Ctrl+2"), self, activated=lambda: self.tabs.setCurrentIndex(1))

    # == the connection ====================================================================

    def on_state(self, state: ConnectionState) -> None:
        was_logged_in = getattr(self, "_logged_in", False)
        self._state = state
        self._logged_in = state.logged_in
        self._refresh_state()
        if state.name == State.RECONNECTING:
            self._countdown.start()
        else:
            self._countdown.stop()
        if state.logged_in and not was_logged_in:
            self.reload()
            for chat in self.chats.values():
                chat.connection_ready()
        self._update_actions()

    def _refresh_state(self) -> None:
        state = self._state
        self.state_label.setText(describe_state(state, self.reactor.seconds()))
        colour = STATE_COLOURS.get(state.name, style.PRESENCE_COLOURS["offline"])
        self.state_dot.setPixmap(style.dot_pixmap(colour, 10))
        if state.reason:
            self.state_label.setToolTip(explain(state.error, self.address)
                                        if state.error is not None else state.reason)
        else:
            self.state_label.setToolTip("")

    def reload(self) -> None:
        """After each login: contacts with presence, and the home feed."""
        d = self.client.get_contacts()
        d.addCallbacks(lambda reply: self.contacts.set_contacts(reply.get("alert") or []),
                       lambda failure: self.notices.add(
                           "Your contacts could not be loaded: "
                           + explain(failure, self.address)))
        self.feed.reload()

    # == events from the core ===============================================================

    def on_message(self, message: Any) -> None:
        own = message.sender.lower() == self.me.lower()
        peer = message.recipient if own else message.sender
        chat = self.chats.get(peer.lower())
        if chat is not None:
            chat.add_incoming(message)
        if own or (chat is not None and chat.is_in_front()):
            return
        self.contacts.add_unread(peer)
        self.update_title()
        if not message.from_sync:
            text = message.text if len(message.text) <= PREVIEW else \
                message.text[:PREVIEW - 1] + "…"
            self.notifier.notify(f"New message from {peer}", text)

    def on_message_status(self, outgoing: Any) -> None:
        chat = self.chats.get(outgoing.to.lower())
        if chat is not None:
            chat.update_outgoing(outgoing)

    def on_presence(self, change: Any) -> None:
        self.contacts.set_status(change.account_name, change.status)
        chat = self.chats.get(change.account_name.lower())
        if chat is not None:
            chat.set_presence(change.status)

    def on_broadcast(self, broadcast: Any) -> None:
        self.feed.add(broadcast)
        if not self.isActiveWindow():
            self.notifier.notify(f"Broadcast from {broadcast.sender}", broadcast.text[:PREVIEW])

    def on_account(self, account: AccountInfo) -> None:
        previous = self.account
        self.account = account
        self.admin_badge.setVisible(account.admin)
        self.premium_badge.setVisible(account.premium)
        self.admin_button.setVisible(account.admin)
        self.feed.set_can_post(account.premium or account.admin)
        if previous is not None and previous != account:
            for role, before, now in (("an administrator", previous.admin, account.admin),
                                      ("premium", previous.premium, account.premium)):
                if before != now:
                    self.notices.add(f"You are {'now' if now else 'no longer'} {role}.",
                                     important=True)
        if not account.admin and self.admin_panel is not None:
            self.admin_panel.close()
            self.admin_panel = None

    def on_notice(self, notice: Any) -> None:
        important = notice.level != 100
        self.notices.add(notice.message, important=important, when=notice.time or None)
        if important:
            self.notifier.notify("Messenger", notice.message)

    def on_server_key(self, event: Any) -> None:
        if event.first_use:
            self.notices.add(f"This is the first connection to {event.address}; its key"
                             f" {event.fingerprint} is now remembered. Compare it with the"
                             " fingerprint your administrator published.")
        else:
            self.notices.add(f"You trusted a new key for {event.address}: {event.fingerprint}"
                             f" (it replaced {event.replaced}).", important=True)

    def _notice_added(self) -> None:
        if self.tabs.currentWidget() is not self.notices:
            self._unseen_notices += 1
            self.tabs.setTabText(1, f"Notices ({self._unseen_notices})")

    def _tab_changed(self, index: int) -> None:
        if self.tabs.widget(index) is self.notices:
            self._unseen_notices = 0
            self.tabs.setTabText(1, "Notices")

    # == unread =============================================================================

    def total_unread(self) -> int:
        return self.contacts.total_unread()

    def update_title(self) -> None:
        total = self.total_unread()
        self.setWindowTitle(f"({total}) Messenger — {self.me}" if total
                            else f"Messenger — {self.me}")
        self.notifier.set_unread(total)

    def mark_read(self, peer: str) -> None:
        self.contacts.clear_unread(peer)
        self.update_title()

    # == contacts ===========================================================================

    def selected_contact(self) -> str | None:
        index = self.contact_view.currentIndex()
        return index.data(Qt.DisplayRole) if index.isValid() else None

    def select_contact(self, name: str) -> None:
        row = self.contacts.row_of(name)
        if row is not None:
            index = self.proxy.mapFromSource(self.contacts.index(row))
            self.contact_view.setCurrentIndex(index)

    def _with_selected(self, action: Any) -> None:
        name = self.selected_contact()
        if name is not None:
            action(name)

    def _contact_activated(self, index: Any) -> None:
        name = index.data(Qt.DisplayRole)
        if name:
            self.open_chat(name)

    def _open_first_match(self) -> None:
        if self.proxy.rowCount():
            index = self.proxy.index(0, 0)
            self.contact_view.setCurrentIndex(index)
            self._contact_activated(index)

    def _contacts_changed(self) -> None:
        count = sum(1 for name in self.contacts.names()
                    if (c := self.contacts.contact(name)) is not None and c.is_contact)
        self.contact_count.setText(str(count) if count else "")
        self.empty_note.setVisible(self.contacts.rowCount() == 0)
        self._update_actions()

    def _update_actions(self) -> None:
        name = self.selected_contact()
        online = getattr(self, "_logged_in", False)
        self.chat_button.setEnabled(name is not None)
        status = self.contacts.status_of(name) if name else "offline"
        contact = self.contacts.contact(name) if name else None
        self.call_button.setEnabled(online and name is not None and status != "offline"
                                    and contact is not None and contact.is_contact
                                    and not self.calls.status.live)
        if name is None:
            self.selected_avatar.hide()
            self.selected_label.setText("Select a contact to chat or call")
            self.selected_label.setObjectName("muted")
        else:
            self.selected_avatar.set_name(name)
            self.selected_avatar.set_presence(status)
            self.selected_avatar.show()
            self.selected_label.setText(f"{name} · {style.PRESENCE_WORDS.get(status, status)}")
            self.selected_label.setObjectName("heading")
        self.selected_label.style().unpolish(self.selected_label)
        self.selected_label.style().polish(self.selected_label)

    def _contact_menu(self, position: Any) -> None:
        index = self.contact_view.indexAt(position)
        if not index.isValid():
            return
        name = index.data(Qt.DisplayRole)
        menu = QMenu(self)
        menu.addAction("Open chat", lambda: self.open_chat(name))
        call = menu.addAction("Call", lambda: self.start_call(name))
        call.setEnabled(self.contacts.status_of(name) != "offline")
        contact = self.contacts.contact(name)
        if contact is not None and contact.is_contact:
            menu.addAction("Remove from contacts", lambda: self.remove_contact(name))
        else:
            menu.addAction("Add to contacts", lambda: self.add_contact(name))
        menu.popup(self.contact_view.viewport().mapToGlobal(position))

    def open_search(self) -> SearchDialog:
        if self.search_dialog is None:
            self.search_dialog = SearchDialog(self.client, self, self.address)
            self.search_dialog.contact_added.connect(self._contact_added)
        if not self.search_dialog.isVisible():
            self.search_dialog.reset()
        self.search_dialog.show()
        self.search_dialog.raise_()
        self.search_dialog.activateWindow()
        self.search_dialog.query.setFocus()
        return self.search_dialog

    def _contact_added(self, contact: dict[str, Any]) -> None:
        name = contact.get("account_name")
        if isinstance(name, str):
            self.contacts.add(name, str(contact.get("status", "offline")))
            self.select_contact(name)
            self.contact_view.setFocus()
            self.statusBar().showMessage(f"{name} was added to your contacts.", 5000)

    def add_contact(self, name: str) -> None:
        d = self.client.add_contact(name)
        d.addCallbacks(lambda reply: self._contact_added(reply.get("contact") or {}),
                       lambda failure: self.notices.add(explain(failure, self.address)))

    def remove_contact(self, name: str) -> None:
        d = self.client.del_contact(name)
        d.addCallbacks(lambda _: self.contacts.remove(name),
                       lambda failure: self.notices.add(explain(failure, self.address)))

    def _presence_chosen(self, index: int) -> None:
        status = self.presence_box.itemData(index)
        self.my_avatar.set_presence(status)
        self.client.set_presence(status).addErrback(
            lambda failure: self.statusBar().showMessage(explain(failure, self.address),
                                                         8000))

    # == chats ==============================================================================

    def open_chat(self, peer: str) -> ChatWindow:
        key = peer.lower()
        chat = self.chats.get(key)
        if chat is None:
            chat = ChatWindow(self.client, self.me, peer, address=self.address)
            chat.activated.connect(self.mark_read)
            chat.call_requested.connect(self.start_call)
            self.chats[key] = chat
        chat.set_presence(self.contacts.status_of(peer))
        chat.show()
        chat.raise_()
        chat.activateWindow()
        self.mark_read(peer)
        return chat

    # == calls ==============================================================================

    def start_call(self, peer: str) -> None:
        if self.calls.status.live:
            if self.call_window is not None:
                self.call_window.show()
                self.call_window.raise_()
            return
        self.calls.dial(peer).addErrback(lambda _: None)   # the call window says why

    def on_call_status(self, status: calls.CallStatus) -> None:
        if status.state in (calls.OUTGOING, calls.INCOMING) and (
                self.call_window is None or self.call_window.finished):
            if self.call_window is not None:
                self.call_window.close()
            self.call_window = CallWindow(self.calls, self.call_bridge, self.me)
            self.call_window.show()
            self.call_window.raise_()
            self.call_window.activateWindow()
            if status.state == calls.INCOMING:
                self.notifier.notify("Incoming call", f"{status.peer} is calling you.")
        if status.state == calls.ENDED and status.end_reason in (
                calls.CANCELLED, calls.NO_ANSWER) and status.incoming:
            self.notices.add(describe_call_end(status, self.me))
        self._update_actions()

    # == admin ==============================================================================

    def open_admin(self) -> AdminPanel | None:
        if self.account is None or not self.account.admin:
            return None
        if self.admin_panel is None:
            self.admin_panel = AdminPanel(self.client, self.me, address=self.address)
        self.admin_panel.show()
        self.admin_panel.raise_()
        self.admin_panel.activateWindow()
        return self.admin_panel

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
        for window in [*self.chats.values(), self.admin_panel, self.search_dialog,
                       self.call_window]:
            if window is not None:
                window.close()
        self.quit_on_close = False
        self.close()

    def closeEvent(self, event: Any) -> None:  # noqa: N802
        if self.quit_on_close:
            self.quit_requested.emit()
        super().closeEvent(event)
