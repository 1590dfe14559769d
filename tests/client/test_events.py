"""Tests for messenger.client.events: the observer registry and the event records."""

from __future__ import annotations

from twisted.trial import unittest

from messenger.client.events import (
    AccountInfo,
    Broadcast,
    ConnectionState,
    IncomingMessage,
    Observers,
    ServerLimits,
    State,
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
        self.assertRaises(ValueError, Observers().emit, "mesage", None)

    def test_events_held_during_a_transition_come_after_it_in_order(self):
        """Inside held() nothing is delivered; at the end of the outermost block every
        event and queued call comes, in the order emitted."""
        observers = Observers()
        seen = []
        observers.subscribe("notice", seen.append)
        with observers.held():
            observers.emit("notice", 1)
            with observers.held():
                observers.emit("notice", 2)
            observers.later(seen.append, "call")
            self.assertEqual(seen, [])
        self.assertEqual(seen, [1, 2, "call"])

    def test_an_observer_emitting_does_not_overtake_earlier_events(self):
        """An observer that causes new events while a batch is delivered hears them
        after the rest of the batch, not in the middle of it."""
        observers = Observers()
        seen = []

        def first(event):
            seen.append(("first", event))
            if event == 1:
                observers.emit("notice", 3)
        observers.subscribe("notice", first)
        with observers.held():
            observers.emit("notice", 1)
            observers.emit("notice", 2)
        self.assertEqual([event for _, event in seen], [1, 2, 3])


class RecordTests(unittest.TestCase):
    def test_connection_state_reads_well(self):
        """str() of a state is what a status bar shows."""
        state = ConnectionState("reconnecting", reason="connection refused", retry_in=2.25)
        self.assertEqual(str(state), "reconnecting in 2.2 s (connection refused)")
        self.assertEqual(str(ConnectionState("login_required")), "login required")
        self.assertTrue(ConnectionState("syncing").logged_in)
        self.assertFalse(ConnectionState("handshaking").logged_in)

    def test_states_are_named_as_their_strings(self):
        """State members compare equal to their names (front ends may use either)."""
        self.assertEqual(State.LOGIN_REQUIRED, "login_required")
        self.assertEqual(str(ConnectionState(State.RECONNECTING, retry_in=1.0)),
                         "reconnecting in 1.0 s")

    def test_server_limits_from_a_login_reply(self):
        """Announced limits are taken, unknown keys ignored, nonsense and absence keep
        the defaults."""
        limits = ServerLimits.from_reply({"limits": {"max_frame": 1000, "max_body": 10,
                                                     "max_payload": 2048, "other": 1}})
        self.assertEqual((limits.max_frame, limits.max_body, limits.max_payload),
                         (1000, 10, 2048))
        self.assertEqual(ServerLimits.from_reply({}), ServerLimits())
        odd = ServerLimits.from_reply({"limits": {"max_frame": 0, "max_body": True,
                                                  "max_payload": "big"}})
        self.assertEqual(odd, ServerLimits())

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
