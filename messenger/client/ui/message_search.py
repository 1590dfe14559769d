"""Search messages (Ctrl+Shift+F): full-text search over the user's own conversations,
direct and groups (the server ranks; ``search_messages`` pages), each result with its
conversation, sender, day and the matching words highlighted. Activating a result opens
its chat at that message (``open_message``: loading older pages until it is there).
"""

from __future__ import annotations

import html
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
from messenger.client.ui.messages import explain, format_day
from messenger.client.ui.widgets import Banner, Spinner, if_alive

PAGE = 20
RESULT_ROLE = Qt.UserRole + 3


def highlighted_html(text: str, matches: Any) -> str:
    """The text as rich text with each ``(start, length)`` span (Python string indexes)
    marked; everything else escaped."""
    out, at = [], 0
    colour = style.PALETTE.accent_soft
    for start, length in sorted(matches):
        if start < at:
            continue
        out.append(html.escape(text[at:start]))
        out.append(f'<b style="background:{colour}">'
                   f"{html.escape(text[start:start + length])}</b>")
        at = start + length
    out.append(html.escape(text[at:]))
    return "".join(out).replace("\n", "<br>")


class MessageSearchDialog(QDialog):
    open_message = pyqtSignal(object)        # IncomingMessage of the result chosen

    def __init__(self, client: Any, me: str, group_names: Any,
                 parent: QWidget | None = None, address: str = "") -> None:
        super().__init__(parent)
        self.client, self.me, self.address = client, me, address
        self.group_names = group_names       # group id -> name
        self._query, self._offset, self._generation = "", 0, 0
        self.setWindowTitle("Search messages — Messenger")
        self.setMinimumSize(420, 460)
        self.resize(560, 600)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(20, 18, 20, 16)
        layout.setSpacing(10)
        layout.addWidget(style.named(QLabel("Search messages"), "heading"))
        row = QHBoxLayout()
        self.query = QLineEdit()
        self.query.setPlaceholderText("Words in your messages…")
        self.query.setClearButtonEnabled(True)
        self.query.textChanged.connect(lambda _: self._debounce.start())
        self.query.returnPressed.connect(self.search_now)
        row.addWidget(self.query, 1)
        self.spinner = Spinner(18)
        row.addWidget(self.spinner)
        layout.addLayout(row)
        self.results = QListWidget()
        self.results.setWordWrap(True)
        self.results.itemActivated.connect(self._chosen)
        self.results.itemClicked.connect(self._chosen)
        layout.addWidget(self.results, 1)
        self.note = style.named(QLabel("Every word must occur; a word also finds the"
                                       " words that start with it."), "muted")
        self.note.setWordWrap(True)
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
        layout.addLayout(buttons)
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(300)
        self._debounce.timeout.connect(self.search_now)

    def search_now(self) -> Any:
        self._debounce.stop()
        query = self.query.text().strip()
        self._query, self._offset = query, 0
        self._generation += 1
        self.results.clear()
        self.more_button.hide()
        self.banner.clear_message()
        if not query:
            return None
        return self._fetch()

    def load_more(self) -> Any:
        return self._fetch()

    def _fetch(self) -> Any:
        generation = self._generation
        self.spinner.start()
        d = self.client.search_messages(self._query, offset=self._offset, limit=PAGE)
        d.addCallbacks(self._page, self._failed, callbackArgs=(generation,),
                       errbackArgs=(generation,))
        return d

    @if_alive
    def _page(self, page: Any, generation: int) -> None:
        if generation != self._generation:
            return                            # an older query's answer
        self.spinner.stop()
        for result in page.results:
            self._add(result)
        self._offset = page.next_offset
        self.more_button.setVisible(page.more)
        self.note.setText(f"{self.results.count()} found" if self.results.count()
                          else f"Nothing found for “{self._query}”.")

    @if_alive
    def _failed(self, failure: Any, generation: int) -> None:
        if generation == self._generation:
            self.spinner.stop()
            self.banner.show_error(explain(failure, self.address))

    def where(self, message: Any) -> str:
        if message.group is not None:
            return self.group_names(message.group)
        own = message.sender.lower() == self.me.lower()
        return (message.recipient or "") if own else message.sender

    def _add(self, result: Any) -> None:
        message = result.message
        who = "You" if message.sender.lower() == self.me.lower() else message.sender
        label = QLabel(f"<span style='color:{style.PALETTE.muted}'>"
                       f"{html.escape(self.where(message))} · {html.escape(who)} · "
                       f"{html.escape(format_day(message.time))}</span><br>"
                       + highlighted_html(message.text, result.matches))
        label.setTextFormat(Qt.RichText)
        label.setWordWrap(True)
        label.setContentsMargins(8, 6, 8, 6)
        label.setAttribute(Qt.WA_TransparentForMouseEvents)
        item = QListWidgetItem()
        item.setData(RESULT_ROLE, result)
        width = max(200, self.results.viewport().width() - 4)
        item.setSizeHint(QSize(width, label.heightForWidth(width)))
        self.results.addItem(item)
        self.results.setItemWidget(item, label)

    def _chosen(self, item: QListWidgetItem) -> None:
        result = item.data(RESULT_ROLE)
        if result is not None:
            self.open_message.emit(result.message)
