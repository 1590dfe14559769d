"""The admin panel's Groups tab: every group on the server (``admin_list_groups``, by
name filter), with its owner, members, topic and whether it is an announcement channel;
**Delete group…** deletes the selected one for all its members after a question (the
server records it in the audit log). A mixin of `AdminPanel` (``client``, ``_call``,
``banner``)."""

from __future__ import annotations

from typing import Any

from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import (
    QHBoxLayout,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from messenger.client.ui import style
from messenger.client.ui.admin_tables import _fill_table, _item, _table, _when_item, _yes

GROUP_COLUMNS = ("Id", "Name", "Owner", "Members", "Channel", "Created", "Topic")


class GroupsTabMixin:
    client: Any
    banner: Any

    def _call(self, deferred: Any, done: Any) -> Any:
        raise NotImplementedError

    def _groups_tab(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 10, 0, 0)
        row = QHBoxLayout()
        self.group_filter = QLineEdit()
        self.group_filter.setPlaceholderText("Filter by group name…")
        self.group_filter.setClearButtonEnabled(True)
        self.group_filter.returnPressed.connect(self.load_groups)
        row.addWidget(self.group_filter, 1)
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.load_groups)
        row.addWidget(refresh)
        self.delete_group_button = style.set_kind(QPushButton("Delete group…"), "danger")
        self.delete_group_button.clicked.connect(self.confirm_delete_group)
        self.delete_group_button.setEnabled(False)
        row.addWidget(self.delete_group_button)
        layout.addLayout(row)
        self.groups_table = _table(GROUP_COLUMNS, stretch=6)
        self.groups_table.itemSelectionChanged.connect(
            lambda: self.delete_group_button.setEnabled(self.selected_group() is not None))
        layout.addWidget(self.groups_table, 1)
        return page

    def load_groups(self) -> Any:
        query = self.group_filter.text().strip() or None
        return self._call(self.client.admin_list_groups(query=query, limit=200),
                          self._groups_loaded)

    def _groups_loaded(self, reply: dict[str, Any]) -> None:
        _fill_table(self.groups_table, reply, lambda group: (
            _item(str(group.get("group_id", "")), group),
            _item(str(group.get("name", ""))), _item(str(group.get("owner", ""))),
            _item(str(group.get("members", ""))), _item(_yes(group.get("announce_only"))),
            _when_item(group.get("created")),
            _item(" ".join(str(group.get("topic", "")).split()))))
        self.delete_group_button.setEnabled(self.selected_group() is not None)

    def selected_group(self) -> dict[str, Any] | None:
        rows = self.groups_table.selectionModel().selectedRows()
        if not rows:
            return None
        item = self.groups_table.item(rows[0].row(), 0)
        return item.data(Qt.UserRole) if item is not None else None

    def select_group(self, group_id: int) -> None:
        for row in range(self.groups_table.rowCount()):
            group = self.groups_table.item(row, 0).data(Qt.UserRole)
            if group.get("group_id") == group_id:
                self.groups_table.selectRow(row)

    def confirm_delete_group(self) -> QMessageBox | None:
        group = self.selected_group()
        if group is None:
            return None
        box = QMessageBox(QMessageBox.Question, "Delete group — Messenger",
                          f"Delete the group “{group.get('name')}”?", QMessageBox.Cancel,
                          self)  # type: ignore[arg-type]
        box.setInformativeText(f"Its {group.get('members')} members lose it and all its"
                               " messages. This is recorded in the audit log and cannot"
                               " be undone.")
        delete = style.set_kind(box.addButton("Delete", QMessageBox.DestructiveRole),
                                "danger")
        box.setDefaultButton(QMessageBox.Cancel)
        box.buttonClicked.connect(
            lambda button: self.delete_group(group) if button is delete else None)
        box.open()
        self.group_box = box
        return box

    def delete_group(self, group: dict[str, Any]) -> Any:
        def deleted(_: Any) -> None:
            self.banner.show_info(f"The group “{group.get('name')}” was deleted.")
            self.load_groups()
        return self._call(self.client.group_delete(int(group["group_id"])), deleted)
