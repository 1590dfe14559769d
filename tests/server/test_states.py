"""The connection's transition table (messenger.server.states): every state can close,
nothing leaves CLOSED, and the phases only go forward."""

from __future__ import annotations

from twisted.trial import unittest

from messenger.server.states import (
    ANY_ENCRYPTED,
    BEFORE_LOGIN,
    LOGGED_IN,
    TRANSITIONS,
    State,
)


class TransitionTests(unittest.TestCase):

    def test_every_state_has_a_row_and_a_way_out(self) -> None:
        """Each state has its row; each but CLOSED may close; CLOSED leads nowhere."""
        self.assertEqual(set(TRANSITIONS), set(State))
        for state in State:
            if state is not State.CLOSED:
                self.assertIn(State.CLOSED, TRANSITIONS[state], state)
        self.assertEqual(TRANSITIONS[State.CLOSED], frozenset())

    def test_phases_only_go_forward(self) -> None:
        """The only other transitions are one phase onward."""
        order = [State.CHALLENGE, State.KEYX, State.UNAUTHENTICATED, State.READY]
        for position, state in enumerate(order):
            onward = TRANSITIONS[state] - {State.CLOSED}
            expected = {order[position + 1]} if position + 1 < len(order) else set()
            self.assertEqual(onward, expected, state)

    def test_route_state_sets(self) -> None:
        """Before login means UNAUTHENTICATED; logged in READY; encrypted both."""
        self.assertEqual(BEFORE_LOGIN, {State.UNAUTHENTICATED})
        self.assertEqual(LOGGED_IN, {State.READY})
        self.assertEqual(ANY_ENCRYPTED, BEFORE_LOGIN | LOGGED_IN)
