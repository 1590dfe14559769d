"""The admin panel's tables and its two simpler tabs: premium codes (with the dialog that
shows a new code once) and the audit log. `AdminPanel` (admin.py) mixes `CodesAuditMixin`
in; the table helpers are shared."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PyQt5.QtCore import Qt
from PyQt5.QtGui import QGuiApplication
from PyQt5.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from messenger.client.ui import style
from messenger.client.ui.messages import format_clock, format_when

USER_COLUMNS = ("Account", "E-mail", "Admin", "Premium", "Locked", "Online", "Created")
HISTORY_COLUMNS = ("Time", "Address", "Method", "Result")
CODE_COLUMNS = ("Code", "Created by", "Created", "Used by", "Used")
AUDIT_COLUMNS = ("Time", "Who", "Action", "Whom", "Detail")


def _table(columns: tuple[str, ...], stretch: int = 1) -> QTableWidget:
    table = QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels(columns)
    table.setSelectionBehavior(QAbstractItemView.SelectRows)
    table.setSelectionMode(QAbstractItemView.SingleSelection)
    table.setEditTriggers(QAbstractItemView.NoEditTriggers)
    table.verticalHeader().setVisible(False)
    table.setShowGrid(False)
    table.setAlternatingRowColors(False)
    table.verticalHeader().setDefaultSectionSize(30)
    header = table.horizontalHeader()
    header.setHighlightSections(False)
    header.setDefaultAlignment(Qt.AlignLeft | Qt.AlignVCenter)
    for column in range(len(columns)):
        header.setSectionResizeMode(column, QHeaderView.ResizeToContents)
    header.setSectionResizeMode(stretch, QHeaderView.Stretch)
    return table


def _item(text: str, data: Any = None) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    if data is not None:
        item.setData(Qt.UserRole, data)
    return item


def _when_item(stamp: Any, missing: str = "") -> QTableWidgetItem:
    return _item(format_when(stamp) if isinstance(stamp, (int, float)) else missing)


def _fill_table(table: QTableWidget, reply: dict[str, Any],
                cells: Callable[[dict[str, Any]], tuple[QTableWidgetItem, ...]]) -> None:
    """Replace a table's rows with one per object of a list reply (``alert``)."""
    entries = reply.get("alert") if isinstance(reply.get("alert"), list) else []
    table.setRowCount(0)
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        row = table.rowCount()
        table.insertRow(row)
        for column, cell in enumerate(cells(entry)):
            table.setItem(row, column, cell)


def _yes(value: Any) -> str:
    return "yes" if value else "—"


def lock_text(user: dict[str, Any]) -> str:
    if not user.get("locked"):
        return "—"
    until = user.get("locked_until")
    return f"until {format_clock(until)}" if isinstance(until, (int, float)) else \
        "by an administrator"


class CodeDialog(QDialog):
    """A new premium code, shown this once, with a button to copy it."""

    def __init__(self, code: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("New premium code — Messenger")
        self.setMinimumWidth(460)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(22, 20, 22, 18)
        layout.setSpacing(12)
        layout.addWidget(style.named(QLabel("New premium code"), "heading"))
        note = QLabel("Give this code to the person who should get a premium account; they"
                      " enter it when they register. It is shown only this once (the server"
                      " keeps only a hash of it): copy it now.")
        note.setWordWrap(True)
        layout.addWidget(note)
        self.code = QLineEdit(code)
        self.code.setReadOnly(True)
        self.code.setObjectName("code")
        self.code.setStyleSheet('font-family: "DejaVu Sans Mono"; font-size: 17pt;'  # once
                                ' padding: 8px; letter-spacing: 1px;')
        self.code.setAlignment(Qt.AlignCenter)
        layout.addWidget(self.code)
        row = QHBoxLayout()
        row.addStretch(1)
        self.copy_button = style.set_kind(QPushButton("Copy"), "primary")
        self.copy_button.clicked.connect(self.copy)
        row.addWidget(self.copy_button)
        done = QPushButton("Done")
        done.clicked.connect(self.accept)
        row.addWidget(done)
        layout.addLayout(row)
        self.code.selectAll()

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.code.text())
        self.copy_button.setText("Copied")


class CodesAuditMixin:
    """The Premium codes and Audit log tabs (needs ``client`` and ``_call``)."""

    client: Any
    code_dialog: CodeDialog | None

    def _call(self, deferred: Any, done: Any) -> Any:
        raise NotImplementedError

    def _codes_tab(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 10, 0, 0)
        row = QHBoxLayout()
        note = style.named(QLabel("A premium code lets one new account broadcast to"
                                  " everyone. Each code works once."), "muted")
        row.addWidget(note, 1)
        self.create_code_button = style.set_kind(QPushButton("Create premium code"),
                                                 "primary")
        self.create_code_button.clicked.connect(self.create_code)
        row.addWidget(self.create_code_button)
        layout.addLayout(row)
        self.codes_table = _table(CODE_COLUMNS, stretch=3)
        layout.addWidget(self.codes_table, 1)
        return page

    def _audit_tab(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 10, 0, 0)
        row = QHBoxLayout()
        row.addWidget(style.named(QLabel("Every administrator action, newest first."),
                                  "muted"), 1)
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.load_audit)
        row.addWidget(refresh)
        layout.addLayout(row)
        self.audit_table = _table(AUDIT_COLUMNS, stretch=4)
        layout.addWidget(self.audit_table, 1)
        return page

    def create_code(self) -> Any:
        def created(reply: dict[str, Any]) -> None:
            code = str(reply.get("code", ""))
            self.code_dialog = CodeDialog(code, self)
            self.code_dialog.open()
            self.load_codes()
        return self._call(self.client.admin_create_code(), created)

    def load_codes(self) -> Any:
        return self._call(self.client.admin_list_codes(limit=200), self._codes_loaded)

    def _codes_loaded(self, reply: dict[str, Any]) -> None:
        _fill_table(self.codes_table, reply, lambda code: (
            _item(str(code.get("hint", ""))), _item(str(code.get("created_by") or "")),
            _when_item(code.get("created")), _item(str(code.get("used_by") or "not used yet")),
            _when_item(code.get("used"), "—")))

    def load_audit(self) -> Any:
        return self._call(self.client.admin_audit(limit=200), self._audit_loaded)

    def _audit_loaded(self, reply: dict[str, Any]) -> None:
        _fill_table(self.audit_table, reply, lambda entry: (
            _when_item(entry.get("time")), _item(str(entry.get("actor", ""))),
            _item(str(entry.get("action", "")).replace("_", " ")),
            _item(str(entry.get("target") or "—")), _item(str(entry.get("detail") or ""))))
