"""Nothing missed: unread counts, the title's total, grouped notifications, messages that
came while the program was closed, counts that survive a restart, strangers, muted chats
(real desktops against a real server)."""

from __future__ import annotations

import json
from typing import Any

from PyQt5.QtWidgets import QApplication
from twisted.internet import defer

from messenger.client.ui.chat_state import FEED
from tests.client.ui.helpers import DesktopTestCase, chat_item, unread_of, wait_for


class UnreadTestCase(DesktopTestCase):
    @defer.inlineCallbacks
    def setUp(self) -> Any:
        yield self.start_server()
        self.alice = yield self.register("alice")
        self.bob = yield self.register("bob")
        yield self.add_contact(self.bob, "alice")
        self.alice.main_window.go_back()              # no chat open at alice's

    @defer.inlineCallbacks
    def restart(self, desktop: Any) -> Any:
        """Quit the program (its files written) and start it again on the same config
        dir: it logs in with the saved token."""
        yield desktop.shutdown()
        again = self.make_desktop()
        again.config_dir = desktop.config_dir
        yield again.start()
        yield wait_for(lambda: again.main_window is not None
                       and again.client.state.name == "online", what="started again")
        return again


class UnreadTests(UnreadTestCase):
    @defer.inlineCallbacks
    def test_unread_counts_title_and_notification(self) -> Any:
        """Messages to a chat that is not open raise its count and the title's total and
        make a notification; opening the chat reads them; a message to a chat that is
        open while the window is in front is read at once, one to a chat left is not."""
        main = self.alice.main_window
        yield self.bob.client.send_message("alice", "one")
        yield self.bob.client.send_message("alice", "two")
        yield wait_for(lambda: unread_of(self.alice, "bob") == 2, what="two unread")
        self.assertEqual(main.windowTitle(), "(2) Messenger — alice")
        self.assertEqual(self.alice.notifier.unread, 2)
        yield wait_for(lambda: self.alice.notifier.shown, what="a notification")
        self.assertEqual(self.alice.notifier.shown[-1][0], "bob")
        pane = main.open_chat("bob")
        self.assertEqual(unread_of(self.alice, "bob"), 0)
        self.assertEqual(main.windowTitle(), "Messenger — alice")
        yield wait_for(lambda: [e.text for e in pane.model.entries()] == ["one", "two"],
                       what="the messages in the pane")
        QApplication.setActiveWindow(main)
        yield wait_for(lambda: main.isActiveWindow(), what="alice's window in front")
        yield self.bob.client.send_message("alice", "read at once")
        yield wait_for(lambda: len(pane.model.entries()) == 3, what="the third")
        self.assertEqual(unread_of(self.alice, "bob"), 0)
        main.go_back()
        yield self.bob.client.send_message("alice", "three")
        yield wait_for(lambda: unread_of(self.alice, "bob") == 1, what="one unread")
        self.assertEqual(main.windowTitle(), "(1) Messenger — alice")

    @defer.inlineCallbacks
    def test_stranger_shows_up_in_the_list(self) -> Any:
        """A message from someone who is not a contact lists them, marked, with the count."""
        carol = yield self.register("carol")
        yield carol.client.send_message("alice", "hi, we have not met")
        yield wait_for(lambda: unread_of(self.alice, "carol") == 1, what="carol listed")
        item = chat_item(self.alice, "carol")
        self.assertFalse(item.is_contact)
        self.assertEqual(self.alice.conversations.model.presence_words(item),
                         "Not in your contacts")

    @defer.inlineCallbacks
    def test_a_muted_chat_counts_but_does_not_notify(self) -> Any:
        """Muting a chat (its menu) stops its notifications and leaves it out of the
        title's total; its own count still shows (greyed)."""
        main = self.alice.main_window
        yield self.bob.client.send_message("alice", "first")
        yield wait_for(lambda: unread_of(self.alice, "bob") == 1, what="one unread")
        main.toggle_mute("@bob")
        self.assertTrue(chat_item(self.alice, "bob").muted)
        self.assertEqual(main.windowTitle(), "Messenger — alice")
        self.alice.conversations.batcher.flush()
        shown = len(self.alice.notifier.shown)
        yield self.bob.client.send_message("alice", "second")
        yield wait_for(lambda: unread_of(self.alice, "bob") == 2, what="two unread")
        self.assertEqual(self.alice.conversations.batcher.pending, {})
        self.assertEqual(len(self.alice.notifier.shown), shown)
        self.assertEqual(main.windowTitle(), "Messenger — alice")


