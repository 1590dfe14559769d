"""Two entries of the chat list that are not conversations: Home, the broadcast feed (with
a compose box for accounts that may post), and Messenger, the service messages (server
notices, missed calls, role changes, server keys). Both are panes with the same header
as a conversation; their text can be selected and copied, and links open."""

from __future__ import annotations

import html
import time
from typing import Any

from PyQt5.QtCore import Qt, QUrl
from PyQt5.QtGui import QDesktopServices
from PyQt5.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from messenger.client.ui import style
from messenger.client.ui.header import PaneHeader
from messenger.client.ui.links import find_links
from messenger.client.ui.messages import explain, format_when
from messenger.client.ui.widgets import ComposeEdit, Spinner, Toast, if_alive

PAGE = 20


def _paragraphs(text: str) -> str:
    """Escaped text with line breaks, and its links as anchors."""
    parts, last = [], 0
    for start, end, url in find_links(text):
        parts.append(html.escape(text[last:start]))
        parts.append(f'<a href="{html.escape(url, quote=True)}"'
                     f' style="color:{style.LINK};">{html.escape(text[start:end])}</a>')
        last = end
    parts.append(html.escape(text[last:]))
    return "".join(parts).replace("\n", "<br>")


def _card(header: str, body: str, colour: str | None = None,
          border: str | None = None) -> str:
    # QTextBrowser knows tables, not CSS boxes: one cell per card.
    colour = colour or style.SURFACE
    border = border or style.BORDER
    return (f'<table width="100%" cellspacing="0" cellpadding="12" border="1"'
            f' style="margin-bottom:10px; background-color:{colour}; border-style:solid;'
            f' border-color:{border};">'
            f'<tr><td>{header}<div style="margin-top:6px;">{body}</div></td></tr></table>')


def open_link(url: QUrl) -> None:
    if url.scheme() in ("http", "https"):
        QDesktopServices.openUrl(url)


