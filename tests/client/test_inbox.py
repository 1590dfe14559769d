"""Tests for messenger.client.inbox: every message once, in msg_id order."""

from __future__ import annotations

from twisted.trial import unittest

from messenger.client.inbox import Inbox, valid_message


def msg(msg_id, text=None):
    return {"action": "msg", "msg_id": msg_id, "time": float(msg_id), "from": "alice",
            "to": "bob", "message": text or f"m{msg_id}"}


def texts(messages):
    return [m.text for m in messages]


class InboxTests(unittest.TestCase):
    def test_push_above_the_cursor_is_delivered(self):
        """A live push with a new id is delivered and moves the cursor."""
        inbox = Inbox(3)
        delivered = inbox.push(msg(5))
        self.assertEqual((delivered.msg_id, delivered.from_sync), (5, False))
        self.assertEqual(inbox.last_id, 5)

    def test_duplicate_and_old_pushes_are_dropped(self):
        """A push at or below the cursor is a duplicate and is dropped."""
        inbox = Inbox(5)
        self.assertIsNone(inbox.push(msg(5)))
        self.assertIsNone(inbox.push(msg(2)))
        self.assertEqual(inbox.last_id, 5)

    def test_pushes_during_sync_wait_and_merge_in_order(self):
        """Pushes that arrive while a sync runs are held, then delivered after the sync
        pages, sorted, without the ones the sync already delivered."""
        inbox = Inbox(0)
        inbox.begin_sync()
        self.assertIsNone(inbox.push(msg(4)))
        self.assertIsNone(inbox.push(msg(2)))
        page = inbox.sync_page([msg(1), msg(2)])
        self.assertEqual([m.msg_id for m in page], [1, 2])
        self.assertTrue(all(m.from_sync for m in page))
        rest = inbox.end_sync()
        self.assertEqual([m.msg_id for m in rest], [4])
        self.assertFalse(inbox.syncing)
        self.assertEqual(inbox.last_id, 4)

    def test_sync_pages_skip_what_was_delivered(self):
        """A sync page never re-delivers a message at or below the cursor."""
        inbox = Inbox(2)
        inbox.begin_sync()
        self.assertEqual(texts(inbox.sync_page([msg(1), msg(2), msg(3)])), ["m3"])
        self.assertEqual(inbox.end_sync(), [])

    def test_abort_sync_drops_the_buffer(self):
        """A sync cut short drops its buffered pushes (the next sync reads them again) and
        leaves the cursor where delivery stopped."""
        inbox = Inbox(0)
        inbox.begin_sync()
        inbox.push(msg(9))
        inbox.sync_page([msg(1)])
        inbox.abort_sync()
        self.assertEqual(inbox.last_id, 1)
        self.assertFalse(inbox.syncing)
        self.assertEqual(inbox.push(msg(9)).msg_id, 9)

    def test_a_resync_after_reconnect_delivers_nothing_twice(self):
        """Live pushes, a reconnect and a sync overlapping them: each id once, in order."""
        inbox = Inbox(0)
        delivered = [inbox.push(msg(1)), inbox.push(msg(2))]
        inbox.begin_sync()                      # reconnected
        inbox.push(msg(4))
        delivered += inbox.sync_page([msg(2), msg(3), msg(4)])
        delivered += inbox.end_sync()
        delivered.append(inbox.push(msg(4)))
        self.assertEqual([m.msg_id for m in delivered if m is not None], [1, 2, 3, 4])

    def test_valid_message_checks_the_fields(self):
        """valid_message accepts a well-formed msg and refuses missing or mistyped fields."""
        self.assertTrue(valid_message(msg(1)))
        for key, value in (("msg_id", "1"), ("msg_id", True), ("from", None),
                           ("message", 5), ("time", "now")):
            bad = dict(msg(1), **{key: value})
            self.assertFalse(valid_message(bad), key)
        self.assertFalse(valid_message(["not", "a", "dict"]))

    def test_the_sync_buffer_is_bounded(self):
        """Past max_buffered pushes during a sync the buffer is dropped and end_sync asks
        for one more round (None), still buffering; that round delivers them once."""
        inbox = Inbox(0, max_buffered=2)
        inbox.begin_sync()
        for msg_id in (2, 3, 4):
            self.assertIsNone(inbox.push(msg(msg_id)))
        self.assertEqual(texts(inbox.sync_page([msg(1)])), ["m1"])
        self.assertIsNone(inbox.end_sync())
        self.assertTrue(inbox.syncing)
        inbox.push(msg(5))
        self.assertEqual(texts(inbox.sync_page([msg(2), msg(3), msg(4)])),
                         ["m2", "m3", "m4"])
        self.assertEqual(texts(inbox.end_sync()), ["m5"])
        self.assertFalse(inbox.syncing)