class WhileClosedTests(UnreadTestCase):
    @defer.inlineCallbacks
    def test_messages_sent_while_closed_are_unread_with_one_notification(self) -> Any:
        """Alice quits; bob sends five messages; when alice's program starts again they
        are unread (five, in the title too) and announced by ONE notification for the
        chat, although they arrived in the sync before the main window existed."""
        yield self.alice.client.send_message("bob", "see you")    # a known chat
        yield self.alice.shutdown()
        for n in range(5):
            yield self.bob.client.send_message("alice", f"while away {n}")
        again = self.make_desktop()
        again.config_dir = self.alice.config_dir
        yield again.start()
        yield wait_for(lambda: again.main_window is not None, what="the main window")
        self.assertEqual(unread_of(again, "bob"), 5)
        self.assertEqual(again.main_window.windowTitle(), "(5) Messenger — alice")
        yield wait_for(lambda: again.notifier.shown, what="the notification")
        self.assertEqual(again.conversations.batcher.pending, {})    # nothing more to come
        self.assertEqual(again.notifier.shown,
                         [("bob", "5 new messages. The last: while away 4")])
        self.assertEqual(chat_item(again, "bob").record.preview, "while away 4")
        self.assertEqual(again.conversations.model.keys()[0], "@bob")

    @defer.inlineCallbacks
    def test_unread_and_read_position_survive_a_restart(self) -> Any:
        """Unread counts, the read position and mute are on disk (chats.json, 0600):
        after a restart the same chats are unread; a chat read before the restart stays
        read, and opening the unread one marks where the new messages start."""
        carol = yield self.register("carol")
        yield carol.client.send_message("alice", "read this one")
        yield wait_for(lambda: unread_of(self.alice, "carol") == 1, what="carol's")
        self.alice.main_window.open_chat("carol")
        self.alice.main_window.go_back()
        for text in ("a", "b", "c"):
            yield self.bob.client.send_message("alice", text)
        yield wait_for(lambda: unread_of(self.alice, "bob") == 3, what="three unread")
        self.alice.main_window.toggle_mute("@carol")
        again = yield self.restart(self.alice)
        path = again.config_dir / "chats.json"
        self.assertEqual(path.stat().st_mode & 0o777, 0o600)
        self.assertEqual(unread_of(again, "bob"), 3)
        self.assertEqual(unread_of(again, "carol"), 0)
        self.assertTrue(chat_item(again, "carol").muted)
        self.assertEqual(again.main_window.windowTitle(), "(3) Messenger — alice")
        saved = json.loads(path.read_bytes())
        self.assertIn(f"{again.client.address} alice", saved["accounts"])
        pane = again.main_window.open_chat("bob")
        yield wait_for(lambda: pane.model.rowCount() == 3, what="bob's messages")
        self.assertEqual(pane.model.divider_row, 0)       # "Unread messages" above "a"
        self.assertEqual(unread_of(again, "bob"), 0)
        third = yield self.restart(again)
        self.assertEqual(unread_of(third, "bob"), 0)
        self.assertEqual(third.notifier.shown, [])

    @defer.inlineCallbacks
    def test_broadcasts_while_closed_are_unread_in_home(self) -> Any:
        """A broadcast posted while alice's program was closed counts in Home when it
        starts again; a new account's first start counts none of the old posts."""
        yield self.alice.client.admin_set_premium("bob", True)   # alice is the admin
        yield self.bob.client.broadcast("before")
        home = lambda desktop: desktop.conversations.model.item(FEED)  # noqa: E731
        yield wait_for(lambda: home(self.alice).unread == 1, what="the live post unread")
        self.alice.main_window.open_key(FEED)
        self.assertEqual(home(self.alice).unread, 0)
        yield self.alice.shutdown()
        yield self.bob.client.broadcast("while you were away")
        again = self.make_desktop()
        again.config_dir = self.alice.config_dir
        yield again.start()
        yield wait_for(lambda: again.main_window is not None
                       and home(again).unread == 1, what="the missed post unread")
        self.assertEqual(home(again).record.preview, "while you were away")
        carol = yield self.register("carol")
        yield wait_for(lambda: not carol.main_window.feed.loading
                       and home(carol).record.last_id, what="carol's feed")
        self.assertEqual(home(carol).unread, 0)