class FeedPane(QWidget):
    """Broadcasts, newest first; "Post to everyone" for premium and admin accounts.
    Every post loaded goes to the `Conversations` too (the list's preview, and what
    arrived while away counts as unread)."""

    def __init__(self, client: Any, conversations: Any, address: str = "",
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.client = client
        self.conversations = conversations
        self.address = address
        self.items: dict[int, Any] = {}
        self.more = False
        self.loading = False
        style.named(self, "pane")
        self.setAttribute(Qt.WA_StyledBackground, True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        self.header = PaneHeader("Home")
        self.header.set_subtitle("posts for everyone on this server")
        layout.addWidget(self.header)
        self.compose_box = self._compose_box()
        layout.addWidget(self.compose_box)
        self.browser = QTextBrowser()
        self.browser.setObjectName("feed")
        self.browser.setOpenLinks(False)
        self.browser.anchorClicked.connect(self._link)
        layout.addWidget(self.browser, 1)
        self.banner = Toast(self.browser)
        self.render()

    def _compose_box(self) -> QWidget:
        box = style.named(QWidget(), "header")
        box.setAttribute(Qt.WA_StyledBackground, True)
        column = QVBoxLayout(box)
        column.setContentsMargins(14, 10, 14, 10)
        self.compose = ComposeEdit("Post to everyone on this server… (Enter posts,"
                                   " Shift+Enter for a new line)", max_lines=5)
        self.compose.submitted.connect(self.post)
        column.addWidget(self.compose)
        row = QHBoxLayout()
        note = style.named(QLabel("Your post appears on everyone's home page."), "muted")
        note.setWordWrap(True)
        row.addWidget(note, 1)
        self.post_spinner = Spinner(18)
        row.addWidget(self.post_spinner)
        self.post_button = style.set_kind(QPushButton("Broadcast"), "primary")
        self.post_button.clicked.connect(self.post)
        row.addWidget(self.post_button, 0, Qt.AlignTop)
        column.addLayout(row)
        box.hide()
        return box

    @property
    def can_post(self) -> bool:
        return self.compose_box.isVisibleTo(self)

    def set_can_post(self, allowed: bool) -> None:
        self.compose_box.setVisible(allowed)

    def set_narrow(self, narrow: bool) -> None:
        self.header.set_narrow(narrow)

    # -- loading --------------------------------------------------------------------------

    def reload(self) -> None:
        self.items.clear()
        self.more = False
        self.load(None)

    def load(self, before: int | None) -> None:
        if self.loading:
            return
        self.loading = True
        self.header.spinner.start()
        d = self.client.get_broadcasts(before=before, limit=PAGE)
        d.addCallbacks(self._loaded, self._failed)

    @if_alive
    def _loaded(self, reply: dict[str, Any]) -> None:
        self.loading = False
        self.header.spinner.stop()
        items = [item for item in reply.get("alert") or []
                 if isinstance(item, dict) and isinstance(item.get("broadcast_id"), int)]
        posts = [(item["broadcast_id"], float(item.get("time", 0)),
                  str(item.get("from", "")), str(item.get("message", ""))) for item in items]
        for post in posts:
            self.items[post[0]] = post
        self.conversations.note_broadcasts(posts)
        self.more = bool(reply.get("more"))
        self.render()

    @if_alive
    def _failed(self, failure: Any) -> None:
        self.loading = False
        self.header.spinner.stop()
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
            parts.append(f'<p align="center"><a href="feed:older" style="color:{style.LINK};">'
                         'Show older posts</a></p>')
        bar = self.browser.verticalScrollBar()
        position = bar.value()
        self.browser.setHtml("".join(parts))
        bar.setValue(position)

    def _link(self, url: QUrl) -> None:
        if url.toString() == "feed:older":
            if self.items:
                self.load(min(self.items))
        else:
            open_link(url)

    # -- posting --------------------------------------------------------------------------

    def post(self) -> None:
        text = self.compose.toPlainText().strip()
        if not text or not self.post_button.isEnabled():
            return
        self.post_button.setEnabled(False)
        self.post_spinner.start()
        d = self.client.broadcast(text)
        d.addCallbacks(self._posted, self._post_failed, callbackArgs=(text,))

    @if_alive
    def _posted(self, reply: dict[str, Any], text: str) -> None:
        self.post_button.setEnabled(True)
        self.post_spinner.stop()
        self.compose.clear()
        self.banner.clear_message()
        me = getattr(self.client.account, "account_name", "")
        broadcast_id = reply.get("broadcast_id")
        if isinstance(broadcast_id, int):
            when = float(reply.get("time", time.time()))
            self.items[broadcast_id] = (broadcast_id, when, me, text)
            self.conversations.note_broadcasts([(broadcast_id, when, me, text)])
        self.render()

    @if_alive
    def _post_failed(self, failure: Any) -> None:
        self.post_button.setEnabled(True)
        self.post_spinner.stop()
        self.banner.show_error(explain(failure, self.address))


class NoticesPane(QWidget):
    """Service messages, newest first (kept by the `Conversations`)."""

    def __init__(self, conversations: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.conversations = conversations
        style.named(self, "pane")
        self.setAttribute(Qt.WA_StyledBackground, True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        self.header = PaneHeader("Messenger")
        self.header.set_subtitle("service messages")
        layout.addWidget(self.header)
        self.browser = QTextBrowser()
        self.browser.setObjectName("feed")
        self.browser.setOpenLinks(False)
        self.browser.anchorClicked.connect(open_link)
        layout.addWidget(self.browser, 1)
        conversations.notice_added.connect(lambda _: self.render())
        self.render()

    def set_narrow(self, narrow: bool) -> None:
        self.header.set_narrow(narrow)

    def texts(self) -> list[str]:
        return [item.text for item in self.conversations.notices]

    def render(self) -> None:
        now = time.time()
        parts = []
        for item in reversed(self.conversations.notices):
            colour, border = ((style.DANGER_SOFT, style.DANGER) if item.important
                              else (None, None))
            header = f'<span style="color:{style.MUTED};">{format_when(item.time, now)}</span>'
            parts.append(_card(header, _paragraphs(item.text), colour, border))
        if not parts:
            parts.append(f'<p style="color:{style.MUTED};">Nothing yet. Messages from the'
                         ' server, missed calls and changes to your account appear'
                         ' here.</p>')
        self.browser.setHtml("".join(parts))
