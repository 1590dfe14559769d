"""The home page: the broadcast feed (with a compose box for accounts that may post) and
the service messages (server notices, missed calls, role changes)."""

from __future__ import annotations

import html
import time
from dataclasses import dataclass
from typing import Any

from PyQt5.QtCore import Qt, QUrl, pyqtSignal
from PyQt5.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from messenger.client.ui import style
from messenger.client.ui.messages import explain, format_when
from messenger.client.ui.widgets import Banner, ComposeEdit, Spinner

PAGE = 20


def _paragraphs(text: str) -> str:
    return html.escape(text).replace("\n", "<br>")


def _card(header: str, body: str, colour: str = "#ffffff", border: str = style.BORDER) -> str:
    # QTextBrowser knows tables, not CSS boxes: one cell per card.
    return (f'<table width="100%" cellspacing="0" cellpadding="12" border="1"'
            f' style="margin-bottom:10px; background-color:{colour}; border-style:solid;'
            f' border-color:{border};">'
            f'<tr><td>{header}<div style="margin-top:6px;">{body}</div></td></tr></table>')


class FeedView(QWidget):
    """Broadcasts, newest first; "Post to everyone" for premium and admin accounts."""

    def __init__(self, client: Any, address: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.client = client
        self.address = address
        self.items: dict[int, Any] = {}
        self.more = False
        self.loading = False
        layout = QVBoxLayout(self)
        layout.setContentsMargins(18, 14, 18, 14)
        layout.setSpacing(10)

        self.compose_box = style.named(QWidget(), "card")
        self.compose_box.setAttribute(Qt.WA_StyledBackground, True)
        box = QVBoxLayout(self.compose_box)
        box.setContentsMargins(14, 12, 14, 12)
        box.addWidget(style.named(QLabel("Post to everyone"), "heading"))
        self.compose = ComposeEdit("Share news with everyone on this server… (Enter posts,"
                                   " Shift+Enter for a new line)", max_lines=5)
        self.compose.submitted.connect(self.post)
        box.addWidget(self.compose)
        row = QHBoxLayout()
        row.addWidget(style.named(QLabel("Your post appears on everyone's home page."),
                                  "muted"), 1)
        self.post_spinner = Spinner(18)
        row.addWidget(self.post_spinner)
        self.post_button = style.set_kind(QPushButton("Broadcast"), "primary")
        self.post_button.clicked.connect(self.post)
        row.addWidget(self.post_button)
        box.addLayout(row)
        self.compose_box.hide()
        layout.addWidget(self.compose_box)

        self.banner = Banner()
        layout.addWidget(self.banner)
        heading = QHBoxLayout()
        heading.addWidget(style.named(QLabel("Broadcasts"), "heading"))
        heading.addStretch(1)
        self.spinner = Spinner(18)
        heading.addWidget(self.spinner)
        layout.addLayout(heading)
        self.browser = QTextBrowser()
        self.browser.setOpenLinks(False)
        self.browser.anchorClicked.connect(self._link)
        self.browser.setStyleSheet(f"QTextBrowser {{ background: {style.BACKGROUND};"
                                   " border: none; }")
        layout.addWidget(self.browser, 1)
        self.render()

    @property
    def can_post(self) -> bool:
        return self.compose_box.isVisibleTo(self)

    def set_can_post(self, allowed: bool) -> None:
        self.compose_box.setVisible(allowed)

    # -- loading --------------------------------------------------------------------------

    def reload(self) -> None:
        self.items.clear()
        self.more = False
        self.load(None)

    def load(self, before: int | None) -> None:
        if self.loading:
            return
        self.loading = True
        self.spinner.start()
        d = self.client.get_broadcasts(before=before, limit=PAGE)
        d.addCallbacks(self._loaded, self._failed)

    def _loaded(self, reply: dict[str, Any]) -> None:
        self.loading = False
        self.spinner.stop()
        for item in reply.get("alert") or []:
            if isinstance(item, dict) and isinstance(item.get("broadcast_id"), int):
                self.items[item["broadcast_id"]] = (item["broadcast_id"], item.get("time", 0),
                                                    str(item.get("from", "")),
                                                    str(item.get("message", "")))
        self.more = bool(reply.get("more"))
        self.render()

    def _failed(self, failure: Any) -> None:
        self.loading = False
        self.spinner.stop()
        self.banner.show_error("The home feed could not be loaded: "
                               + explain(failure, self.address))

    def add(self, broadcast: Any) -> None:
        """A live broadcast (a `Broadcast` event)."""
        self.items[broadcast.broadcast_id] = (broadcast.broadcast_id, broadcast.time,
                                              broadcast.sender, broadcast.text)
        self.render()

    def texts(self) -> list[str]:
        return [item[3] for item in sorted(self.items.values(), reverse=True)]

    def render(self) -> None:
        now = time.time()
        parts = []
        for _, when, sender, text in sorted(self.items.values(), reverse=True):
            colour = style.avatar_colour(sender).name()
            header = (f'<span style="color:{colour}; font-weight:600;">'
                      f'{html.escape(sender)}</span>'
                      f'<span style="color:{style.MUTED};"> · {format_when(when, now)}</span>')
            parts.append(_card(header, _paragraphs(text)))
        if not parts:
            parts.append(f'<p style="color:{style.MUTED};">No broadcasts yet. Premium users'
                         ' can post news here for everyone.</p>')
        if self.more:
            parts.append('<p align="center"><a href="feed:older">Show older posts</a></p>')
        bar = self.browser.verticalScrollBar()
        position = bar.value()
        self.browser.setHtml("".join(parts))
        bar.setValue(position)

    def _link(self, url: QUrl) -> None:
        if url.toString() == "feed:older" and self.items:
            self.load(min(self.items))

    # -- posting --------------------------------------------------------------------------

    def post(self) -> None:
        text = self.compose.toPlainText().strip()
        if not text or not self.post_button.isEnabled():
            return
        self.post_button.setEnabled(False)
        self.post_spinner.start()
        d = self.client.broadcast(text)
        d.addCallbacks(self._posted, self._post_failed, callbackArgs=(text,))

    def _posted(self, reply: dict[str, Any], text: str) -> None:
        self.post_button.setEnabled(True)
        self.post_spinner.stop()
        self.compose.clear()
        self.banner.clear_message()
        me = getattr(self.client.account, "account_name", "")
        broadcast_id = reply.get("broadcast_id")
        if isinstance(broadcast_id, int):
            self.items[broadcast_id] = (broadcast_id, reply.get("time", time.time()), me, text)
        self.render()

    def _post_failed(self, failure: Any) -> None:
        self.post_button.setEnabled(True)
        self.post_spinner.stop()
        self.banner.show_error(explain(failure, self.address))


@dataclass
class NoticeItem:
    time: float
    text: str
    important: bool


class NoticesView(QWidget):
    """Service messages, newest first."""

    added = pyqtSignal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.items: list[NoticeItem] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(18, 14, 18, 14)
        layout.addWidget(style.named(QLabel("Service messages"), "heading"))
        self.browser = QTextBrowser()
        self.browser.setStyleSheet(f"QTextBrowser {{ background: {style.BACKGROUND};"
                                   " border: none; }")
        layout.addWidget(self.browser, 1)
        self.render()

    def add(self, text: str, important: bool = False, when: float | None = None) -> None:
        self.items.append(NoticeItem(when or time.time(), text, important))
        self.render()
        self.added.emit()

    def texts(self) -> list[str]:
        return [item.text for item in self.items]

    def render(self) -> None:
        now = time.time()
        parts = []
        for item in reversed(self.items):
            colour, border = ((style.DANGER_SOFT, "#f5b5b5") if item.important
                              else ("#ffffff", style.BORDER))
            header = f'<span style="color:{style.MUTED};">{format_when(item.time, now)}</span>'
            parts.append(_card(header, _paragraphs(item.text), colour, border))
        if not parts:
            parts.append(f'<p style="color:{style.MUTED};">Nothing yet. Messages from the'
                         ' server, missed calls and changes to your account appear'
                         ' here.</p>')
        self.browser.setHtml("".join(parts))
