"""The Qt-free parts of the chat list on their own: counting unread by message id, the
feed's rules, the file on disk; links in text; grouped notifications on a task.Clock;
the system theme's answer; the device list."""

from __future__ import annotations

import json
from pathlib import Path

from twisted.internet import task
from twisted.trial.unittest import TestCase

from messenger.client.calls.engine import CallEngine
from messenger.client.ui import devices, theme
from messenger.client.ui.chat_state import FEED, ChatState, ChatStateFile, load_chat_state
from messenger.client.ui.links import find_links
from messenger.client.ui.notify import NotificationBatcher


class ChatStateTests(TestCase):
    def test_counted_once_by_message_id(self) -> None:
        """A message counts once even when delivered again (after a crash); one read in
        the chat being looked at does not count; read() clears and remembers the id."""
        state = ChatState()
        self.assertTrue(state.incoming("@bob", 5, 1.0, "bob", "one", reading=False))
        self.assertFalse(state.incoming("@bob", 5, 1.0, "bob", "one", reading=False))
        self.assertTrue(state.incoming("@bob", 7, 2.0, "bob", "two", reading=False))
        self.assertFalse(state.incoming("@carol", 8, 3.0, "carol", "hi", reading=True))
        self.assertEqual((state.record("@bob").unread, state.record("@carol").unread), (2, 0))
        self.assertEqual(state.seen, 8)
        self.assertTrue(state.read("@bob"))
        self.assertEqual((state.record("@bob").unread, state.record("@bob").last_read), (0, 7))
        self.assertFalse(state.read("@bob"))

    def test_previews_follow_the_newest_message(self) -> None:
        """The preview is the newest message's, own ones included; an older one seen in
        history does not replace it; long texts are cut to one line."""
        state = ChatState()
        state.incoming("@bob", 5, 1.0, "bob", "first\nline", reading=False)
        self.assertEqual(state.record("@bob").preview, "first line")
        state.outgoing("@bob", 9, 3.0, "alice", "mine")
        self.assertEqual((state.record("@bob").preview, state.record("@bob").preview_from),
                         ("mine", "alice"))
        self.assertFalse(state.note("@bob", 4, 0.5, "bob", "old"))
        self.assertEqual(state.record("@bob").last_read, 9)      # own: read up to it
        state.incoming("@bob", 10, 4.0, "bob", "x" * 500, reading=False)
        self.assertEqual(len(state.record("@bob").preview), 160)

    def test_the_feed_counts_only_news(self) -> None:
        """A first page of the feed counts nothing; later pages count posts newer than
        those seen; live posts count unless own or the feed is being read."""
        state = ChatState()
        posts = [(1, 1.0, "bob", "a"), (2, 2.0, "bob", "b")]
        self.assertEqual(state.broadcast_page(posts, reading=False, me="alice"), 0)
        self.assertEqual(state.broadcast_page(posts + [(3, 3.0, "bob", "c"),
                                                       (4, 4.0, "alice", "mine")],
                                              reading=False, me="alice"), 1)
        self.assertTrue(state.broadcast(5, 5.0, "bob", "live", reading=False))
        self.assertFalse(state.broadcast(6, 6.0, "alice", "own", reading=False, own=True))
        self.assertFalse(state.broadcast(7, 7.0, "bob", "seen", reading=True))
        self.assertEqual(state.record(FEED).unread, 2)

    def test_file_round_trip_and_damage(self) -> None:
        """chats.json keeps each account's state; a damaged file or field gives defaults."""
        config = Path(self.mktemp())
        config.mkdir()
        chats = ChatStateFile(config / "chats.json")
        state = chats.state_for("h:1", "Alice")
        state.incoming("@bob", 3, 1.0, "bob", "hi", reading=False)
        state.set_muted("@bob", True)
        (config / "chats.json").write_bytes(chats.render())
        again = load_chat_state(config).state_for("h:1", "alice")
        self.assertEqual((again.seen, again.record("@bob").unread, again.record("@bob").muted),
                         (3, 1, True))
        data = json.loads((config / "chats.json").read_bytes())
        data["accounts"]["h:1 alice"]["chats"]["@bob"]["unread"] = "many"
        (config / "chats.json").write_text(json.dumps(data))
        self.assertEqual(load_chat_state(config).state_for("h:1", "alice")
                         .record("@bob").unread, 0)
        (config / "chats.json").write_text("{not json")
        self.assertEqual(load_chat_state(config).accounts, {})


