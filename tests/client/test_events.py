"""Tests for messenger.client.events: the observer registry and the event records."""

from __future__ import annotations

from twisted.trial import unittest

from messenger.client.events import (
    AccountInfo,
    Broadcast,
    ConnectionState,
    IncomingMessage,
    Observers,
)


class ObserversTests(unittest.TestCase):
    def test_subscribers_get_events_of_their_kind_only(self):
        """An observer hears the kind it subscribed to and no other."""
        observers = Observers()
        seen = []
        observers.subscribe("presence", seen.append)
        observers.emit("presence", "p")
        observers.emit("message", "m")
        self.assertEqual(seen, ["p"])

    def test_unsubscribe_stops_delivery(self):
        """The function subscribe returns removes the observer."""
        observers = Observers()
        seen = []
        unsubscribe = observers.subscribe("notice", seen.append)
        unsubscribe()
        unsubscribe()                           # twice is harmless
        observers.emit("notice", "n")
        self.assertEqual(seen, [])
        self.assertFalse(observers.wanted("notice"))

    def test_a_failing_observer_does_not_stop_the_others(self):
        """An observer that raises is logged; the next one still runs."""
        observers = Observers()
        seen = []
        observers.subscribe("state", lambda event: 1 / 0)
        observers.subscribe("state", seen.append)
        observers.emit("state", "s")
        self.assertEqual(seen, ["s"])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_unsubscribing_during_an_emit_is_safe(self):
        """An observer may unsubscribe itself while being called."""
        observers = Observers()
        seen = []

        def once(event):
            seen.append(event)
            unsubscribe()
        unsubscribe = observers.subscribe("call", once)
        observers.emit("call", 1)
        observers.emit("call", 2)
        self.assertEqual(seen, [1])

    def test_unknown_kind_is_refused(self):
        """A misspelt kind fails loudly at subscribe time."""
        self.assertRaises(ValueError, Observers().subscribe, "mesage", print)


class RecordTests(unittest.TestCase):
    def test_connection_state_reads_well(self):
        """str() of a state is what a status bar shows."""
        state = ConnectionState("reconnecting", reason="connection refused", retry_in=2.25)
        self.assertEqual(str(state), "reconnecting in 2.2 s (connection refused)")
        self.assertEqual(str(ConnectionState("login_required")), "login required")
        self.assertTrue(ConnectionState("syncing").logged_in)
        self.assertFalse(ConnectionState("handshaking").logged_in)

    def test_records_from_jim(self):
        """The records take the server's field names."""
        message = IncomingMessage.from_jim({"msg_id": 3, "time": 1.5, "from": "a",
                                            "to": "b", "message": "hi"})
        self.assertEqual((message.sender, message.recipient, message.text), ("a", "b", "hi"))
        broadcast = Broadcast.from_jim({"broadcast_id": 2, "time": 1, "from": "a",
                                        "message": "all"})
        self.assertEqual((broadcast.broadcast_id, broadcast.text), (2, "all"))
        account = AccountInfo.from_jim({"account_name": "a", "email": "a@x.org",
                                        "admin": True})
        self.assertEqual((account.admin, account.premium), (True, False))
