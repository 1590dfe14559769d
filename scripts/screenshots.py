#!/usr/bin/env python3
"""Render the desktop client's windows into docs/screenshots/*.png from the running program.

A real server runs in this process (loopback, a temporary data dir, SQLite); three
desktop clients on the Qt reactor register (alice, the first account, is an
administrator; bob registers with a premium code alice made; carol is an ordinary user),
add each other, chat, broadcast and call. Each window is then captured with
``QWidget.grab()`` at a realistic size (the main window at 1280x800). Nothing is mocked:
what you see is what the program draws.

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/screenshots.py [--out DIR]

(or under Xvfb: ``xvfb-run -a .venv/bin/python scripts/screenshots.py``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
if not os.environ.get("DISPLAY"):                  # no X server (Xvfb): render offscreen
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
RUNTIME_DIR = None
if "XDG_RUNTIME_DIR" not in os.environ:
    RUNTIME_DIR = tempfile.mkdtemp(prefix="qtui_xdg_")
    os.environ["XDG_RUNTIME_DIR"] = RUNTIME_DIR

from messenger.client.ui import qtreactor  # noqa: E402

APP = qtreactor.application()
reactor = qtreactor.install()

from PyQt5.QtCore import Qt  # noqa: E402
from PyQt5.QtGui import QPainter  # noqa: E402
from PyQt5.QtWidgets import QWidget  # noqa: E402
from twisted.internet import defer, task  # noqa: E402

from messenger.client.calls.audio import FakeAudioDevice  # noqa: E402
from messenger.client.calls.engine import CallEngine  # noqa: E402
from messenger.client.reconnect import backoff_policy  # noqa: E402
from messenger.client.ui import style  # noqa: E402
from messenger.client.ui.call_window import CallWindow  # noqa: E402
from messenger.client.ui.desktop import Desktop  # noqa: E402
from messenger.client.ui.settings import DesktopSettings  # noqa: E402
from messenger.server.config import ServerConfig  # noqa: E402
from messenger.server.service import MessengerServer  # noqa: E402

PASSWORD = "correct horse battery"  # noqa: S105 (demo accounts on a throwaway server)


def sleep(seconds: float) -> defer.Deferred:
    return task.deferLater(reactor, seconds, lambda: None)


@defer.inlineCallbacks
def wait_for(condition: Any, timeout: float = 20.0, what: str = "") -> Any:
    deadline = reactor.seconds() + timeout
    while not condition():
        if reactor.seconds() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        yield sleep(0.03)


class Shots:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.saved: list[Path] = []

    @defer.inlineCallbacks
    def take(self, widget: QWidget, name: str, width: int | None = None,
             height: int | None = None) -> Any:
        widget.show()
        if width and height:
            widget.resize(width, height)
        else:
            widget.adjustSize()
        yield sleep(0.4)                      # let layouts, timers and repaints settle
        path = self.out / f"{name}.png"
        if not widget.grab().save(str(path)):
            raise RuntimeError(f"could not write {path}")
        self.saved.append(path)
        print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}"
              f" ({widget.width()}x{widget.height()})")


    @defer.inlineCallbacks
    def take_with_popup(self, widget: QWidget, popup: QWidget, name: str) -> Any:
        """``widget`` with a popup window (a picker) drawn where it is on screen."""
        yield sleep(0.4)
        picture = widget.grab()
        painter = QPainter(picture)
        painter.drawPixmap(widget.mapFromGlobal(popup.pos()), popup.grab())
        painter.end()
        path = self.out / f"{name}.png"
        if not picture.save(str(path)):
            raise RuntimeError(f"could not write {path}")
        self.saved.append(path)
        print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


class World:
    """A server and the desktops of alice, bob and carol."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.server: MessengerServer | None = None
        self.desktops: dict[str, Desktop] = {}

    @defer.inlineCallbacks
    def start_server(self) -> Any:
        data = self.base / "server"
        config = ServerConfig(port=0, interface="127.0.0.1", data_dir=data, rsa_bits=2048,
                              scrypt_n=2**10)
        self.server = MessengerServer(config, reactor)
        yield self.server.start()

    def desktop(self, name: str, secret: bytes | None = None) -> Desktop:
        config_dir = self.base / f"client-{name}"
        config_dir.mkdir(parents=True, mode=0o700, exist_ok=True)
        secret_file = config_dir / "secret"
        assert self.server is not None
        secret_file.write_bytes(secret if secret is not None else
                                self.server.config.secret_path.read_bytes())
        settings = DesktopSettings(server=f"127.0.0.1:{self.server.tcp_port}",
                                   secret_file=str(secret_file))
        device = FakeAudioDevice()

        def engine(**callbacks: Any) -> CallEngine:
            return CallEngine(reactor, audio=device, interface="127.0.0.1", **callbacks)

        desktop = Desktop(config_dir, settings, reactor=reactor, engine_factory=engine,
                          use_tray=False,
                          client_options={"backoff": backoff_policy(0.2, 2.0)})
        self.desktops[name] = desktop
        return desktop

    @defer.inlineCallbacks
    def register(self, name: str, code: str = "") -> Any:
        desktop = self.desktop(name)
        yield desktop.start()
        yield wait_for(lambda: not desktop.login_window.busy, what="login form")
        yield desktop.register(name, f"{name}@example.org", PASSWORD, code)
        yield wait_for(lambda: desktop.main_window is not None
                       and desktop.client.state.name == "online", what=f"{name} online")
        return desktop

    @defer.inlineCallbacks
    def stop(self) -> Any:
        for desktop in self.desktops.values():
            yield desktop.shutdown()
        if self.server is not None:
            yield self.server.stop()


