"""The "New group" dialog: a name, an optional topic, announcement channel or not, and the
members, ticked among the contacts or typed by account name. Create asks the client core
(``group_create``); the server's refusal (a name that does not exist, a limit) is shown
in the dialog, which stays open with everything still filled in.
"""

from __future__ import annotations

from typing import Any

from PyQt5.QtCore import QSize, Qt, pyqtSignal
from PyQt5.QtWidgets import (
    QCheckBox,
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

from messenger.client.groupevents import GroupInfo
from messenger.client.ui import style
from messenger.client.ui.messages import explain
from messenger.client.ui.widgets import Banner, Spinner, if_alive

NAME_ROLE = Qt.UserRole + 1
MAX_NAME = 64


class NewGroupDialog(QDialog):
    created = pyqtSignal(object)              # GroupInfo (the user its owner)

    def __init__(self, client: Any, contacts: list[str], parent: QWidget | None = None,
                 address: str = "") -> None:
        super().__init__(parent)
        self.client = client
        self.address = address
        self.busy = False
        self.setWindowTitle("New group — Messenger")
        self.setMinimumSize(400, 520)
        self.resize(440, 600)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(20, 18, 20, 16)
        layout.setSpacing(8)
        layout.addWidget(style.named(QLabel("New group"), "heading"))
        self.name = QLineEdit()
        self.name.setPlaceholderText("Group name, e.g. Class 5b")
        self.name.setMaxLength(MAX_NAME)
        self.name.setAccessibleName("Group name")
        self.name.textChanged.connect(lambda _: self._update_buttons())
        layout.addWidget(self.name)
        self.topic = QLineEdit()
        self.topic.setPlaceholderText("Topic (optional)")
        self.topic.setAccessibleName("Topic")
        layout.addWidget(self.topic)
        self.channel = QCheckBox("Announcement channel")
        self.channel.setToolTip("You can change this later, in the members panel.")
        layout.addWidget(self.channel)
        hint = style.named(QLabel("Only you and the admins you choose post; the members"
                                  " read (a teacher's class channel)."), "muted")
        hint.setWordWrap(True)
        layout.addWidget(hint)
        layout.addWidget(style.named(QLabel("Members"), "muted"))
        add_row = QHBoxLayout()
        self.add_name = QLineEdit()
        self.add_name.setPlaceholderText("Add someone by account name…")
        self.add_name.setMaxLength(32)
        self.add_name.returnPressed.connect(self.add_typed)
        add_row.addWidget(self.add_name, 1)
        add_button = QPushButton("Add")
        add_button.clicked.connect(self.add_typed)
        add_row.addWidget(add_button)
        layout.addLayout(add_row)
        self.members = QListWidget()
        self.members.setIconSize(QSize(28, 28))
        self.members.setAccessibleName("Members to add")
        self.members.itemChanged.connect(lambda _: self._update_count())
        layout.addWidget(self.members, 1)
        for name in sorted(contacts, key=str.lower):
            self._member_row(name, checked=False)
        self.count_label = style.named(QLabel(""), "muted")
        layout.addWidget(self.count_label)
        self.banner = Banner()
        layout.addWidget(self.banner)
        buttons = QHBoxLayout()
        self.spinner = Spinner(18)
        buttons.addWidget(self.spinner)
        buttons.addStretch(1)
        cancel = QPushButton("Cancel")
        cancel.clicked.connect(self.reject)
        buttons.addWidget(cancel)
        self.create_button = style.set_kind(QPushButton("Create group"), "primary")
        self.create_button.clicked.connect(self.create)
        buttons.addWidget(self.create_button)
        layout.addLayout(buttons)
        self._update_count()
        self._update_buttons()
        self.name.setFocus()

    def _member_row(self, name: str, checked: bool) -> QListWidgetItem:
        item = QListWidgetItem(style.avatar_icon(name, 28), name)
        item.setData(NAME_ROLE, name)
        item.setFlags(Qt.ItemIsEnabled | Qt.ItemIsUserCheckable | Qt.ItemIsSelectable)
        item.setCheckState(Qt.Checked if checked else Qt.Unchecked)
        self.members.addItem(item)
        return item

    def add_typed(self) -> None:
        """A name typed in: ticked (listed first if it was not there)."""
        name = self.add_name.text().strip().lstrip("@")
        if not name:
            return
        for row in range(self.members.count()):
            item = self.members.item(row)
            if item.data(NAME_ROLE).lower() == name.lower():
                item.setCheckState(Qt.Checked)
                break
        else:
            self._member_row(name, checked=True)
        self.add_name.clear()

    def chosen(self) -> list[str]:
        return [self.members.item(row).data(NAME_ROLE) for row in range(self.members.count())
                if self.members.item(row).checkState() == Qt.Checked]

    def _update_count(self) -> None:
        count = len(self.chosen())
        self.count_label.setText(f"{count} member{'s' if count != 1 else ''} and you"
                                 if count else "Just you so far: tick contacts or add"
                                                " names above.")

    def _update_buttons(self) -> None:
        self.create_button.setEnabled(bool(self.name.text().strip()) and not self.busy)

    def create(self) -> Any:
        name = self.name.text().strip()
        if not name or self.busy:
            return None
        self.busy = True
        self._update_buttons()
        self.spinner.start()
        self.banner.clear_message()
        d = self.client.group_create(name, members=self.chosen(),
                                     topic=self.topic.text().strip() or None,
                                     announce_only=self.channel.isChecked())
        d.addCallbacks(self._created, self._failed)
        return d

    @if_alive
    def _created(self, reply: dict[str, Any]) -> None:
        self.busy = False
        self.spinner.stop()
        self.created.emit(GroupInfo.from_jim(reply["group"]))
        self.accept()

    @if_alive
    def _failed(self, failure: Any) -> None:
        self.busy = False
        self.spinner.stop()
        self._update_buttons()
        self.banner.show_error("The group was not created: " + explain(failure, self.address))
