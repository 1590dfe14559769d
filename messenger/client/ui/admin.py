"""The admin panel: users and their roles and locks, login history, premium codes, audit.

Shown only to administrators; the server checks the role on every admin action whatever
the client shows (a non-admin gets 403).
"""

from __future__ import annotations

from typing import Any

from PyQt5.QtCore import Qt, pyqtSignal
from PyQt5.QtGui import QKeySequence
from PyQt5.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QShortcut,
    QSplitter,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from messenger.client.ui import style
from messenger.client.ui.admin_groups import GroupsTabMixin
from messenger.client.ui.admin_tables import (
    HISTORY_COLUMNS,
    USER_COLUMNS,
    CodeDialog,
    CodesAuditMixin,
    _fill_table,
    _item,
    _table,
    _when_item,
    _yes,
    lock_text,
)
from messenger.client.ui.messages import explain, format_date
from messenger.client.ui.widgets import Spinner, Toast

# How long "Lock account" locks: a label and minutes (None: until an administrator
# unlocks it). A few common choices rather than a number of minutes to type.
LOCK_DURATIONS = (("until unlocked", None), ("15 minutes", 15), ("1 hour", 60),
                  ("1 day", 24 * 60), ("1 week", 7 * 24 * 60), ("30 days", 30 * 24 * 60))