@defer.inlineCallbacks
def scenario(out: Path, base: Path) -> Any:
    shots = Shots(out)
    world = World(base)
    yield world.start_server()
    try:
        # -- the login window: both tabs, and one refusal ---------------------------------
        fresh = world.desktop("newcomer")
        yield fresh.start()
        yield wait_for(lambda: not fresh.login_window.busy, what="login form")
        login = fresh.login_window
        login.name.setText("alice")
        login.password.setText(PASSWORD)
        yield shots.take(login, "login", 460, 640)
        login.tabs.setCurrentIndex(1)
        login.reg_name.setText("dave")
        login.reg_email.setText("dave@example.org")
        login.reg_password.setText(PASSWORD)
        login.reg_password2.setText(PASSWORD)
        login.reg_code.setText("K7QM-2XWD-PA9F-HT3C")
        yield shots.take(login, "login-register", 460, 640)
        login.tabs.setCurrentIndex(0)
        dialog = fresh.open_settings()
        yield shots.take(dialog, "settings")
        dialog.close()

        # -- three users, contacts, messages, a broadcast ---------------------------------
        alice = yield world.register("alice")
        reply = yield alice.client.admin_create_code()
        bob = yield world.register("bob", code=reply["code"])
        carol = yield world.register("carol")
        dave = yield world.register("dave")
        for desktop, contacts in ((alice, ("bob", "carol", "dave")), (bob, ("alice",)),
                                  (carol, ("alice",)), (dave, ("alice",))):
            for name in contacts:
                yield desktop.client.add_contact(name)
            desktop.conversations.reload()
        conversation = [
            (bob, "alice", "Morning! Did the new build pass on your machine?"),
            (alice, "bob", "Yes, all green here. The call quality looks much better too."),
            (bob, "alice", "Great. I'll tag the release after lunch then."),
            (alice, "bob", "Sounds good. One thing: the relay fallback kicked in twice"
                           " during yesterday's test, both times on the guest Wi-Fi. I think"
                           " that network blocks direct UDP between clients, so it is doing"
                           " exactly what it should, but let's mention it in the notes."),
            (bob, "alice", "Good catch, will do."),
        ]
        for sender, to, text in conversation:
            yield sender.client.send_message(to, text)
            yield sleep(0.05)
        yield bob.client.broadcast("Release 1.2 is out: voice calls now fall back to the"
                                   " server's relay when a direct path is blocked, and the"
                                   " desktop client shows call quality live.")
        feed = alice.main_window.feed
        feed.compose.setPlainText("Maintenance tonight from 22:00 to 22:15; expect a short"
                                  " reconnect.")
        feed.post()
        yield wait_for(lambda: len(feed.items) >= 2, what="alice's broadcast")
        yield carol.client.send_message("alice", "Are we still on for the review at 3?")
        yield carol.client.send_message("alice", "I booked the small meeting room.")
        yield bob.client.set_presence("away")
        yield dave.logout()
        yield sleep(0.5)

        # -- the main window: wide, light and dark; narrow ---------------------------------
        main = alice.main_window
        main.resize(1100, 720)
        chat = main.open_chat("bob")
        yield wait_for(lambda: chat.model.rowCount() >= len(conversation), what="history")
        chat.compose.setPlainText("I'll write the release notes now.")
        alice.conversations.set_muted("@dave", True)
        yield shots.take(main, "main", 1100, 720)
        alice.settings = alice.settings.with_changes(theme="dark")
        alice.apply_theme()
        yield shots.take(main, "main-dark", 1100, 720)
        alice.settings = alice.settings.with_changes(theme="light")
        alice.apply_theme()
        main.go_back()
        yield shots.take(main, "narrow-list", 380, 700)
        main.open_key("@bob")
        yield shots.take(main, "narrow-chat", 380, 700)
        main.resize(1100, 720)

        yield groups_scene(world, shots)
        yield receipts_scene(world, shots)
        yield files_scene(world, shots, base)
        yield edits_scene(world, shots)

        # -- the search dialog, settings and shortcuts ---------------------------------------
        search = carol.main_window.open_search()
        search.query.setText("a")
        search.search_now()
        yield wait_for(lambda: search.results.count() >= 2, what="search results")
        yield shots.take(search, "search", 460, 520)
        search.close()
        yield alice.conversations.block("dave")
        preferences = alice.open_preferences()
        preferences.tabs.setCurrentIndex(2)
        yield wait_for(lambda: preferences.blocked_list.count() == 1
                       and preferences.blocked_list.item(0).text() == "dave", what="blocked")
        yield shots.take(preferences, "preferences", 520, 460)
        preferences.close()
        help_dialog = main.show_shortcuts()
        yield shots.take(help_dialog, "shortcuts", 560, 560)
        help_dialog.close()

        # -- the admin panel and a new premium code ----------------------------------------
        panel = main.open_admin()
        yield wait_for(lambda: panel.users_table.rowCount() >= 4, what="users")
        panel.select_user("bob")
        yield wait_for(lambda: panel.history_table.rowCount() > 0, what="login history")
        yield shots.take(panel, "admin", 1180, 720)
        yield panel.create_code()
        yield wait_for(lambda: panel.code_dialog is not None, what="code dialog")
        yield shots.take(panel.code_dialog, "premium-code")
        panel.code_dialog.close()
        panel.close()

        # -- a call: ringing at bob's, then in progress ------------------------------------
        CallWindow.CLOSE_DELAY = 60.0
        alice.main_window.start_call("bob")
        yield wait_for(lambda: bob.main_window.call_window is not None, what="ring")
        yield shots.take(bob.main_window.call_window, "call-incoming", 400, 560)
        bob.main_window.call_window.accept()
        yield wait_for(lambda: alice.calls.status.state == "active", what="call active")
        yield sleep(3.2)
        yield shots.take(alice.main_window.call_window, "call", 400, 560)
        yield alice.calls.hangup()

        # -- a refusal in the login window -------------------------------------------------
        login.tabs.setCurrentIndex(0)
        yield fresh.login("alice", "not the password")
        yield wait_for(lambda: login.banner.kind == "error", what="refusal")
        login.name.setText("alice")
        yield shots.take(login, "login-error", 460, 640)
        wrong = world.desktop("wrong-secret", secret=b"an old secret\n")
        yield wrong.start()
        yield wait_for(lambda: not wrong.login_window.busy, what="login form")
        wrong.login_window.name.setText("carol")
        yield wrong.login("carol", PASSWORD)
        yield wait_for(lambda: wrong.login_window.banner.kind == "error", what="hmac")
        wrong.login_window.name.setText("carol")
        yield shots.take(wrong.login_window, "login-hmac-error", 460, 640)
    finally:
        yield world.stop()
    return shots.saved


