"""The desktop's read markers and the server's unread counts, on a Clock: markers spaced
per chat, merged, kept while offline, dropped when refused; the server's counts replace
the remembered ones except where this computer read further; notifications held until
the counts come. (End to end against a real server: test_groups, test_unread.)"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, task
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from messenger.client.errors import Forbidden, NotConnected
from messenger.client.ui.chat_state import ChatState, GroupMeta
from messenger.client.ui.notify import NotificationBatcher
from messenger.client.ui.read_markers import INTERVAL, ReadMarkers


class FakeClient:
    def __init__(self) -> None:
        self.calls: list[tuple[int, str | None, int | None]] = []
        self.replies: list[defer.Deferred[Any]] = []

    def mark_read(self, up_to: int, with_user: str | None = None,
                  group_id: int | None = None) -> defer.Deferred[Any]:
        self.calls.append((up_to, with_user, group_id))
        d: defer.Deferred[Any] = defer.Deferred()
        self.replies.append(d)
        return d


class FakeNotifier:
    def __init__(self) -> None:
        self.shown: list[tuple[str, str]] = []

    def notify(self, title: str, text: str) -> None:
        self.shown.append((title, text))


class ReadMarkerTests(TestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.client = FakeClient()
        self.markers = ReadMarkers(self.client, self.clock)

    def test_first_at_once_then_merged_per_interval(self) -> None:
        """The first marker of a chat goes at once; later ones within the interval are
        merged into one with the newest position; chats do not wait for each other."""
        self.markers.want("#7", 10)
        self.markers.want("@bob", 4)
        self.assertEqual(self.client.calls, [(10, None, 7), (4, "bob", None)])
        self.client.replies[0].callback({"read_up_to": 10})
        self.markers.want("#7", 11)
        self.markers.want("#7", 12)
        self.markers.want("#7", 9)                  # behind: ignored
        self.assertEqual(len(self.client.calls), 2)
        self.assertTrue(self.markers.pending("#7"))
        self.clock.advance(INTERVAL)
        self.assertEqual(self.client.calls[-1], (12, None, 7))
        self.client.replies[-1].callback({"read_up_to": 12})
        self.assertFalse(self.markers.pending("#7"))

    def test_offline_kept_refused_dropped(self) -> None:
        """A marker that could not be sent (no connection) is sent after the next login;
        one the server refused (a group left) is dropped."""
        self.markers.want("#7", 10)
        self.client.replies[0].errback(Failure(NotConnected("offline")))
        self.assertTrue(self.markers.pending("#7"))
        self.clock.advance(INTERVAL)
        self.markers.resend()
        self.assertEqual(self.client.calls[-1], (10, None, 7))
        self.client.replies[-1].errback(Failure(Forbidden("you are not a member")))
        self.assertFalse(self.markers.pending("#7"))

    def test_flush_sends_what_waits(self) -> None:
        self.markers.want("@bob", 3)
        self.client.replies[0].callback({"read_up_to": 3})
        self.markers.want("@bob", 5)
        self.assertEqual(len(self.client.calls), 1)
        self.markers.flush()
        self.assertEqual(self.client.calls[-1], (5, "bob", None))
        self.assertEqual(self.clock.getDelayedCalls(), [])


class ServerCountTests(TestCase):
    def test_server_counts_replace_local_ones(self) -> None:
        """Listed chats take the server's counts and marker; chats it does not list are
        read; a chat read further here keeps its own (and is returned: its marker is to
        be sent); a synced message after the counts is announced, not counted again."""
        state = ChatState()
        state.incoming("@bob", 5, 1.0, "bob", "hi", reading=False)
        state.incoming("@carol", 6, 1.0, "carol", "yo", reading=False)
        state.outgoing("@dave", 9, 1.0, "me", "mine")
        state.groups["#7"] = GroupMeta(7, "Class")
        ahead = state.apply_server_counts({"#7": (3, 1, 2), "@dave": (1, 0, 4)})
        self.assertEqual(ahead, ["@dave"])
        self.assertEqual((state.record("@bob").unread, state.record("@carol").unread), (0, 0))
        group = state.record("#7")
        self.assertEqual((group.unread, group.mentions, group.last_read), (3, 1, 2))
        self.assertTrue(state.incoming("#7", 12, 2.0, "ann", "late", reading=False,
                                       count=False))
        self.assertEqual(group.unread, 3)
        self.assertFalse(state.incoming("@bob", 13, 2.0, "bob", "old", reading=False,
                                        count=False))
        state.outgoing("#7", 14, 3.0, "me", "I read it all")
        self.assertEqual((group.unread, group.mentions, group.last_read), (0, 0, 14))

    def test_state_file_keeps_groups(self) -> None:
        state = ChatState()
        state.group(7).name = "Class 5b"
        state.groups["#7"].announce_only = True
        again = ChatState.from_json(state.to_json())
        self.assertEqual((again.groups["#7"].name, again.groups["#7"].announce_only),
                         ("Class 5b", True))
        broken = ChatState.from_json({"groups": {"#x": {}, "#8": {"name": 5}}})
        self.assertEqual(list(broken.groups), ["#8"])
        self.assertEqual(broken.groups["#8"].name, "")

    def test_held_notifications_say_the_server_count(self) -> None:
        """Held after a login; released with the server's counts: a chat read meanwhile
        elsewhere is not announced, the others say the server's number."""
        clock, notifier = task.Clock(), FakeNotifier()
        batcher = NotificationBatcher(notifier, clock)
        batcher.hold()
        for n in range(4):
            batcher.add("@bob", "bob", f"m{n}")
        batcher.add("#7", "Group 7", "hello")
        batcher.retitle("#7", "Class 5b")
        clock.advance(60)
        self.assertEqual(notifier.shown, [])
        batcher.release({"@bob": 0, "#7": 2}.get)
        clock.advance(60)
        self.assertEqual(notifier.shown, [("Class 5b", "2 new messages. The last: hello")])
