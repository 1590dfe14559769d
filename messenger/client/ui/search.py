"""Find people by name and add one as a contact."""

from __future__ import annotations

from typing import Any

from PyQt5.QtCore import QSize, Qt, QTimer, pyqtSignal
from PyQt5.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from messenger.client.ui import style
from messenger.client.ui.messages import explain
from messenger.client.ui.widgets import Banner, Spinner

PAGE = 20
NAME_ROLE = Qt.UserRole + 1


class SearchDialog(QDialog):
    """Type part of a name; pick a result; Add contact (or Enter / double-click)."""

    contact_added = pyqtSignal(dict)          # {"account_name", "status"}

    def __init__(self, client: Any, parent: QWidget | None = None, address: str = "") -> None:
        super().__init__(parent)
        self.client = client
        self.address = address
        self.setWindowTitle("Find people — Messenger")
        self.setMinimumSize(420, 460)
        self.resize(460, 520)
        self._query = ""
        self._offset = 0
        self._searching = False
        self._generation = 0

        layout = QVBoxLayout(self)
        layout.setContentsMargins(20, 18, 20, 16)
        layout.setSpacing(10)
        layout.addWidget(style.named(QLabel("Find people"), "heading"))
        row = QHBoxLayout()
        self.query = QLineEdit()
        self.query.setPlaceholderText("Type part of a name…")
        self.query.setClearButtonEnabled(True)
        self.query.setMaxLength(32)
        self.query.textChanged.connect(self._typed)
        self.query.returnPressed.connect(self._enter_in_query)
        row.addWidget(self.query, 1)
        self.spinner = Spinner(18)
        row.addWidget(self.spinner)
        layout.addLayout(row)

        self.results = QListWidget()
        self.results.setIconSize(QSize(32, 32))
        self.results.setSpacing(2)
        self.results.itemDoubleClicked.connect(lambda item: self.add_selected())
        self.results.itemActivated.connect(lambda item: self.add_selected())
        self.results.currentItemChanged.connect(lambda *_: self._update_buttons())
        layout.addWidget(self.results, 1)
        self.note = style.named(QLabel("Results appear as you type."), "muted")
        layout.addWidget(self.note)
        self.banner = Banner()
        layout.addWidget(self.banner)

        buttons = QHBoxLayout()
        self.more_button = QPushButton("More results")
        self.more_button.clicked.connect(self.load_more)
        self.more_button.hide()
        buttons.addWidget(self.more_button)
        buttons.addStretch(1)
        close = QPushButton("Close")
        close.clicked.connect(self.reject)
        buttons.addWidget(close)
        self.add_button = style.set_kind(QPushButton("Add contact"), "primary")
        self.add_button.clicked.connect(self.add_selected)
        self.add_button.setEnabled(False)
        buttons.addWidget(self.add_button)
        layout.addLayout(buttons)

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(250)
        self._debounce.timeout.connect(self.search_now)
        self.query.setFocus()

    def reset(self) -> None:
        """A fresh search (the dialog is reused)."""
        self._debounce.stop()
        self.query.blockSignals(True)
        self.query.clear()
        self.query.blockSignals(False)
        self._query = ""
        self._generation += 1
        self._searching = False
        self.spinner.stop()
        self.results.clear()
        self.more_button.hide()
        self.banner.clear_message()
        self.note.setText("Results appear as you type.")
        self._update_buttons()

    # -- searching ------------------------------------------------------------------------

    def _typed(self, text: str) -> None:
        self._debounce.start()

    def _enter_in_query(self) -> None:
        if self._debounce.isActive() or self.query.text().strip() != self._query:
            self._debounce.stop()
            self.search_now()
        elif self.results.count():
            if self.results.currentRow() < 0:
                self.results.setCurrentRow(0)
            self.results.setFocus()

    def search_now(self) -> None:
        self._query = self.query.text().strip()
        self._offset = 0
        self._generation += 1
        self.results.clear()
        self.banner.clear_message()
        self.more_button.hide()
        if not self._query:
            self.note.setText("Results appear as you type.")
            self._update_buttons()
            return
        self._request()

    def load_more(self) -> None:
        if not self._searching and self._query:
            self._request()

    def _request(self) -> None:
        self._searching = True
        self.spinner.start()
        self.note.setText("Searching…")
        generation = self._generation
        d = self.client.search_users(self._query, offset=self._offset, limit=PAGE)
        d.addCallbacks(self._found, self._failed, callbackArgs=(generation,),
                       errbackArgs=(generation,))

    def _found(self, reply: dict[str, Any], generation: int) -> None:
        if generation != self._generation:
            return
        self._searching = False
        self.spinner.stop()
        people = reply.get("alert") if isinstance(reply.get("alert"), list) else []
        for person in people:
            if not isinstance(person, dict) or "account_name" not in person:
                continue
            name = str(person["account_name"])
            known = bool(person.get("contact"))
            item = QListWidgetItem(style.avatar_icon(name, 32),
                                   f"{name}    (already a contact)" if known else name)
            item.setData(NAME_ROLE, name)
            if known:
                item.setFlags(item.flags() & ~Qt.ItemIsEnabled)
            item.setSizeHint(QSize(0, 40))
            self.results.addItem(item)
        self._offset += len(people)
        more = bool(reply.get("more"))
        self.more_button.setVisible(more)
        count = self.results.count()
        self.note.setText(f"No one matches “{self._query}”." if not count else
                          f"{count} {'person' if count == 1 else 'people'} found"
                          + (" (more available)." if more else "."))
        if self.results.currentRow() < 0:
            for row in range(count):
                if self.results.item(row).flags() & Qt.ItemIsEnabled:
                    self.results.setCurrentRow(row)
                    break
        self._update_buttons()

    def _failed(self, failure: Any, generation: int) -> None:
        if generation != self._generation:
            return
        self._searching = False
        self.spinner.stop()
        self.note.setText("")
        self.banner.show_error(explain(failure, self.address))

    def _update_buttons(self) -> None:
        item = self.results.currentItem()
        self.add_button.setEnabled(item is not None and bool(item.flags() & Qt.ItemIsEnabled))

    # -- adding ---------------------------------------------------------------------------

    def selected_name(self) -> str | None:
        item = self.results.currentItem()
        if item is None or not item.flags() & Qt.ItemIsEnabled:
            return None
        return item.data(NAME_ROLE)

    def add_selected(self) -> None:
        name = self.selected_name()
        if name is None:
            return
        self.add_button.setEnabled(False)
        d = self.client.add_contact(name)
        d.addCallbacks(self._added, self._add_failed)

    def _added(self, reply: dict[str, Any]) -> None:
        contact = reply.get("contact") if isinstance(reply.get("contact"), dict) else {}
        self.contact_added.emit(contact)
        self.accept()

    def _add_failed(self, failure: Any) -> None:
        self._update_buttons()
        self.banner.show_error(explain(failure, self.address))