@defer.inlineCallbacks
def groups_scene(world: World, shots: Shots) -> Any:
    """Alice, a teacher, makes a discussion group and an announcement channel for her
    class; bob is mentioned; carol, a student, cannot post in the channel."""
    alice, bob, carol = (world.desktops[name] for name in ("alice", "bob", "carol"))
    main = alice.main_window
    dialog = main.open_new_group()
    dialog.name.setText("Class 5b")
    dialog.topic.setText("Maths, spring term")
    for row in range(dialog.members.count()):
        if dialog.members.item(row).text() in ("bob", "carol"):
            dialog.members.item(row).setCheckState(Qt.Checked)
    yield shots.take(dialog, "group-new", 440, 600)
    yield dialog.create()
    group_id = int(main.current_key[1:])
    reply = yield alice.client.group_create(
        "Class 5b announcements", members=["bob", "carol", "dave"],
        topic="Only the teacher posts here", announce_only=True)
    channel_id = reply["group"]["group_id"]
    yield alice.client.group_add(group_id, "dave")
    yield alice.client.send_group_message(channel_id, "Test on Friday: chapters 4 and 5."
                                          " Bring a calculator 🧮")
    for sender, text in (
            (bob, "Has anyone started the homework yet?"),
            (carol, "Yes, question 3 is tricky 😅"),
            (alice, "@bob can you collect the worksheets tomorrow morning?"),
            (bob, "Sure! 👍"),
            (carol, "Thanks @bob 🙏")):
        yield sender.client.send_group_message(group_id, text)
        yield sleep(0.05)
    yield alice.client.send_group_message(channel_id, "The school trip form is due on"
                                          " Monday.")
    yield sleep(0.5)
    bob_main = bob.main_window
    bob_main.resize(1100, 720)
    pane = bob_main.open_key(f"#{group_id}")
    yield wait_for(lambda: pane.model.rowCount() >= 5, what="the group's history")
    yield shots.take(bob_main, "group-chat", 1100, 720)
    pane.compose.setPlainText("On my way ")
    pane.compose.moveCursor(pane.compose.textCursor().End)
    picker = pane.show_emoji()
    picker.tabs.setCurrentIndex(1)
    yield shots.take_with_popup(bob_main, picker, "emoji-picker")
    picker.close()
    pane.compose.clear()
    carol_main = carol.main_window
    carol_main.resize(1100, 720)
    channel = carol_main.open_key(f"#{channel_id}")
    yield wait_for(lambda: channel.model.rowCount() >= 2, what="the channel's history")
    yield shots.take(carol_main, "group-channel", 1100, 720)
    panel = main.open_members(group_id)
    yield wait_for(lambda: panel.members.count() == 4, what="the members")
    panel.select("bob")
    yield shots.take(panel, "group-members", 460, 640)
    panel.close()