class AdminPanel(GroupsTabMixin, CodesAuditMixin, QWidget):
    """Administration of the server's accounts (for administrators)."""

    users_loaded = pyqtSignal()

    def __init__(self, client: Any, me: str, parent: QWidget | None = None,
                 address: str = "") -> None:
        super().__init__(parent, Qt.Window)
        self.client = client
        self.me = me
        self.address = address
        self.users: list[dict[str, Any]] = []
        self.code_dialog: CodeDialog | None = None
        self.setObjectName("window")
        self.setWindowTitle("Administration — Messenger")
        self.setMinimumSize(900, 560)
        self.resize(1180, 720)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(18, 14, 18, 14)
        layout.setSpacing(10)
        top = QHBoxLayout()
        top.addWidget(style.named(QLabel("Administration"), "title"))
        top.addStretch(1)
        self.spinner = Spinner(20)
        top.addWidget(self.spinner)
        layout.addLayout(top)
        self.tabs = QTabWidget()
        self.tabs.addTab(self._users_tab(), "Users")
        self.tabs.addTab(self._codes_tab(), "Premium codes")
        self.tabs.addTab(self._audit_tab(), "Audit log")
        self.tabs.addTab(self._groups_tab(), "Groups")
        self.tabs.currentChanged.connect(self._tab_changed)
        layout.addWidget(self.tabs, 1)
        # Over the bottom of the tabs, not above them: a status line that appeared just
        # as the user clicked used to push the table down under the mouse.
        self.banner = Toast(self.tabs)
        QShortcut(QKeySequence("F5"), self, activated=self.refresh)
        QShortcut(QKeySequence("Esc"), self, activated=self.close)
        self._busy = 0

    # -- layout ---------------------------------------------------------------------------

    def _users_tab(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 10, 0, 0)
        row = QHBoxLayout()
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter by name…")
        self.filter.setClearButtonEnabled(True)
        self.filter.returnPressed.connect(self.load_users)
        row.addWidget(self.filter, 1)
        refresh = QPushButton("Refresh")
        refresh.setToolTip("Reload (F5)")
        refresh.clicked.connect(self.load_users)
        row.addWidget(refresh)
        layout.addLayout(row)

        body = QHBoxLayout()
        splitter = QSplitter(Qt.Vertical)
        self.users_table = _table(USER_COLUMNS, stretch=1)
        self.users_table.itemSelectionChanged.connect(self._selection_changed)
        splitter.addWidget(self.users_table)
        history_box = QWidget()
        history_layout = QVBoxLayout(history_box)
        history_layout.setContentsMargins(0, 8, 0, 0)
        self.history_label = style.named(QLabel("Login history: select a user"), "heading")
        history_layout.addWidget(self.history_label)
        self.history_table = _table(HISTORY_COLUMNS, stretch=1)
        history_layout.addWidget(self.history_table)
        splitter.addWidget(history_box)
        splitter.setSizes([420, 220])
        body.addWidget(splitter, 1)
        body.addWidget(self._actions())
        layout.addLayout(body, 1)
        return page

    def _actions(self) -> QWidget:
        box = style.named(QWidget(), "card")
        box.setAttribute(Qt.WA_StyledBackground, True)
        box.setMinimumWidth(240)
        column = QVBoxLayout(box)
        column.setContentsMargins(14, 12, 14, 14)
        column.setSpacing(8)
        column.addWidget(style.named(QLabel("SELECTED USER"), "muted"))
        self.selected_label = style.named(QLabel("nobody"), "heading")
        column.addWidget(self.selected_label)
        self.admin_button = QPushButton("Make administrator")
        self.admin_button.clicked.connect(self.toggle_admin)
        column.addWidget(self.admin_button)
        self.premium_button = QPushButton("Give premium")
        self.premium_button.clicked.connect(self.toggle_premium)
        column.addWidget(self.premium_button)
        column.addSpacing(8)
        lock_row = QHBoxLayout()
        lock_row.addWidget(QLabel("Lock for"))
        self.lock_for = QComboBox()
        self.lock_for.setAccessibleName("How long to lock the account")
        for label, minutes in LOCK_DURATIONS:
            self.lock_for.addItem(label, minutes)
        lock_row.addWidget(self.lock_for, 1)
        column.addLayout(lock_row)
        self.lock_button = QPushButton("Lock account")
        self.lock_button.clicked.connect(self.lock)
        column.addWidget(self.lock_button)
        self.unlock_button = QPushButton("Unlock account")
        self.unlock_button.clicked.connect(self.unlock)
        column.addWidget(self.unlock_button)
        column.addSpacing(8)
        self.delete_button = style.set_kind(QPushButton("Delete account…"), "danger")
        self.delete_button.clicked.connect(self.confirm_delete)
        column.addWidget(self.delete_button)
        column.addStretch(1)
        self._action_buttons = [self.admin_button, self.premium_button, self.lock_button,
                                self.unlock_button, self.delete_button, self.lock_for]
        self._update_actions()
        return box

    # -- loading --------------------------------------------------------------------------

    def refresh(self) -> None:
        {0: self.load_users, 1: self.load_codes, 2: self.load_audit,
         3: self.load_groups}.get(
            self.tabs.currentIndex(), self.load_users)()

    def showEvent(self, event: Any) -> None:  # noqa: N802
        super().showEvent(event)
        if not self.users:
            self.load_users()

    def _tab_changed(self, index: int) -> None:
        if index == 1:
            self.load_codes()
        elif index == 2:
            self.load_audit()
        elif index == 3:
            self.load_groups()

    def _call(self, deferred: Any, done: Any) -> Any:
        """Spinner while a request runs; errors as a sentence in the banner."""
        self._busy += 1
        self.spinner.start()

        def finished(result: Any) -> Any:
            self._busy -= 1
            if not self._busy:
                self.spinner.stop()
            return result
        deferred.addBoth(finished)
        deferred.addCallbacks(done, self._failed)
        return deferred

    def _failed(self, failure: Any) -> None:
        self.banner.show_error(explain(failure, self.address))

    def load_users(self) -> Any:
        query = self.filter.text().strip() or None
        return self._call(self.client.admin_list_users(query=query, limit=200),
                          self._users_loaded)

    def _users_loaded(self, reply: dict[str, Any]) -> None:
        selected = self.selected_name()
        users = reply.get("alert") if isinstance(reply.get("alert"), list) else []
        self.users = [u for u in users if isinstance(u, dict) and "account_name" in u]
        table = self.users_table
        table.setRowCount(0)
        for user in self.users:
            self._add_user_row(user)
        if selected is not None:
            self._select(selected)
        self._update_actions()
        self.users_loaded.emit()

    def _add_user_row(self, user: dict[str, Any]) -> None:
        row = self.users_table.rowCount()
        self.users_table.insertRow(row)
        self._fill_user_row(row, user)

    def _fill_user_row(self, row: int, user: dict[str, Any]) -> None:
        name = str(user["account_name"])
        name_item = _item(name, name)
        name_item.setIcon(style.avatar_icon(name, 22, "online" if user.get("online")
                                              else "offline"))
        cells = [name_item, _item(str(user.get("email", ""))), _item(_yes(user.get("admin"))),
                 _item(_yes(user.get("premium"))), _item(lock_text(user)),
                 _item("online" if user.get("online") else "—"),
                 _item(format_date(user["created"]) if isinstance(user.get("created"),
                                                                  (int, float)) else "")]
        for column, cell in enumerate(cells):
            self.users_table.setItem(row, column, cell)

    def _select(self, name: str) -> None:
        for row in range(self.users_table.rowCount()):
            if self.users_table.item(row, 0).data(Qt.UserRole).lower() == name.lower():
                self.users_table.selectRow(row)
                return

    def select_user(self, name: str) -> None:
        self._select(name)

    def selected_name(self) -> str | None:
        rows = self.users_table.selectionModel().selectedRows()
        if not rows:
            return None
        return self.users_table.item(rows[0].row(), 0).data(Qt.UserRole)

    def selected_user(self) -> dict[str, Any] | None:
        name = self.selected_name()
        for user in self.users:
            if name is not None and user["account_name"].lower() == name.lower():
                return user
        return None

    def _selection_changed(self) -> None:
        self._update_actions()
        name = self.selected_name()
        self.history_table.setRowCount(0)
        if name is None:
            self.history_label.setText("Login history: select a user")
            return
        self.history_label.setText(f"Login history of {name}")
        d = self.client.admin_login_history(name, limit=50)
        d.addCallbacks(lambda reply: self._history_loaded(name, reply),
                       lambda failure: self._history_failed(name, failure))

    def _history_loaded(self, name: str, reply: dict[str, Any]) -> None:
        if self.selected_name() != name:
            return
        def cells(entry: dict[str, Any]) -> tuple[QTableWidgetItem, ...]:
            ok = entry.get("success")
            result = _item("succeeded" if ok else "failed")
            result.setForeground(Qt.darkGreen if ok else Qt.red)
            return (_when_item(entry.get("time")), _item(str(entry.get("address", ""))),
                    _item(str(entry.get("method", ""))), result)
        _fill_table(self.history_table, reply, cells)
        if not self.history_table.rowCount():
            self.history_label.setText(f"Login history of {name}: no logins yet")

    def _history_failed(self, name: str, failure: Any) -> None:
        if self.selected_name() == name:        # else: stale (the user may be gone)
            self.history_label.setText(f"Login history of {name}: "
                                       + explain(failure, self.address))

    def _update_actions(self) -> None:
        user = self.selected_user()
        for widget in self._action_buttons:
            widget.setEnabled(user is not None)
        if user is None:
            self.selected_label.setText("Select a user")
            return
        self.selected_label.setText(user["account_name"])
        self.admin_button.setText("Remove administrator" if user.get("admin")
                                  else "Make administrator")
        self.premium_button.setText("Remove premium" if user.get("premium")
                                    else "Give premium")
        self.unlock_button.setEnabled(bool(user.get("locked")))
        mine = user["account_name"].lower() == self.me.lower()
        self.lock_button.setEnabled(not mine)
        self.delete_button.setEnabled(not mine)

    # -- actions --------------------------------------------------------------------------

    def _user_changed(self, reply: dict[str, Any], sentence: str) -> None:
        user = reply.get("user")
        if isinstance(user, dict) and "account_name" in user:
            for position, known in enumerate(self.users):
                if known["account_name"].lower() == user["account_name"].lower():
                    self.users[position] = user
            for row in range(self.users_table.rowCount()):
                if self.users_table.item(row, 0).data(Qt.UserRole).lower() == \
                        user["account_name"].lower():
                    self._fill_user_row(row, user)
        self._update_actions()
        self.banner.show_info(sentence)

    def toggle_admin(self) -> Any:
        user = self.selected_user()
        if user is None:
            return None
        value = not user.get("admin")
        name = user["account_name"]
        sentence = (f"{name} is now an administrator." if value
                    else f"{name} is no longer an administrator.")
        return self._call(self.client.admin_set_admin(name, value),
                          lambda reply: self._user_changed(reply, sentence))

    def toggle_premium(self) -> Any:
        user = self.selected_user()
        if user is None:
            return None
        value = not user.get("premium")
        name = user["account_name"]
        sentence = f"{name} is now premium." if value else f"{name} is no longer premium."
        return self._call(self.client.admin_set_premium(name, value),
                          lambda reply: self._user_changed(reply, sentence))

    def lock(self) -> Any:
        user = self.selected_user()
        if user is None:
            return None
        name = user["account_name"]
        minutes = self.lock_for.currentData() or None
        sentence = (f"{name} is locked for {self.lock_for.currentText()} and was logged out."
                    if minutes else
                    f"{name} is locked until an administrator unlocks the account.")
        return self._call(self.client.admin_lock(name, minutes),
                          lambda reply: self._user_changed(reply, sentence))

    def unlock(self) -> Any:
        user = self.selected_user()
        if user is None:
            return None
        name = user["account_name"]
        return self._call(self.client.admin_unlock(name),
                          lambda reply: self._user_changed(reply,
                                                           f"{name} can log in again."))

    def confirm_delete(self) -> QMessageBox | None:
        user = self.selected_user()
        if user is None:
            return None
        name = user["account_name"]
        box = QMessageBox(QMessageBox.Warning, "Delete account — Messenger",
                          f"Delete the account {name}?",
                          QMessageBox.Cancel, self)
        box.setInformativeText("Their contacts, messages, login history and saved logins are"
                               " deleted for good. Their broadcasts stay.")
        delete = box.addButton("Delete account", QMessageBox.DestructiveRole)
        style.set_kind(delete, "danger")
        box.setDefaultButton(QMessageBox.Cancel)
        box.buttonClicked.connect(
            lambda button: self.delete_user(name) if button is delete else None)
        box.open()
        self.confirm_box = box
        return box

    def delete_user(self, name: str) -> Any:
        def deleted(reply: dict[str, Any]) -> None:
            self.banner.show_info(f"The account {name} was deleted.")
            self.load_users()
        return self._call(self.client.admin_delete_user(name), deleted)