class LinkTests(TestCase):
    def test_links_and_what_ends_them(self) -> None:
        """http(s) and www links; sentence punctuation and unmatched brackets after a
        link are not part of it; www links open with https."""
        text = "see https://a.org/x?y=1, (www.b.org/c) and http://c.org/d_(e). done"
        self.assertEqual([url for _, _, url in find_links(text)],
                         ["https://a.org/x?y=1", "https://www.b.org/c",
                          "http://c.org/d_(e)"])
        start, end, _ = find_links(text)[0]
        self.assertEqual(text[start:end], "https://a.org/x?y=1")
        self.assertEqual(find_links("no links here: www. http://"), [])


class BatcherTests(TestCase):
    def test_a_burst_makes_one_notification_per_chat(self) -> None:
        """Messages within the quiet time make one notification per chat, saying how
        many; a chat read meanwhile is dropped; a later message starts a new burst."""
        clock = task.Clock()
        shown: list[tuple[str, str]] = []

        class Notifier:
            def notify(self, title: str, text: str) -> None:
                shown.append((title, text))
        batcher = NotificationBatcher(Notifier(), clock, quiet=0.4)  # type: ignore[arg-type]
        for n in range(160):
            batcher.add("@bob", "bob", f"message {n}")
            clock.advance(0.01)
        batcher.add("@carol", "carol", "hello")
        batcher.add("@dave", "dave", "read soon")
        batcher.drop("@dave")
        self.assertEqual(shown, [])
        clock.advance(0.4)
        self.assertEqual(shown, [("bob", "160 new messages. The last: message 159"),
                                 ("carol", "hello")])
        batcher.add("@bob", "bob", "again")
        clock.advance(0.4)
        self.assertEqual(shown[-1], ("bob", "again"))


class ThemeTests(TestCase):
    def test_portal_values(self) -> None:
        """1 prefers dark, 2 prefers light, 0 (no preference) leaves the platform's."""
        self.assertTrue(theme.scheme_is_dark(1, False))
        self.assertFalse(theme.scheme_is_dark(2, True))
        self.assertTrue(theme.scheme_is_dark(0, True))
        self.assertEqual(theme.wants_dark("dark", None), True)
        self.assertEqual(theme.wants_dark("light", None), False)
        self.assertEqual(theme.wants_dark("system", None), False)

    def test_gtk_theme_variable(self) -> None:
        """GTK_THEME=Adwaita:dark means dark whatever the palette says."""
        self.patch(theme.os, "environ", {"GTK_THEME": "Adwaita:dark"})
        self.assertTrue(theme.platform_prefers_dark())


class DeviceListTests(TestCase):
    def test_names_from_the_call_engine(self) -> None:
        """The names the call engine lists are offered; none listed says why."""
        class Device:
            def __init__(self, name: str) -> None:
                self.name = name
        self.patch(CallEngine, "list_devices",
                   staticmethod(lambda: ([Device("USB mic")], [Device("Speakers")])))
        lists = devices.list_devices()
        self.assertEqual((lists.inputs, lists.outputs, lists.problem),
                         (["USB mic"], ["Speakers"], ""))
        self.patch(CallEngine, "list_devices", staticmethod(lambda: ([], [])))
        lists = devices.list_devices()
        self.assertEqual((lists.inputs, lists.outputs), ([], []))
        self.assertIn("system's defaults", lists.problem)