@defer.inlineCallbacks
def receipts_scene(world: World, shots: Shots) -> Any:
    """Bob writes to carol: the first messages read (✓✓ read), the last one delivered
    (✓✓), and carol typing; in the class group, "read by N" on alice's message."""
    bob, carol = world.desktops["bob"], world.desktops["carol"]
    main = bob.main_window
    main.resize(1100, 720)
    pane = main.open_chat("carol")
    for text in ("Hi Carol, are the minutes of Monday's meeting ready?",
                 "No rush, Friday is fine."):
        pane.compose.setPlainText(text)
        pane.send()
        yield wait_for(lambda: pane.model.entries()[-1].status == "acked", what="stored")
    carol_pane = carol.main_window.open_chat("bob")
    yield wait_for(lambda: carol_pane.model.rowCount() >= 2, what="carol reads")
    yield wait_for(lambda: pane.model.entries()[-1].receipt == "read", what="read ticks")
    carol.main_window.go_back()
    pane.compose.setPlainText("I attached last week's too")
    pane.send()
    yield wait_for(lambda: pane.model.entries()[-1].receipt == "delivered",
                   what="delivered ticks")
    carol_pane.compose.setPlainText("Almost done, send")
    yield wait_for(lambda: "typing" in pane.header.subtitle.full_text(), what="typing")
    yield shots.take(main, "receipts", 1100, 720)
    carol_pane.compose.clear()


def make_picture(path: Path) -> Path:
    """A small landscape drawn with Pillow (a photo to send)."""
    from PIL import Image, ImageDraw
    image = Image.new("RGB", (800, 520), (135, 190, 235))
    draw = ImageDraw.Draw(image)
    draw.ellipse((560, 60, 680, 180), fill=(255, 214, 90))
    draw.polygon([(0, 520), (230, 220), (470, 520)], fill=(70, 110, 90))
    draw.polygon([(260, 520), (560, 170), (800, 430), (800, 520)], fill=(50, 90, 75))
    draw.rectangle((0, 470, 800, 520), fill=(90, 150, 80))
    image.save(path, "PNG")
    return path


@defer.inlineCallbacks
def files_scene(world: World, shots: Shots, base: Path) -> Any:
    """Alice sends bob a photo and a document; bob sees the preview and the card, and a
    third file on its way shows its progress row."""
    alice, bob = world.desktops["alice"], world.desktops["bob"]
    pane = alice.main_window.open_chat("bob")
    pane.compose.setPlainText("Photos from the hike 🏔️")
    [photo] = pane.send_files([make_picture(base / "hike.png")])
    yield photo.when_done()
    notes = base / "Release notes 1.2.pdf"
    notes.write_bytes(b"%PDF-1.4\n" + bytes(range(256)) * 1400)
    [document] = pane.send_files([notes])
    yield document.when_done()
    yield bob.client.send_message("alice", "Wow, great view! Thanks for the notes 🙏")
    bob_main = bob.main_window
    bob_pane = bob_main.open_chat("alice")
    yield wait_for(lambda: any(e.attachment is not None and e.attachment.is_image
                               and bob_pane.view.thumbnail(e) is not None
                               for e in bob_pane.model.entries()), what="the preview")
    yield sleep(0.3)
    yield shots.take(bob_main, "files", 1100, 720)


def edits_scene(world: World, shots: Shots) -> Any:
    """Carol and alice: a reply with its quote, an edited message, a deleted one, and a
    search for an old message."""
    alice, carol = world.desktops["alice"], world.desktops["carol"]
    question = yield alice.client.send_message("carol", "Which room is the review in?")
    yield carol.client.send_message("alice", "Room 4.12, second floor",
                                    reply_to=question["msg_id"])
    typo = yield alice.client.send_message("carol", "Thanks! I'll bring the slides and"
                                           " the budjet sheet")
    yield alice.client.edit_message(typo["msg_id"], "Thanks! I'll bring the slides and"
                                    " the budget sheet")
    oops = yield carol.client.send_message("alice", "(sent to the wrong chat, sorry)")
    yield carol.client.delete_message(oops["msg_id"])
    yield carol.client.send_message("alice", "See you there 👍")
    main = alice.main_window
    main.resize(1100, 720)
    pane = main.open_chat("carol")
    yield wait_for(lambda: pane.model.rowCount() >= 6, what="carol's chat")
    pane.quote(pane.model.entries()[-1])
    yield shots.take(main, "edits", 1100, 720)
    pane.cancel_context()
    search = main.open_message_search()
    search.query.setText("review room")
    search.search_now()
    yield wait_for(lambda: search.results.count() >= 1, what="search results")
    yield shots.take(search, "search-messages", 560, 480)
    search.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"),
                        help="where the PNGs go (default: docs/screenshots)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    style.apply(APP)
    APP.setAttribute(Qt.AA_UseHighDpiPixmaps)
    result: dict[str, Any] = {}

    base = Path(tempfile.mkdtemp(prefix="qtui_shots_"))

    def run() -> None:
        d = scenario(out, base)

        def done(outcome: Any) -> None:
            result["outcome"] = outcome
            reactor.stop()
        d.addBoth(done)

    reactor.callLater(0, run)
    try:
        reactor.run()
    finally:
        shutil.rmtree(base, ignore_errors=True)       # the server's data and the clients'
        if RUNTIME_DIR is not None:
            shutil.rmtree(RUNTIME_DIR, ignore_errors=True)
    outcome = result.get("outcome")
    if not isinstance(outcome, list):
        if hasattr(outcome, "printTraceback"):
            outcome.printTraceback()
        print("screenshots: failed", file=sys.stderr)
        return 1
    print(f"screenshots: {len(outcome)} images in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
